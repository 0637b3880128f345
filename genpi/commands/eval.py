"""Evaluate on the scenario's held-out inputs: no prompt (floor), with prompt (ceiling), each adapter.

Writes REPORT_DIR/report.json, report.md and a bar chart (report.png).
"""

from __future__ import annotations

from . import common

HELP = "score no-prompt / with-prompt / adapters on held-out inputs"


def add_arguments(p):
    common.add_scenario(p)
    common.add_out(p, "REPORT_DIR", "folder for report.json, report.md and report.png")
    common.add_model(p)
    common.add_preset(p)
    p.add_argument("--adapter", action="append", default=[], metavar="DIR",
                   help="an adapter folder from 'genpi train' (repeat for several)")
    p.add_argument("--turns", type=int, default=1, metavar="T",
                   help="agent turns per conversation; above 1 the generator plays the environment (default: 1)")


def main(args) -> int:
    from ..presets import get_preset

    preset = get_preset(args.preset)
    sc = common.scenario_arg(args)
    ref = common.model_arg(args.model, preset.model)
    common.adapters_arg(args.adapter)
    if not sc.eval.inputs:
        raise common.GenpiError(f"scenario '{args.scenario}' has no eval.inputs: add held-out inputs under eval: inputs:")
    common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    common.not_built("eval", 5)
