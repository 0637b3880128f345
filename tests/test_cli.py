"""The CLI contract: six verbs, and bad input as a one-line error with exit code 2."""

from __future__ import annotations

import pytest
from conftest import one_line_error

from genpi.cli import VERBS, main

OS_PROMPT = "You are a shell agent. Reply with 'Act: bash' and a command.\n"


def test_help_lists_the_six_verbs(cli):
    res = cli("--help", fresh=True)
    assert res.returncode == 0
    for verb in VERBS:
        assert f"    {verb}" in res.stdout


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    assert ("--model" in capsys.readouterr().out) == (verb != "init")  # init reads a prompt file, loads no model


@pytest.mark.parametrize("case,message", [
    ("missing", "nope.yaml' not found"),
    ("empty", "the prompt is empty"),
    ("malformed", "is not valid YAML at line 2"),
    ("unknown_key", "unknown key 'seeds'"),
    ("binary", "is binary, not text"),
    ("bad_model", "model '/nonexistent' not found"),
])
def test_synth_rejects_bad_input(case, message, cli, write, tmp_path):
    # a bad scenario is reported before the model is resolved: no model is built for these
    model = "default"
    if case == "missing":
        scenario = tmp_path / "nope.yaml"
    elif case == "empty":
        scenario = write("s.yaml", "prompt: ''\n")
    elif case == "malformed":
        scenario = write("s.yaml", "prompt: [1, 2\n  bad: {\n")
    elif case == "unknown_key":
        scenario = write("s.yaml", "prompt: P\nseeds: [a]\n")
    elif case == "binary":
        scenario = write("p.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00")
    else:
        scenario, model = write("p.txt", OS_PROMPT), "/nonexistent"
    res = cli("synth", str(scenario), "--out", str(tmp_path / "X"), "--model", model)
    assert one_line_error(res, message).startswith("genpi synth: error:")


@pytest.mark.usefixtures("materialized_models")
def test_eval_rejects_a_missing_adapter(cli, write, tmp_path):
    scenario = write("s.yaml", "prompt: P\neval: {inputs: [q]}\n")
    res = cli("eval", str(scenario), "--adapter", "/nonexistent", "--out", str(tmp_path / "R"), "--model", "tiny")
    assert "adapter folder '/nonexistent' not found" in one_line_error(res)


def test_usage_mistakes_are_one_line_too(cli):
    res = cli("train", "s.yaml")  # --data and --out missing
    assert "required" in one_line_error(res)
    res = cli("frobnicate")
    assert "invalid choice" in one_line_error(res)


@pytest.mark.usefixtures("materialized_models")
def test_out_path_that_is_a_file(cli, write):
    scenario = write("p.txt", OS_PROMPT)
    res = cli("synth", str(scenario), "--out", str(scenario), "--model", "tiny")
    assert "is a file" in one_line_error(res)


@pytest.mark.usefixtures("materialized_models")
def test_api_flags_must_come_together(cli, write, tmp_path):
    scenario = write("p.txt", OS_PROMPT)
    res = cli("synth", str(scenario), "--out", str(tmp_path / "D"), "--model", "tiny", "--api-base", "http://x/v1")
    assert "--api-model" in one_line_error(res)
