"""Evaluate on the scenario's held-out inputs: no prompt (floor), with prompt (ceiling), each adapter.

Writes REPORT_DIR/report.json, report.md and a bar chart (report.png).
"""

from __future__ import annotations

from ..artifacts import EPISODES, OUTPUTS, REPORT
from ..config import add_flags, overrides_from
from . import common

HELP = "score no-prompt / with-prompt / adapters on held-out inputs"


def add_arguments(p):
    from ..evaluate import EvalConfig

    common.add_scenario(p)
    common.add_out(p, "REPORT_DIR", f"folder for {REPORT}, report.md and report.png")
    common.add_model(p)
    common.add_preset(p)
    p.add_argument("--adapter", action="append", default=[], metavar="DIR",
                   help="an adapter folder from 'genpi train' (repeat for several)")
    add_flags(p, EvalConfig)


def main(args) -> int:
    from ..evaluate import EvalConfig

    cfg = EvalConfig.from_preset(args.preset, **overrides_from(args, EvalConfig))
    sc = common.scenario_arg(args).require_eval_inputs("evaluate")
    ref = common.model_arg(args.model, args.preset)
    adapters = common.adapters_arg(args.adapter)
    out = common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    from ..evaluate import evaluate

    report = evaluate(sc, ref, adapters, out, cfg)
    print(summary_line(report))
    stores = f"{OUTPUTS} and {EPISODES}" if any(v.get("env") for v in report["variants"].values()) else OUTPUTS
    print(f"wrote {out / REPORT}, report.md, report.png, {stores}")
    return 0


def summary_line(report: dict) -> str:
    """Each variant's score and, where defined, retention; facts found and kept where the inputs expect any;
    task success where episodes ran."""
    parts = []
    for name, v in report["variants"].items():
        s = "–" if v["score"] is None else f"{v['score']:.2f}"
        r = v.get("retention")
        parts.append(f"{name} {s}" + (f" (retention {r:.2f})" if r is not None else ""))
    line = f"{report['scenario']}: score " + ", ".join(parts)
    facts = {n: v for n, v in report["variants"].items() if v.get("expectations") is not None}
    if facts:  # the share of held-out answers that state the expected fact, and of the prompted model's kept
        line += "\nfacts: " + ", ".join(f"{n} {v['expectations']:.2f}" + (
            f" (kept {v['expectations_kept']:.2f})" if v.get("expectations_kept") is not None else "")
            for n, v in facts.items())
    envs = {n: v["env"] for n, v in report["variants"].items() if v.get("env")}
    if envs:
        tasks = []
        for n, e in envs.items():
            ret = e.get("retention")
            share = e["valid_action_share"]
            tasks.append(f"{n} {e['solved']}/{e['n_problems'] - e['n_unrunnable']}"
                         + (f" (retention {ret:.2f})" if ret is not None else "")
                         + (f", valid actions {share:.2f}" if share is not None else ""))
        line += "\ntask success: " + "; ".join(tasks)
    return line
