"""report.html: the evaluation as one self-contained page a person opens in a browser.

No network and no script: the CSS is inline and the bar chart is embedded as a data URI. The page
holds the variants' scores (and task success), the per-check table, the notes, the inference-cost
figures when `genpi bench` ran beside it, and every held-out input's replies side by side (with the
prompt, without, each adapter), each reply's words that the prompted model's reply does not have
highlighted.
"""

from __future__ import annotations

import base64
import difflib
import html
from pathlib import Path

from .report import _fmt

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#1d2430;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #d9dee7;padding-bottom:.2em}
.meta{color:#5a6475}table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #d9dee7;padding:.3em .6em;text-align:right;vertical-align:top}
th{background:#f1f4f9}td:first-child,th:first-child{text-align:left}
tr.ceiling td{background:#f4fbf4}tr.floor td{background:#fbf4f4}
img{max-width:100%;border:1px solid #d9dee7}
.pair{display:grid;gap:.6em;margin:.4em 0 1.2em}
.reply{border:1px solid #d9dee7;border-radius:4px;padding:.5em;white-space:pre-wrap;font:12.5px/1.4 ui-monospace,
Menlo,Consolas,monospace;background:#fbfcfe;overflow-wrap:anywhere}
.reply b{display:block;font:600 12px system-ui,sans-serif;color:#5a6475;margin-bottom:.3em}
mark{background:#ffe58a}.input{font-weight:600;margin-top:1em}.legend{color:#5a6475;font-size:.9em}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _f(v, digits: int = 2) -> str:
    return _e(_fmt(v, digits))  # the markdown report's number format, escaped


def highlight(text: str, reference: str) -> str:
    """`text` escaped, with the words the reference does not have at that place wrapped in <mark>."""
    a, b = reference.split(" "), text.split(" ")
    out = []
    for op, _, _, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        chunk = _e(" ".join(b[j1:j2]))
        out.append(chunk if op == "equal" or not chunk else f"<mark>{chunk}</mark>")
    return " ".join(x for x in out if x)


def html_report(report: dict, examples: list[dict], png: Path | None = None, bench: dict | None = None) -> str:
    variants = report["variants"]
    names = list(variants)
    checks = list(next(iter(variants.values()))["checks"]) if variants else []
    has_exp = any(v.get("expectations") is not None for v in variants.values())
    s = report["settings"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>genpi: {_e(report['scenario'])}"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>Evaluation: {_e(report['scenario'])}</h1>",
             f"<p class='meta'>{_e(report['model'])} · {report['n_inputs']} held-out inputs · greedy, seed "
             f"{s.get('seed')} · at most {s.get('max_new_tokens')} new tokens per reply</p>"]
    if png is not None and Path(png).is_file():
        data = base64.b64encode(Path(png).read_bytes()).decode()
        parts.append(f"<img alt='scores per variant' src='data:image/png;base64,{data}'>")
    envs = {n: v["env"] for n, v in variants.items() if v.get("env")}
    if envs:
        parts += ["<h2>Task success</h2><table><tr><th>variant</th><th>solved</th><th>success</th><th>95% interval"
                  "</th><th>valid actions</th><th>turns</th><th>repeating</th><th>end reasons</th></tr>"]
        for n, e in envs.items():
            ci = e.get("success_ci95") or [None, None]
            reasons = ", ".join(f"{k} {v}" for k, v in (e.get("end_reasons") or {}).items())
            parts.append(f"<tr class='{_row_class(n)}'><td>{_e(n)}</td><td>{e.get('solved')} / {e.get('n_problems')}"
                         f"</td><td>{_f(e.get('success'))}</td><td>{_f(ci[0])}–{_f(ci[1])}</td>"
                         f"<td>{_f(e.get('valid_action_share'))}</td><td>{_f(e.get('mean_turns'), 1)}</td>"
                         f"<td>{'–' if e.get('repeated') is None else e['repeated']}</td>"
                         f"<td>{_e(reasons)}</td></tr>")
        parts.append("</table>")
    head = ["variant", "score"] + [f"check: {c}" for c in checks] + \
        (["expectations", "facts kept"] if has_exp else []) + ["exact", "chrF", "KL to teacher", "retention"]
    parts += ["<h2>First replies</h2><table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for n, v in variants.items():
        ag = v.get("agreement") or {}
        row = [_f(v.get("score"))] + [_f(v["checks"].get(c)) for c in checks]
        row += [_f(v.get("expectations")), _f(v.get("expectations_kept"))] if has_exp else []
        row += [_f(ag.get("exact")), _f(ag.get("chrf")), _f(v.get("kl_to_teacher"), 3), _f(v.get("retention"))]
        parts.append(f"<tr class='{_row_class(n)}'><td>{_e(n)}</td>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    parts.append("</table><p class='legend'>score: mean pass rate over the checks and expectations; exact and "
                 "chrF compare each reply with the prompted model's; KL: mean per-token KL(prompted model ‖ "
                 "variant) on the prompted model's reply, teacher-forced (nats); retention: score / with_prompt "
                 "score; facts kept: of the inputs whose expectation the prompted model's reply meets, the share "
                 "this variant's reply meets too.</p>")
    if bench:
        parts += ["<h2>Inference cost</h2><p class='legend'>The same multi-turn conversations under each variant "
                  "(genpi bench); ratios to with_prompt.</p><table><tr><th>variant</th><th>prefilled tokens</th>"
                  "<th>FLOPs</th><th>time to first token (mean)</th><th>total latency</th><th>FLOPs ratio</th>"
                  "<th>latency ratio</th></tr>"]
        ratios = bench.get("ratios") or {}
        for n, r in (bench.get("variants") or {}).items():
            tok, fl, lat = r.get("tokens") or {}, r.get("flops") or {}, r.get("latency") or {}
            ra = ratios.get(n) or {}
            parts.append(f"<tr><td>{_e(n)}</td><td>{_f(tok.get('prefilled_per_conversation'), 0)}</td>"
                         f"<td>{_sci(fl.get('per_conversation'))}</td><td>{_ms(lat.get('ttft_s_mean'))}</td>"
                         f"<td>{_ms((lat.get('total_s') or {}).get('median'))}</td><td>{_f(ra.get('flops'))}</td>"
                         f"<td>{_f(ra.get('latency'))}</td></tr>")
        parts.append("</table>")
    if report.get("notes"):
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{_e(n)}</li>" for n in report["notes"]] + ["</ul>"]
    if examples:
        ref_name = "with_prompt" if "with_prompt" in names else names[0]
        parts += [f"<h2>Replies side by side ({len(examples)} inputs)</h2><p class='legend'>Highlighted: words "
                  f"that the {_e(ref_name)} reply does not have at that place.</p>"]
        cols = f"grid-template-columns:repeat({len(names)},minmax(0,1fr))"
        for ex in examples:
            ref = ex["outputs"].get(ref_name, "")
            parts.append(f"<div class='input'>{_e(ex['input'])}</div><div class='pair' style='{cols}'>")
            for n in names:
                text = ex["outputs"].get(n, "")
                body = _e(text) if n == ref_name else highlight(text, ref)
                parts.append(f"<div class='reply'><b>{_e(n)}</b>{body or '<i>(empty)</i>'}</div>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _row_class(name: str) -> str:
    return {"with_prompt": "ceiling", "no_prompt": "floor"}.get(name, "")


def _sci(v) -> str:
    return "–" if v is None else f"{v:.3g}"


def _ms(v) -> str:
    return "–" if v is None else f"{v * 1000:.0f} ms"


def render_html(report_dir, bench: dict | None = None) -> Path:
    """Rewrite REPORT_DIR/report.html from its report, replies and chart, adding `bench` (bench.json's
    dict) when given; return its path."""
    from ..artifacts import ReportDir

    out = ReportDir(report_dir)
    out.write_html(html_report(out.read(), out.examples(), out.png_path, bench))
    return out.path / "report.html"
