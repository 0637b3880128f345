"""What the evaluation shows: the markdown report and the bar chart (report.json's schema: genpi.artifacts.Report)."""

from __future__ import annotations

import html
import os
from pathlib import Path

from ..artifacts import EPISODES, OUTPUTS, ReportDir

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


def markdown(report: dict, examples: list[dict], n_examples: int = 3,
             episodes: dict[str, list[dict]] | None = None) -> str:
    """A table a person reads in ten seconds, the notes, and a few outputs side by side.

    `examples` holds one dict per eval input: {"input": str, "outputs": {variant: text}};
    `episodes` each variant's episode rows when an environment ran (task success comes first then).
    """
    variants = report["variants"]
    check_names = list(next(iter(variants.values()))["checks"]) if variants else []
    has_exp = any(v.get("expectations") is not None for v in variants.values())
    s = report["settings"]
    lines = [f"# Evaluation: {report['scenario']}", ""]
    if any(v.get("env") for v in variants.values()):
        lines += task_sections(report, episodes or {})
        lines += ["## First replies (secondary: the form of the first turn)", ""]
    lines += [f"Model: {report['model']} · {report['n_inputs']} held-out inputs · greedy, seed {s['seed']}, "
              f"at most {s['max_new_tokens']} new tokens per reply" + (f" · {s['turns']} agent turns" if s["turns"] > 1 else ""),
              ""]
    head = ["variant", "score"] + check_names + (["expectations", "facts kept"] if has_exp else []) + \
        ["exact", "chrF", "KL to teacher", "retention", "normalized"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, v in variants.items():
        ag = v.get("agreement") or {}
        row = [f"**{name}**", _fmt(v["score"])] + [_fmt(v["checks"][c]) for c in check_names]
        row += [_fmt(v.get("expectations")), _fmt(v.get("expectations_kept"))] if has_exp else []
        row += [_fmt(ag.get("exact")), _fmt(ag.get("chrf")), _fmt(v.get("kl_to_teacher"), 3),
                _fmt(v.get("retention")), _fmt(v.get("normalized"))]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "score = mean pass rate over the checks and the expectations; retention = score / with_prompt "
              "score; normalized = (score - no_prompt) / (with_prompt - no_prompt); facts kept = of the inputs whose "
              "expectation the with_prompt output meets, the share this variant's output meets too; exact and chrF "
              "compare each output with the with_prompt output; KL = mean per-token KL(prompted model || variant) on the "
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
        lines += ["", f"## Examples (first {min(n_examples, len(examples))} of {len(examples)}; all in {OUTPUTS})", "",
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
    wide = max(5.0, 1.6 * len(names) * max(1, len(metrics) / 2))
    if any(v.get("env") for v in variants.values()):
        fig, (left, ax) = plt.subplots(1, 2, figsize=(wide + 4.0, 3.6), width_ratios=[4.0, wide])
        success_bars(left, report)
    else:
        fig, ax = plt.subplots(figsize=(wide, 3.6))
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
    first = "first replies: " if any(v.get("env") for v in variants.values()) else ""
    ax.set_title(f"{first}{report['scenario']} · {report['n_inputs']} held-out inputs", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncols=min(4, len(metrics)))
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def task_sections(report: dict, episodes: dict[str, list[dict]], n_transcripts: int = 3) -> list[str]:
    """Task success per variant, every problem's outcome, and a few transcripts side by side."""
    variants = {n: v for n, v in report["variants"].items() if v.get("env")}
    env = report["settings"].get("environment", {})
    first = next(iter(variants.values()))["env"]
    lines = ["## Task success", "",
             f"Model: {report['model']} · {first['n_problems'] - first['n_unrunnable']} problems run in a sandboxed "
             f"{env.get('kind', 'shell')} ({first['n_unrunnable']} could not run here) · protocol "
             f"{env.get('protocol') if isinstance(env.get('protocol'), str) else 'the scenario’s own'} · at most "
             f"{env.get('round_limit')} agent turns of {report['settings'].get('env_tokens')} tokens · greedy"
             + (f" · sandbox start and setup {first['setup_s_per_episode']:.2f} s per episode"
                if first.get("setup_s_per_episode") is not None else ""), "",
             "| variant | success | solved | 95% interval | retention | normalized | valid actions | "
             "invalid-action ends | turns | repeating | end reasons |", "|" + "---|" * 11]
    for name, v in variants.items():
        e = v["env"]
        ci = e.get("success_ci95")
        ends = ", ".join(f"{k} {c}" for k, c in e["end_reasons"].items())
        lines.append(f"| **{name}** | {_fmt(e['success'])} | {e['solved']} / {e['n_problems'] - e['n_unrunnable']} | "
                     f"{'–' if ci is None else f'{ci[0]:.2f}–{ci[1]:.2f}'} | {_fmt(e.get('retention'))} | "
                     f"{_fmt(e.get('normalized'))} | {_fmt(e['valid_action_share'])} | "
                     f"{_fmt(e['invalid_action_rate'])} | {_fmt(e['mean_turns'], 1)} | {_fmt(e.get('repeated'))} | "
                     f"{ends} |")
    lines += ["", "success = problems solved / problems run; retention = success / with_prompt success; normalized = "
              "(success - no_prompt) / (with_prompt - no_prompt); valid actions = agent turns that parse as an action "
              "of the protocol; invalid-action ends = episodes ended by a reply that was no action; repeating = episodes "
              "in which the agent said its previous reply again word for word (greedy, after the same output: stuck "
              "until the round limit). The interval is the Wilson 95% interval: differences inside it are noise.", ""]
    names = list(variants)
    outcomes = {n: variants[n]["env"]["outcomes"] for n in names}
    mark = {True: "✓", False: "✗", None: "–"}
    lines += ["### Every problem", "", "| problem | " + " | ".join(names) + " |", "|" + "---|" * (1 + len(names))]
    for pid in outcomes[names[0]]:
        lines.append(f"| {pid} | " + " | ".join(mark[outcomes[n].get(pid)] for n in names) + " |")
    lines += [""]
    other = next((n for n in names if n not in ("with_prompt", "no_prompt")), "no_prompt")
    if "with_prompt" in episodes and other in episodes:
        pairs = [(a, b) for a, b in zip(episodes["with_prompt"], episodes[other]) if not a["unrunnable"]]
        pairs.sort(key=lambda ab: ab[0]["success"] == ab[1]["success"])  # disagreements first
        lines += [f"### Transcripts: with_prompt and {other} on the same problems "
                  f"(first {min(n_transcripts, len(pairs))}; all in {EPISODES})", ""]
        for a, b in pairs[:n_transcripts]:
            lines += [f"**{a['problem']}**: {_cell(a['conversation'][0]['content'], 300)}", "",
                      "| with_prompt | " + other + " |", "|---|---|",
                      f"| {_transcript(a)} | {_transcript(b)} |", ""]
    return lines


def _transcript(ep: dict, limit: int = 1500) -> str:
    turns = []
    for t in ep["conversation"][1:]:
        who = "agent" if t["role"] == "assistant" else "env"
        turns.append(f"[{who}] {t['content']}")
    verdict = "solved" if ep["success"] else f"not solved ({ep['end_reason']})"
    return _cell("\n".join(turns), limit) + f"<br>**{verdict}**"


def success_bars(ax, report: dict) -> None:
    """Task success per variant with its 95% interval."""
    variants = {n: v["env"] for n, v in report["variants"].items() if v.get("env")}
    names = list(variants)
    vals = [variants[n]["success"] or 0.0 for n in names]
    cis = [variants[n].get("success_ci95") or [v, v] for n, v in zip(names, vals)]
    err = [[v - lo for v, (lo, _) in zip(vals, cis)], [hi - v for v, (_, hi) in zip(vals, cis)]]
    bars = ax.bar(range(len(names)), vals, 0.6, yerr=err, capsize=4, color="#4c72b0")
    for b, n in zip(bars, names):
        e = variants[n]
        ax.annotate(f"{e['solved']}/{e['n_problems'] - e['n_unrunnable']}", (b.get_x() + b.get_width() / 4, b.get_height()),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("task success")
    ax.set_title("problems solved (95% interval)", fontsize=10)


def write_all(out: ReportDir, report: dict, examples: list[dict], episodes: dict[str, list[dict]] | None = None) -> None:
    """report.json, report.md, report.png and report.html, through the report folder's owner."""
    from .html_report import html_report

    out.write(report, markdown(report, examples, episodes=episodes), lambda path: bar_chart(report, path),
              page=lambda png: html_report(report, examples, png))
