"""What the evaluation shows: the markdown report and the bar chart (report.json's schema: genpi.artifacts.Report)."""

from __future__ import annotations

import html
import os
from pathlib import Path

from ..artifacts import ReportDir

def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _cell(text: str, limit: int = 400) -> str:
    text = text if len(text) <= limit else text[:limit] + " …"
    return html.escape(text).replace("|", "&#124;").replace("\n", "<br>") or "<i>(empty)</i>"


def markdown(report: dict, examples: list[dict], n_examples: int = 3) -> str:
    """A table a person reads in ten seconds, the notes, and a few outputs side by side.

    `examples` holds one dict per eval input: {"input": str, "outputs": {variant: text}}.
    """
    variants = report["variants"]
    check_names = list(next(iter(variants.values()))["checks"]) if variants else []
    has_exp = any(v.get("expectations") is not None for v in variants.values())
    s = report["settings"]
    lines = [f"# Evaluation: {report['scenario']}", "",
             f"Model: {report['model']} · {report['n_inputs']} held-out inputs · greedy, seed {s['seed']}, "
             f"at most {s['max_new_tokens']} new tokens per reply" + (f" · {s['turns']} agent turns" if s["turns"] > 1 else ""),
             ""]
    head = ["variant", "score"] + check_names + (["expectations"] if has_exp else []) + \
        ["exact", "chrF", "KL to teacher", "retention", "normalized"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, v in variants.items():
        ag = v.get("agreement") or {}
        row = [f"**{name}**", _fmt(v["score"])] + [_fmt(v["checks"][c]) for c in check_names]
        row += [_fmt(v.get("expectations"))] if has_exp else []
        row += [_fmt(ag.get("exact")), _fmt(ag.get("chrf")), _fmt(v.get("kl_to_teacher"), 3),
                _fmt(v.get("retention")), _fmt(v.get("normalized"))]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "score = mean pass rate over the checks and the expectations; retention = score / with_prompt "
              "score; normalized = (score - no_prompt) / (with_prompt - no_prompt); exact and chrF compare each "
              "output with the with_prompt output; KL = mean per-token KL(prompted model || variant) on the "
              "with_prompt output, teacher-forced (nats)."]
    multi = {n: v["multi_turn"] for n, v in variants.items() if v.get("multi_turn")}
    if multi:
        lines += ["", "## Pass rates per agent turn", "", "| variant | turn | conversations | " +
                  " | ".join(check_names) + " |", "|" + "---|" * (3 + len(check_names))]
        for name, turns in multi.items():
            for t in turns:
                lines.append(f"| {name} | {t['turn']} | {t['n']} | " +
                             " | ".join(_fmt(t["checks"].get(c)) for c in check_names) + " |")
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    if examples:
        names = list(variants)
        lines += ["", f"## Examples (first {min(n_examples, len(examples))} of {len(examples)}; all in outputs.jsonl)", "",
                  "| input | " + " | ".join(names) + " |", "|" + "---|" * (1 + len(names))]
        for ex in examples[:n_examples]:
            lines.append(f"| {_cell(ex['input'])} | " + " | ".join(_cell(ex["outputs"].get(n, "")) for n in names) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(report: dict, path: Path) -> None:
    """Grouped bars: each variant's score and per-check rates (and expectations), on 0-1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = report["variants"]
    names = list(variants)
    metrics = ["score"] + list(next(iter(variants.values()))["checks"])
    if any(v.get("expectations") is not None for v in variants.values()):
        metrics.append("expectations")
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(names) * max(1, len(metrics) / 2)), 3.6))
    for j, m in enumerate(metrics):
        vals = [(variants[n]["score"] if m == "score" else
                 variants[n].get("expectations") if m == "expectations" else variants[n]["checks"].get(m))
                for n in names]
        xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar(xs, [v or 0.0 for v in vals], width, label=m)
        for b, v in zip(bars, vals):
            ax.annotate("–" if v is None else f"{v:.2f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("pass rate")
    ax.set_title(f"{report['scenario']} · {report['n_inputs']} held-out inputs", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncols=min(4, len(metrics)))
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_all(out: ReportDir, report: dict, examples: list[dict]) -> None:
    """report.json, report.md and report.png, through the report folder's owner."""
    out.write(report, markdown(report, examples), lambda path: bar_chart(report, path))
