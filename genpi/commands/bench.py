"""Inference cost, side by side: the prompt re-sent every turn, prefix-cached, internalized, merged.

Runs the same multi-turn conversations (held-out inputs, frozen environment turns, a fixed number
of decoded tokens per agent turn) under each variant and writes REPORT_DIR/bench.json, bench.md and
bench.png (cumulative FLOPs and latency per turn). FLOPs are analytic (genpi/bench/flops.py);
latency is measured (warm-up, then the median of repeats, threads pinned).

Without --adapter, the internalized variants are replaced by 'no_prompt' (the base model without
the prompt: what a merged adapter costs), and the report says so.
"""

from __future__ import annotations

from ..artifacts import BENCH
from ..config import add_flags, overrides_from
from . import common

HELP = "measure what internalizing saves at inference"


def add_arguments(p):
    from ..bench import BenchConfig

    common.add_scenario(p)
    common.add_out(p, "REPORT_DIR", f"folder for {BENCH}, bench.md and bench.png")
    common.add_model(p)
    common.add_preset(p)
    p.add_argument("--adapter", default=None, metavar="DIR", help="the adapter folder from 'genpi train'")
    add_flags(p, BenchConfig)


def main(args) -> int:
    from ..bench import BenchConfig

    cfg = BenchConfig.from_preset(args.preset, **overrides_from(args, BenchConfig))
    sc = common.scenario_arg(args)
    ref = common.model_arg(args.model, args.preset)
    adapter = common.adapters_arg([args.adapter] if args.adapter else [])
    out = common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    from ..bench import run_bench

    result = run_bench(sc, ref, adapter[0] if adapter else None, out, cfg)
    name = result["internalized_variant"]
    r = result["ratios"]
    print(f"wrote {out}/{BENCH}, bench.md, bench.png: {name} / with_prompt = {r[name]['flops']:.2f} FLOPs, "
          f"{r[name]['latency']:.2f} latency; with_prompt_prefix_cache / with_prompt = "
          f"{r['with_prompt_prefix_cache']['flops']:.2f} FLOPs, {r['with_prompt_prefix_cache']['latency']:.2f} latency")
    return 0
