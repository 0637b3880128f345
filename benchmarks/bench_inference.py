"""What internalizing a prompt saves at inference, measured side by side (issue #6).

Runs `genpi bench` (genpi.bench.run_bench) on the AgentBench OS prompt (benchmarks/agentbench-os.yaml,
reading ../shared/data/agentbench-os/) and on every scenario shipped in scenarios/*.yaml, under four
variants: the prompt re-sent every turn, the prompt's KV cached once, the adapter unmerged, and the
adapter merged. Inference cost depends on the adapter's shape, not its values, so without --adapter a
LoRA of the trained shape (r 16, alpha 32, all linear layers) with random weights is used.

    python benchmarks/bench_inference.py                      # embedded model, 3 turns, 40-token replies
    python benchmarks/bench_inference.py --only agentbench-os --repeats 5

Prints one line of figures per scenario, then one JSON line with all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genpi.artifacts import AdapterDir  # noqa: E402
from genpi.bench import BenchConfig, run_bench  # noqa: E402
from genpi.bench.random_adapter import make_random_adapter  # noqa: E402
from genpi.models import resolve_model  # noqa: E402
from genpi.scenario import load_scenario  # noqa: E402


def scenario_files() -> list[Path]:
    return [REPO / "benchmarks" / "agentbench-os.yaml"] + sorted((REPO / "scenarios").glob("*.yaml"))


def figures(r: dict) -> dict:
    """The numbers quoted in the README, from one bench.json."""
    name, ra, vs = r["internalized_variant"], r["ratios"], r["variants"]
    to_pc = r["ratios_to_prefix_cache"][name]
    return {
        "scenario": r["scenario"], "prompt_tokens": r["prompt_cache"]["tokens"],
        "flops_ratio": round(ra[name]["flops"], 3), "latency_ratio": round(ra[name]["latency"], 3),
        "latency_ratio_range": [round(x, 3) for x in ra[name]["latency_per_repeat_range"]],
        "merged_latency_ratio": round(ra["internalized_merged"]["latency"], 3) if "internalized_merged" in ra else None,
        "prefix_cache_flops_ratio": round(ra["with_prompt_prefix_cache"]["flops"], 3),
        "prefix_cache_latency_ratio": round(ra["with_prompt_prefix_cache"]["latency"], 3),
        "vs_prefix_cache_flops": round(to_pc["flops"], 3), "vs_prefix_cache_latency": round(to_pc["latency"], 3),
        "vs_prefix_cache_kv_bytes": round(to_pc["kv_bytes"], 3),
        "vs_prefix_cache_decode_attention": round(to_pc["decode_attention"], 3),
        "with_prompt_s": round(vs["with_prompt"]["latency"]["total_s"]["median"], 2),
        "internalized_s": round(vs[name]["latency"]["total_s"]["median"], 2),
        "identical_prefix_cache_replies": (f"{r['agreement']['with_prompt_vs_prefix_cache']['identical_replies']}/"
                                           f"{r['agreement']['with_prompt_vs_prefix_cache']['replies']}"),
        "loadavg": r["machine"]["loadavg_before"][0],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--adapter", default=None, help="a trained adapter folder (default: a random one of r 16)")
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_inference"))
    ap.add_argument("--only", default=None, help="run only the scenario with this name")
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--reply-tokens", type=int, default=40)
    ap.add_argument("--conversations", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    ref = resolve_model(args.model)
    out = Path(args.out)
    adapter = AdapterDir(args.adapter).require().path if args.adapter else None
    if adapter is None:
        adapter = out / "random-adapter-r16"
        if not AdapterDir(adapter).weights_path.is_file():
            make_random_adapter(ref, adapter, rank=16, alpha=32)
    results = []
    for f in scenario_files():
        sc = load_scenario(f)
        if args.only and sc.name != args.only:
            continue
        cfg = BenchConfig(turns=args.turns, reply_tokens=args.reply_tokens, conversations=args.conversations,
                          repeats=args.repeats, threads=args.threads)
        r = run_bench(sc, ref, adapter, out / sc.name, cfg)
        fig = figures(r)
        results.append(fig)
        print(f"{sc.name}: prompt {fig['prompt_tokens']} tokens; internalized/with_prompt FLOPs {fig['flops_ratio']}, "
              f"latency {fig['latency_ratio']} (with_prompt {fig['with_prompt_s']} s, internalized "
              f"{fig['internalized_s']} s per conversation); prefix cache/with_prompt FLOPs "
              f"{fig['prefix_cache_flops_ratio']}, latency {fig['prefix_cache_latency_ratio']}; internalized/prefix "
              f"cache FLOPs {fig['vs_prefix_cache_flops']}, latency {fig['vs_prefix_cache_latency']}, KV bytes "
              f"{fig['vs_prefix_cache_kv_bytes']}; report in {out / sc.name}", flush=True)
    machine = r["machine"] if results else {}
    print(json.dumps({"model": ref.name, "adapter": str(adapter), "turns": args.turns,
                      "reply_tokens": args.reply_tokens, "conversations": args.conversations,
                      "repeats": args.repeats, "machine": {k: machine.get(k) for k in ("cpu", "cores", "torch_threads",
                                                                                       "torch")},
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
