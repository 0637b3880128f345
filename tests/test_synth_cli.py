"""`genpi synth` on the command line: bad flags are one-line errors; the smoke preset runs end to end."""

from __future__ import annotations

import json

import pytest
from conftest import one_line_error

# every test runs a command with --model and counts its stderr lines: the models are built beforehand
pytestmark = pytest.mark.usefixtures("materialized_models")

SCENARIO = """\
name: tiny-shell
prompt: "You are a shell agent. Reply with Think: and Act: lines."
seed_inputs:
  - How many users are there?
  - Show the free disk space.
"""


def test_bad_counts_are_one_line_errors(cli, write, tmp_path):
    s = write("s.yaml", SCENARIO)
    res = cli("synth", str(s), "--out", str(tmp_path / "D"), "--model", "tiny", "--num-inputs", "0")
    one_line_error(res, "--num-inputs must be at least 1 (got 0)")


@pytest.mark.slow
def test_smoke_preset_end_to_end(cli, write, tmp_path):
    s = write("s.yaml", SCENARIO)
    out = tmp_path / "D"
    res = cli("synth", str(s), "--out", str(out), "--model", "tiny", "--preset", "smoke", "--num-inputs", "2", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "2 of 2 records" in res.stdout and "seconds per stage" in res.stdout
    lines = (out / "records.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == 2 and all(r["teacher_output"] and r["reason"] for r in recs)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "done" and meta["identity"]["base_model"]["spec"] == "tiny"
    # the same command again: nothing to do, nothing changes
    res = cli("synth", str(s), "--out", str(out), "--model", "tiny", "--preset", "smoke", "--num-inputs", "2", "--quiet")
    assert res.returncode == 0 and (out / "records.jsonl").read_text().splitlines() == lines
