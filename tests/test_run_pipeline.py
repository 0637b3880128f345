"""`genpi run` with the smoke preset on the tiny model: every stage end to end, then a resumed rerun."""

from __future__ import annotations

import json

import pytest
from conftest import one_line_error

# every test runs a command on the tiny model and counts its stderr lines: the models are built beforehand
pytestmark = pytest.mark.usefixtures("materialized_models")

SCENARIO = """\
name: tiny-run
prompt:
  - {role: system, content: "You are a shell agent. Reply with a Plan line, then one command."}
  - {role: user, content: "Task: count the files in /etc"}
  - {role: assistant, content: "Plan: count them.\\n```sh\\nls /etc | wc -l\\n```"}
input_template: "Task: {input}"
seed_inputs:
  - How many users are there?
  - Show the size of /var/log.
  - Which process uses the most memory?
environment: {role: a Linux shell, end_when: the agent writes Final, max_turns: 2}
eval:
  checks:
    - {name: protocol, regex: '\\APlan: '}
  inputs:
    - How many files are in /tmp?
    - {input: "Which kernel is running?", expect: {contains_any: [uname]}}
"""


def test_smoke_run_end_to_end_and_resume(cli, write, tmp_path):
    s = write("s.yaml", SCENARIO)
    out = tmp_path / "RUN"
    args = ("run", str(s), "--out", str(out), "--preset", "smoke", "--methods", "genpi,sft")
    res = cli(*args, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "tiny-run: score with_prompt" in res.stdout and "genpi" in res.stdout and "bench:" in res.stdout
    assert (out / "data" / "records.jsonl").is_file()
    for m in ("genpi", "sft"):
        assert (out / "adapters" / m / "adapter_model.safetensors").is_file()
    report = json.loads((out / "report" / "report.json").read_text())
    assert list(report["variants"]) == ["with_prompt", "no_prompt", "genpi", "sft"]
    assert report["n_inputs"] == 2 and "retention" in report["variants"]["genpi"]
    assert (out / "bench" / "bench.json").is_file()
    page = (out / "report" / "report.html").read_text()  # with the bench's figures added after it ran
    assert "data:image/png;base64," in page and "Inference cost" in page and "internalized" in page
    for m in ("genpi", "sft"):  # every adapter's model card, with this evaluation's figures
        card = (out / "adapters" / m / "README.md").read_text()
        assert card.startswith("---\nbase_model: ") and "library_name: peft" in card and f"method:{m}" in card
        assert "prompt SHA-256 `" in card and "## Evaluation" in card and f"variant `{m}`" in card
        assert "| check `protocol` |" in card and "vllm serve " in card
    run = json.loads((out / "run.json").read_text())
    assert run["methods"] == ["genpi", "sft"] and set(run["seconds"]) >= {"synth", "train genpi", "eval", "bench"}

    # the same command again: every stage finds its output and nothing is redone
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    records = (out / "data" / "records.jsonl").read_text()
    outputs = (out / "report" / "outputs.jsonl").read_text()
    again = cli(*args, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")} == before
    assert (out / "data" / "records.jsonl").read_text() == records
    assert (out / "report" / "outputs.jsonl").read_text() == outputs
    assert json.loads((out / "report" / "report.json").read_text())["variants"] == report["variants"]


def test_run_sizes_override_the_preset(cli, write, tmp_path):
    s = write("s.yaml", SCENARIO)
    out = tmp_path / "RUN"
    res = cli("run", str(s), "--out", str(out), "--preset", "smoke", "--num-inputs", "3", "--max-turns", "1",
              "--epochs", "2", "--coverage", "0", "--kl", "0.5", "--cited-weight", "3", "--no-bench", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    records = [json.loads(x) for x in (out / "data" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(len(r["conversation"]) == 1 for r in records)
    trained = json.loads((out / "adapters" / "genpi" / "genpi.json").read_text())
    assert trained["train"]["epochs"] == 2 and trained["hyperparameters"]["kl"] == 0.5
    assert trained["hyperparameters"]["cited_weight"] == 3.0
    assert json.loads((out / "data" / "meta.json").read_text())["settings"]["coverage"] == 0.0
    assert not (out / "bench").exists()
    bad = cli("run", str(s), "--out", str(out), "--preset", "smoke", "--epochs", "0")
    one_line_error(bad, "--epochs must be above 0")
    bad = cli("run", str(s), "--out", str(out), "--preset", "smoke", "--coverage", "2")
    one_line_error(bad, "--coverage must be between 0 and 1")
    bad = cli("run", str(s), "--out", str(out), "--preset", "smoke", "--cited-weight", "-2")
    one_line_error(bad, "--cited-weight -2.0 must be a finite number above 0")


def test_run_rejects_bad_methods(cli, write, tmp_path):
    s = write("s.yaml", SCENARIO)
    bad = cli("run", str(s), "--out", str(tmp_path / "R"), "--preset", "smoke", "--methods", "genpi,magic")
    one_line_error(bad, "unknown method(s) magic")


def test_a_plain_text_prompt_runs_on_synthetic_held_out_inputs(cli, write, tmp_path):
    """The shortest path: a prompt in a text file, no seeds, no held-out inputs. Synthesis sets pseudo
    inputs aside before any record is made; training never sees them; evaluation runs on them."""
    p = write("prompt.txt", "You are a shell agent. Reply with a Plan line, then one command in a fenced block.")
    out = tmp_path / "RUN"
    res = cli("run", str(p), "--out", str(out), "--preset", "smoke", "--no-bench", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    from genpi.artifacts import DataDir

    data = DataDir(out / "data")
    held = data.read_heldout()
    assert len(held) == 4
    assert not {r.input for r in data.read_records()} & set(held)  # never trained on
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["n_inputs"] == 4 and any("synthetic" in n for n in report["notes"])
    outputs = [json.loads(ln) for ln in (out / "report" / "outputs.jsonl").read_text().splitlines()]
    assert {o["input"] for o in outputs} == set(held)
    assert report["variants"]["genpi"]["kl_to_teacher"] is not None
    assert "synthetic held-out inputs" in res.stderr
    again = cli("run", str(p), "--out", str(out), "--preset", "smoke", "--no-bench", timeout=900)
    assert again.returncode == 0 and DataDir(out / "data").read_heldout() == held  # resumed: the same set
