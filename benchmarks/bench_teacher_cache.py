"""Teacher generation with the shared-prefix KV cache vs plain batched `generate`.

Every teacher call in synthesis starts with the same prompt (548 tokens for AgentBench OS with
SmolLM2's tokenizer). The plain path left-pads each batch and prefills the whole prompt for every
row; the cached path prefills the shared prefix once, keeps it across batches and feeds each row
only its own suffix. Both are greedy, so their tokens should be identical.

    python benchmarks/bench_teacher_cache.py [--inputs 16] [--new-tokens 64] [--batch 8] [--model default]

Prints the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genpi.generate import LocalBackend  # noqa: E402
from genpi.models import load_model, load_tokenizer, resolve_model  # noqa: E402
from genpi.scenario import load_scenario, teacher_messages  # noqa: E402


def timed(backend: LocalBackend, prompts: list[list[int]], new_tokens: int) -> tuple[list[list[int]], float]:
    t0 = time.perf_counter()
    out = backend.generate_ids(prompts, max_new_tokens=new_tokens)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=str(REPO / "benchmarks" / "agentbench-os.yaml"))
    ap.add_argument("--model", default="default")
    ap.add_argument("--inputs", type=int, default=16, help="teacher inputs (seed inputs, then eval inputs)")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    sc = load_scenario(args.scenario)
    inputs = (sc.seed_inputs + [e.input for e in sc.eval.inputs])[:args.inputs]
    ref = resolve_model(args.model)
    tok, model = load_tokenizer(ref), load_model(ref, device=args.device)
    plain = LocalBackend(model, tok, batch_size=args.batch, prefix_cache=False)
    cached = LocalBackend(model, tok, batch_size=args.batch, prefix_cache=True)
    prompts = [plain.encode(teacher_messages(sc, x)) for x in inputs]
    load_before = os.getloadavg()[0]

    timed(plain, prompts[:1], 2)  # warm up kernels once, outside the timings
    ids_plain, t_plain = timed(plain, prompts, args.new_tokens)
    ids_cached, t_cached = timed(cached, prompts, args.new_tokens)  # includes building the prefix cache

    n_plain, n_cached = sum(map(len, ids_plain)), sum(map(len, ids_cached))
    identical = sum(a == b for a, b in zip(ids_plain, ids_cached))
    result = {
        "bench": "teacher_prefix_cache", "scenario": sc.name, "model": ref.name, "inputs": len(inputs),
        "new_tokens": args.new_tokens, "batch": args.batch,
        "prompt_tokens_mean": round(sum(map(len, prompts)) / len(prompts), 1),
        "shared_prefix_tokens": max(len(k) for k in cached._prefixes) if cached._prefixes else 0,
        "plain": {"seconds": round(t_plain, 2), "generated_tokens": n_plain, "tokens_per_s": round(n_plain / t_plain, 2)},
        "cached": {"seconds": round(t_cached, 2), "generated_tokens": n_cached,
                   "tokens_per_s": round(n_cached / t_cached, 2), **cached.stats},
        "speedup": round((n_cached / t_cached) / (n_plain / t_plain), 2),
        "identical_outputs": identical,
        "machine": {"device": args.device, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "platform": platform.platform(),
                    "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
                    "loadavg_before": round(load_before, 2), "loadavg_after": round(os.getloadavg()[0], 2)},
    }
    print(f"teacher generation, {len(inputs)} inputs x {args.new_tokens} new tokens, batch {args.batch}, "
          f"prompt ~{result['prompt_tokens_mean']:.0f} tokens ({result['shared_prefix_tokens']} shared)")
    print(f"  plain batched generate: {t_plain:7.2f} s  {result['plain']['tokens_per_s']:7.2f} tokens/s")
    print(f"  shared-prefix cache:    {t_cached:7.2f} s  {result['cached']['tokens_per_s']:7.2f} tokens/s")
    print(f"  speedup {result['speedup']}x; greedy outputs identical for {identical} of {len(inputs)}; "
          f"load average {load_before:.1f} -> {result['machine']['loadavg_after']:.1f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
