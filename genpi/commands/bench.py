"""Inference cost, side by side: the prompt re-sent every turn, prefix-cached, internalized, merged.

Runs the same multi-turn conversations (held-out inputs, frozen environment turns, a fixed number
of decoded tokens per agent turn) under each variant and writes REPORT_DIR/bench.json, bench.md and
bench.png (cumulative FLOPs and latency per turn). FLOPs are analytic (genpi/bench/flops.py);
latency is measured (warm-up, then the median of repeats, threads pinned).

Without --adapter, the internalized variants are replaced by 'no_prompt' (the base model without
the prompt: what a merged adapter costs), and the report says so.
"""

from __future__ import annotations

from . import common

HELP = "measure what internalizing saves at inference"


def add_arguments(p):
    common.add_scenario(p)
    common.add_out(p, "REPORT_DIR", "folder for bench.json, bench.md and bench.png")
    common.add_model(p)
    common.add_preset(p)
    p.add_argument("--adapter", default=None, metavar="DIR", help="the adapter folder from 'genpi train'")
    p.add_argument("--turns", type=int, default=3, metavar="T", help="agent turns per conversation (default: 3)")
    p.add_argument("--reply-tokens", type=int, default=40, metavar="N",
                   help="tokens every variant decodes per agent turn (default: 40)")
    p.add_argument("--env-tokens", type=int, default=40, metavar="N",
                   help="at most this many tokens per environment turn (default: 40)")
    p.add_argument("--conversations", type=int, default=2, metavar="N",
                   help="held-out inputs to converse on, one conversation each (default: 2)")
    p.add_argument("--repeats", type=int, default=None, metavar="N",
                   help="timed passes after one warm-up; the median is reported (default: the preset's)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="torch CPU threads, pinned for the run (default: 0 = all cores)")


def main(args) -> int:
    from ..bench import BenchConfig, run_bench
    from ..presets import get_preset

    preset = get_preset(args.preset)
    BenchConfig(turns=args.turns, reply_tokens=args.reply_tokens, env_tokens=args.env_tokens,
                conversations=args.conversations, repeats=args.repeats or preset.bench_repeats,
                threads=args.threads)  # validates the numbers before anything loads
    sc = common.scenario_arg(args)
    ref = common.model_arg(args.model, preset.model)
    adapter = common.adapters_arg([args.adapter] if args.adapter else [])
    out = common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    result = run_bench(sc, ref, adapter[0] if adapter else None, out, args.turns, preset,
                       reply_tokens=args.reply_tokens, env_tokens=args.env_tokens,
                       conversations=args.conversations, repeats=args.repeats, threads=args.threads)
    name = result["internalized_variant"]
    r = result["ratios"]
    print(f"wrote {out}/bench.json, bench.md, bench.png: {name} / with_prompt = {r[name]['flops']:.2f} FLOPs, "
          f"{r[name]['latency']:.2f} latency; with_prompt_prefix_cache / with_prompt = "
          f"{r['with_prompt_prefix_cache']['flops']:.2f} FLOPs, {r['with_prompt_prefix_cache']['latency']:.2f} latency")
    return 0
