"""Print the README's results table from the report.json of one or more `genpi run` / `genpi eval` folders.

    python benchmarks/results_table.py runs/shell runs/os runs/support

Each argument is a run folder (with report/report.json) or a report folder (with report.json).
One row per variant: score, each check's pass rate, the expectations' pass rate, retention (with the
per-check retention in brackets), KL to the prompted teacher and chrF against its replies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _report(folder: Path) -> dict:
    from genpi.artifacts import ReportDir
    from genpi.errors import GenpiError

    run_report = ReportDir(folder / "report")
    try:
        return (run_report if run_report.report_path.is_file() else ReportDir(folder)).read()
    except GenpiError as e:
        sys.exit(f"results_table: {e}")


def _num(x, fmt="{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def rows(report: dict) -> list[str]:
    out = []
    label = f"{report['scenario']} ({report['n_inputs']})"
    for i, (name, v) in enumerate(report["variants"].items()):
        checks = ", ".join(f"{k} {r:.2f}" for k, r in v["checks"].items()) or "–"
        ret = _num(v.get("retention"))
        per_check = v.get("check_retention") or {}
        if per_check and name != "no_prompt":
            ret += " (" + ", ".join(f"{k} {_num(r)}" for k, r in per_check.items()) + ")"
        agreement = v.get("agreement") or {}
        name_cell = f"**{name}**" if name == "genpi" else name
        out.append(f"| {label if i == 0 else ''} | {name_cell} | {v['score']:.2f} | {checks} | "
                   f"{_num(v.get('expectations'))} | {ret} | {_num(v.get('kl_to_teacher'))} | "
                   f"{_num(agreement.get('chrf'))} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="run or report folders")
    args = ap.parse_args(argv)
    print("| scenario (held-out inputs) | variant | score | checks | expectations | retention | KL to teacher | chrF vs teacher |")
    print("|---|---|---:|---|---:|---|---:|---:|")
    for f in args.folders:
        print("\n".join(rows(_report(f))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
