"""Inference cost, side by side: the prompt re-sent every turn, prefix-cached, internalized, merged.

Writes REPORT_DIR/bench.json, bench.md and bench.png (cumulative FLOPs and latency per turn).
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


def main(args) -> int:
    from ..presets import get_preset

    preset = get_preset(args.preset)
    if args.turns < 1:
        raise common.GenpiError("--turns must be at least 1")
    sc = common.scenario_arg(args)
    ref = common.model_arg(args.model, preset.model)
    common.adapters_arg([args.adapter] if args.adapter else [])
    common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    common.not_built("bench", 6)
