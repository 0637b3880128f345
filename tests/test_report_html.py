"""report.html: one self-contained page (no network, no script), rendered by headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from genpi.evaluate.html_report import highlight, html_report
from genpi.evaluate.report import bar_chart

def _env(solved):
    return {"solved": solved, "n_problems": 10, "n_unrunnable": 0, "success": solved / 10,
            "success_ci95": [0.0, 0.6], "valid_action_share": 0.9, "mean_turns": 2.5, "end_reasons": {"answered": 8}}


REPORT = {
    "scenario": "demo", "model": "tiny", "n_inputs": 2,
    "settings": {"seed": 0, "max_new_tokens": 16},
    "variants": {
        "with_prompt": {"score": 0.9, "checks": {"greeting": 0.9}, "expectations": 0.5, "env": _env(4)},
        "no_prompt": {"score": 0.1, "checks": {"greeting": 0.1}, "expectations": 0.0, "env": _env(0),
                      "agreement": {"exact": 0.0, "chrf": 0.2}, "kl_to_teacher": 2.1, "retention": 0.11},
        "genpi": {"score": 0.8, "checks": {"greeting": 1.0}, "expectations": 0.25,
                  "agreement": {"exact": 0.5, "chrf": 0.7}, "kl_to_teacher": 0.4, "retention": 0.89,
                  "env": _env(3)},
    },
    "notes": ["a note <with> markup"],
}
EXAMPLES = [{"input": "Hello?", "outputs": {"with_prompt": "Hi! The shop opens at 9.", "no_prompt": "Yes.",
                                           "genpi": "Hi! The shop opens at 10."}},
            {"input": "Price?", "outputs": {"with_prompt": "Hi! 20 euros.", "no_prompt": "", "genpi": "Hi! 20 euros."}}]
BENCH = {"variants": {"with_prompt": {"tokens": {"prefilled_per_conversation": 797.0},
                                      "flops": {"per_conversation": 2e11},
                                      "latency": {"ttft_s_mean": 0.8, "total_s": {"median": 7.4}}}},
         "ratios": {"with_prompt": {"flops": 1.0, "latency": 1.0}}}


def test_highlight_marks_what_the_reference_lacks():
    assert highlight("Hi! The shop opens at 10.", "Hi! The shop opens at 9.") == \
        "Hi! The shop opens at <mark>10.</mark>"
    assert highlight("a <b>", "a") == "a <mark>&lt;b&gt;</mark>"


def test_the_page_is_self_contained(tmp_path):
    png = tmp_path / "report.png"
    bar_chart(REPORT, png)
    page = html_report(REPORT, EXAMPLES, png, BENCH)
    assert "<script" not in page and not re.search(r"(src|href)=['\"]https?:", page)
    assert "src='data:image/png;base64," in page
    assert "Task success" in page and "3 / 10" in page and "check: greeting" in page
    assert "Inference cost" in page and "a note &lt;with&gt; markup" in page
    assert page.count("class='reply'") == 6 and "<mark>10.</mark>" in page


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium package is not installed")
def test_headless_chromium_renders_it(tmp_path):
    import matplotlib.image

    png = tmp_path / "report.png"
    bar_chart(REPORT, png)
    page = tmp_path / "report.html"
    page.write_text(html_report(REPORT, EXAMPLES, png, BENCH))
    shot = tmp_path / "shot.png"
    res = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--window-size=1280,1600", f"--screenshot={shot}", "--enable-logging=stderr", "--v=0",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln]
    assert console == [], console  # no console message at all, errors included
    img = matplotlib.image.imread(shot)
    assert img.shape[0] >= 1000 and img.std() > 0.05  # not a blank page: text, tables and the chart
    ink = (img[..., :3].mean(-1) < 0.5).mean()       # share of dark pixels (text)
    assert 0.005 < ink < 0.5
