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


@pytest.mark.slow
def test_export_hf_writes_a_chat_dataset_trl_reads(cli, write, tmp_path, tiny_tok):
    datasets = pytest.importorskip("datasets")
    s = write("s.yaml", SCENARIO.replace('name: tiny-shell', 'name: tiny-shell\nstudent_template: "Task: {input}"'))
    out, hf = tmp_path / "D", tmp_path / "HF"
    res = cli("synth", str(s), "--out", str(out), "--model", "tiny", "--preset", "smoke", "--num-inputs", "2",
              "--quiet", "--export-hf", str(hf))
    assert res.returncode == 0, res.stderr
    ds = datasets.load_from_disk(str(hf))["train"]
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(ds) == 2 and ds[0]["id"] == recs[0]["id"]
    msgs = ds[0]["messages"]
    assert msgs[0] == {"role": "user", "content": f"Task: {recs[0]['input']}"}   # no prompt
    assert [m["content"] for m in msgs[1:]] == [t["content"] for t in recs[0]["conversation"]]
    assert ds[0]["prompt_messages"][0]["content"].startswith("You are a shell agent")
    assert tiny_tok.apply_chat_template(msgs, tokenize=False)  # the chat format a trainer renders
    one_line_error(cli("synth", str(s), "--out", str(out), "--model", "tiny", "--preset", "smoke", "--num-inputs",
                       "2", "--quiet", "--export-hf", str(hf)), "is not empty")
