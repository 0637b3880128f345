"""The base model behind a real OpenAI-compatible server (`transformers serve` on loopback): synthesis
sends every role there, the rest of the pipeline runs on it, and another model is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import one_line_error, transformers_server
from test_run_pipeline import SCENARIO  # a small agent scenario with a check

from genpi.errors import GenpiError
from genpi.generate import FakeBackend
from genpi.generate.same_model import agreement, check_same_model


def test_agreement_counts_probes_whose_first_words_match():
    assert agreement(["Red, orange and yellow.", "Paris is", ""], ["red, orange and green", "Lyon is", ""]) == \
        [True, False, True]
    assert agreement(["Paris"], ["Paris is the capital"]) == [True]   # a shorter reply: its words
    assert agreement([""], ["Paris"]) == [False]                      # nothing against something


def test_most_probes_must_agree():
    same = FakeBackend(lambda c: "One two three four")
    check_same_model(same, FakeBackend(lambda c: "one two three five"), "A", "B", "--model-api-base")
    with pytest.raises(GenpiError, match="not the base model A: greedy replies to 3 of 3 probes differ"):
        check_same_model(same, FakeBackend(lambda c: "Something else entirely"), "A", "B", "--model-api-base")


@pytest.fixture(scope="module")
def served_dir(tiny_ref, tmp_path_factory):
    """The tiny model's files, with do_sample on in its generation config: `transformers serve` samples
    at a temperature above 0 only when the model's own generation config says so."""
    d = tmp_path_factory.mktemp("served") / "tiny"
    d.mkdir()
    for f in Path(tiny_ref.path).iterdir():
        (d / f.name).symlink_to(f)
    gen = json.loads((d / "generation_config.json").read_text())
    (d / "generation_config.json").unlink()
    (d / "generation_config.json").write_text(json.dumps({**gen, "do_sample": True}))
    return str(d)


@pytest.fixture(scope="module")
def served_tiny(served_dir):
    with transformers_server(served_dir, timeout=120) as base:
        yield base + "/v1"


@pytest.mark.slow
def test_run_with_the_base_model_served(served_tiny, served_dir, cli, write, tmp_path):
    s = write("s.yaml", SCENARIO)
    out = tmp_path / "RUN"
    res = cli("run", str(s), "--out", str(out), "--preset", "smoke", "--model", "tiny", "--no-bench",
              "--model-api-base", served_tiny, "--model-api-name", served_dir, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((out / "data" / "meta.json").read_text())
    api = {"kind": "api", "api_base": served_tiny, "api_model": served_dir}
    assert meta["endpoints"] == {"inputs": api, "teacher": api, "student": api, "reason": api,
                                 "roleplay_agent": api, "roleplay_environment": api}
    assert meta["counts"]["records"] == meta["counts"]["requested"]
    assert (out / "adapters" / "genpi" / "adapter_model.safetensors").is_file()
    assert "genpi" in json.loads((out / "report" / "report.json").read_text())["variants"]


@pytest.mark.slow
def test_another_served_model_is_refused(served_tiny, served_dir, cli, write, tmp_path):
    """The embedded model here, the random tiny one served: refused in one line, nothing synthesized."""
    s = write("s.yaml", SCENARIO)
    res = cli("synth", str(s), "--out", str(tmp_path / "D"), "--preset", "smoke", "--model", "default",
              "--model-api-base", served_tiny, "--model-api-name", served_dir, timeout=600)
    one_line_error(res, "is not the base model", "probes differ", "--model-api-base")
    assert not (tmp_path / "D" / "records.jsonl").exists()


@pytest.mark.slow
def test_a_server_without_prompt_log_probabilities_is_refused_before_any_work(served_tiny, served_dir, cli, write,
                                                                             tmp_path):
    """`transformers serve` gives no prompt log-probabilities: --teacher-logprobs is refused in one line."""
    s = write("s.yaml", SCENARIO)
    res = cli("synth", str(s), "--out", str(tmp_path / "D"), "--preset", "smoke", "--model", "tiny",
              "--model-api-base", served_tiny, "--model-api-name", served_dir, "--teacher-logprobs", "5", timeout=600)
    one_line_error(res, "prompt log-probabilities", "leave out --teacher-logprobs")
    assert not (tmp_path / "D" / "records.jsonl").exists()
