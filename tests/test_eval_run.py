"""`genpi eval` end to end on the tiny model, with adapters built by plain PEFT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genpi.evaluate import evaluate
from genpi.evaluate.runner import plan_variants

SCENARIO = """\
name: tiny-eval
prompt:
  - {role: system, content: "Answer every task with a Plan line and then a command."}
  - {role: user, content: "Task: count files in /etc"}
  - {role: assistant, content: "Plan: count them.\\n```sh\\nls /etc | wc -l\\n```"}
input_template: "Task: {input}"
seed_inputs: [count lines in /etc/hosts, list /tmp]
environment: {role: a shell, end_when: the agent writes Final, max_turns: 3}
eval:
  checks:
    - {name: protocol, regex: '\\APlan: '}
    - {name: anything, regex: '(?s).'}
  inputs:
    - how big is /var
    - {input: list /tmp, expect: {contains_any: ["ls", "/tmp"]}}
    - {input: who am i, expect: {regex: 'whoami'}}
"""


def make_adapter(ref, out: Path, method: str | None = None, seed: int = 1) -> Path:
    """A LoRA adapter with random (non-zero) weights, saved by plain PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model

    from genpi.models import load_model

    torch.manual_seed(seed)
    model = get_peft_model(load_model(ref), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                       init_lora_weights=False))
    model.save_pretrained(str(out), safe_serialization=True)
    if method:
        (out / "genpi.json").write_text(json.dumps({"method": method, "base_model": {"spec": "tiny"}}))
    return out


@pytest.fixture(scope="module")
def adapters(tiny_ref, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_ref, root / "a1", "genpi", 1), make_adapter(tiny_ref, root / "a2", None, 2)]


@pytest.fixture(scope="module")
def evaluated(tiny_ref, adapters, tmp_path_factory):
    scen = tmp_path_factory.mktemp("scen") / "s.yaml"
    scen.write_text(SCENARIO)
    out = tmp_path_factory.mktemp("report")
    report = evaluate(scen, tiny_ref, adapters, out, "smoke", max_new_tokens=6, batch_size=2)
    return scen, out, report


def test_report_json_schema(evaluated, adapters):
    _, out, report = evaluated
    saved = json.loads((out / "report.json").read_text())
    assert saved == report
    assert report["scenario"] == "tiny-eval" and report["n_inputs"] == 3 and report["model"]
    v = report["variants"]
    assert list(v) == ["with_prompt", "no_prompt", "genpi", "a2"]
    for name, var in v.items():
        assert set(var["checks"]) == {"protocol", "anything"}
        assert all(0.0 <= r <= 1.0 for r in var["checks"].values())
        assert 0.0 <= var["score"] <= 1.0
        assert var["expectations"] is None or 0.0 <= var["expectations"] <= 1.0
    assert "agreement" not in v["with_prompt"] and "retention" not in v["with_prompt"]
    for name in ("no_prompt", "genpi", "a2"):
        assert set(v[name]["agreement"]) == {"exact", "chrf"}
        assert v[name]["kl_to_teacher"] >= 0.0
        assert "retention" in v[name] and "normalized" in v[name]
    # the random adapters change the model, so their KL to the teacher differs from the floor's
    assert v["genpi"]["kl_to_teacher"] != pytest.approx(v["no_prompt"]["kl_to_teacher"])
    assert report["adapters"] == {"genpi": str(adapters[0]), "a2": str(adapters[1])}
    assert report["settings"]["max_new_tokens"] == 6 and report["settings"]["decoding"] == "greedy"


def test_retention_follows_the_scores(evaluated):
    v = evaluated[2]["variants"]
    ceiling, floor = v["with_prompt"]["score"], v["no_prompt"]["score"]
    for name in ("no_prompt", "genpi"):
        want = None if ceiling == 0 else v[name]["score"] / ceiling
        assert v[name]["retention"] == (pytest.approx(want) if want is not None else None)
        want_n = None if ceiling == floor else (v[name]["score"] - floor) / (ceiling - floor)
        assert v[name]["normalized"] == (pytest.approx(want_n) if want_n is not None else None)
        for check, rate in v[name]["checks"].items():
            top = v["with_prompt"]["checks"][check]
            assert v[name]["check_retention"][check] == (None if not top else pytest.approx(rate / top))


def test_markdown_png_and_outputs(evaluated):
    _, out, report = evaluated
    md = (out / "report.md").read_text()
    assert "| **with_prompt** |" in md and "| **genpi** |" in md and "## Examples" in md
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(x) for x in (out / "outputs.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 3
    assert {r["variant"] for r in rows} == set(report["variants"])
    assert all(r["conversation"][0]["content"] == r["output"] for r in rows)


def test_rerun_reuses_stored_outputs(evaluated, tiny_ref, adapters, monkeypatch):
    scen, out, report = evaluated
    from genpi.generate import LocalBackend

    def boom(*a, **k):
        raise AssertionError("a stored reply was generated again")

    monkeypatch.setattr(LocalBackend, "chat", boom)
    again = evaluate(scen, tiny_ref, adapters, out, "smoke", max_new_tokens=6, batch_size=2)
    assert again["variants"] == report["variants"]


def test_seed_overlap_warns_but_runs(evaluated, capsys):
    _, _, report = evaluated
    assert any("'list /tmp'" in n and "seed input" in n for n in report["notes"])


def test_variant_names_are_unique(tmp_path, adapters):
    (tmp_path / "genpi").mkdir()
    names = [v.name for v in plan_variants([adapters[0], adapters[0], tmp_path / "genpi"])]
    assert names == ["with_prompt", "no_prompt", "genpi", "genpi-2", "genpi-3"]


def test_multi_turn_reports_per_turn_rates(tiny_ref, tmp_path):
    scen = tmp_path / "s.yaml"
    scen.write_text(SCENARIO)
    report = evaluate(scen, tiny_ref, [], tmp_path / "r", "smoke", max_new_tokens=4, turns=2, batch_size=3)
    for v in report["variants"].values():
        turns = v["multi_turn"]
        assert turns[0]["turn"] == 1 and turns[0]["n"] == 3
        assert all(set(t["checks"]) == {"protocol", "anything"} for t in turns)
    rows = [json.loads(x) for x in (tmp_path / "r" / "outputs.jsonl").read_text().splitlines()]
    assert all(len(r["conversation"]) in (1, 3) for r in rows)
    assert "Pass rates per agent turn" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.usefixtures("materialized_models")
def test_cli_eval_missing_adapter_is_one_line(cli, write, tmp_path):
    scen = write("s.yaml", SCENARIO)
    res = cli("eval", str(scen), "--model", "tiny", "--adapter", str(tmp_path / "nope"), "--out", str(tmp_path / "R"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "adapter folder" in res.stderr and "Traceback" not in res.stderr


def test_cli_eval_writes_the_reports(cli, write, tmp_path, adapters):
    scen = write("s.yaml", SCENARIO)
    res = cli("eval", str(scen), "--model", "tiny", "--adapter", str(adapters[0]), "--out", str(tmp_path / "R"),
              "--preset", "smoke", "--max-new-tokens", "4")
    assert res.returncode == 0, res.stderr
    assert "with_prompt" in res.stdout and "genpi" in res.stdout
    report = json.loads((tmp_path / "R" / "report.json").read_text())
    assert set(report["variants"]) == {"no_prompt", "with_prompt", "genpi"}
    assert report["settings"]["max_new_tokens"] == 4
    assert (tmp_path / "R" / "report.md").is_file() and (tmp_path / "R" / "report.png").is_file()
    bad = cli("eval", str(scen), "--model", "tiny", "--out", str(tmp_path / "R2"), "--turns", "0")
    assert bad.returncode == 2 and "--turns" in bad.stderr
