"""benchmarks/results_table.py: the README's table rows come from report.json, nothing typed by hand."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "results_table.py"


def test_rows_from_a_run_folder(tmp_path, capsys, monkeypatch):
    report = {"scenario": "demo", "model": "tiny", "n_inputs": 3, "variants": {
        "with_prompt": {"score": 0.5, "checks": {"protocol": 0.5}, "expectations": None},
        "no_prompt": {"score": 0.0, "checks": {"protocol": 0.0}, "expectations": None, "retention": 0.0,
                      "check_retention": {"protocol": 0.0}, "kl_to_teacher": 1.5, "agreement": {"chrf": 0.25}},
        "genpi": {"score": 0.25, "checks": {"protocol": 0.25}, "expectations": 1.0, "retention": 0.5,
                  "check_retention": {"protocol": 0.5}, "kl_to_teacher": 0.75, "agreement": {"chrf": 0.5}}}}
    (tmp_path / "run" / "report").mkdir(parents=True)
    (tmp_path / "run" / "report" / "report.json").write_text(json.dumps(report))
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), str(tmp_path / "run")])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert e.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| demo (3) | with_prompt | 0.50 | protocol 0.50 | – | – | – | – |"
    assert lines[3] == "|  | no_prompt | 0.00 | protocol 0.00 | – | 0.00 | 1.50 | 0.25 |"
    assert lines[4] == "|  | **genpi** | 0.25 | protocol 0.25 | 1.00 | 0.50 (protocol 0.50) | 0.75 | 0.50 |"


def test_a_folder_without_a_report_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert "no report.json" in str(e.value.code)
