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
                   help="agent turns per conversation; above 1 the base model plays the scenario's environment "
                        "and the checks apply to every agent turn (default: 1)")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help="reply length limit, the same for every variant (default: the preset's eval_max_new_tokens)")
    p.add_argument("--seed", type=int, default=0, help="random seed (decoding is greedy; default: 0)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="replies generated at once (default: 8)")


def main(args) -> int:
    from ..presets import get_preset

    from ..evaluate import evaluate

    preset = get_preset(args.preset, eval_max_new_tokens=args.max_new_tokens)
    for flag, value in (("--turns", args.turns), ("--max-new-tokens", preset.eval_max_new_tokens),
                        ("--batch-size", args.batch_size)):
        if value < 1:
            raise common.GenpiError(f"{flag} must be at least 1 (got {value})")
    sc = common.scenario_arg(args)
    ref = common.model_arg(args.model, preset.model)
    adapters = common.adapters_arg(args.adapter)
    if not sc.eval.inputs:
        raise common.GenpiError(f"scenario '{args.scenario}' has no eval.inputs: add held-out inputs under eval: inputs:")
    out = common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    report = evaluate(sc, ref, adapters, out, preset, turns=args.turns, seed=args.seed, batch_size=args.batch_size)
    print(summary_line(report))
    print(f"wrote {out / 'report.json'}, report.md, report.png and outputs.jsonl")
    return 0


def summary_line(report: dict) -> str:
    """One line per variant: score and, where defined, retention."""
    parts = []
    for name, v in report["variants"].items():
        s = "–" if v["score"] is None else f"{v['score']:.2f}"
        r = v.get("retention")
        parts.append(f"{name} {s}" + (f" (retention {r:.2f})" if r is not None else ""))
    return f"{report['scenario']}: score " + ", ".join(parts)
