"""The plan `genpi run` prints first: token estimates from the settings, times from paces measured here."""

from __future__ import annotations

import json

import pytest

from genpi import estimate
from genpi.models import encode_chat
from genpi.pipeline import RunConfig
from genpi.scenario import load_scenario

SCENARIO = """\
name: plan
prompt: "You are a careful assistant. Answer in one line."
seed_inputs: ["What time is it?", "Where is the station?"]
eval:
  inputs: ["How far is the sea?", "Who wrote this?"]
"""


@pytest.fixture
def sc(write):
    return load_scenario(write("plan.yaml", SCENARIO))


def test_plan_counts_tokens_from_the_settings(sc, tiny_tok):
    cfg = RunConfig.from_preset("quick", sc, synth={"num_inputs": 10, "max_turns": 1, "coverage": 0.0})
    p = estimate.plan(sc, tiny_tok, cfg, ["genpi", "sft"])
    assert p.prompt_tokens == len(encode_chat(tiny_tok, [m.model_dump() for m in sc.prompt], "complete"))
    s = cfg.synth
    calls = -(-(3 * -(-10 // s.inputs_per_call)) // 2)
    assert p.tokens["synth"] == calls * s.input_tokens + 10 * (2 * 64 + 64)  # one turn: no role-play
    assert p.tokens["train genpi"] > p.tokens["train sft"] > 0            # PG and KL on top of SFT
    assert p.tokens["eval"] == 2 * 4 * 64                                 # 2 inputs, 4 variants
    more = estimate.plan(sc, tiny_tok, RunConfig.from_preset("quick", sc, synth={"num_inputs": 20, "max_turns": 1,
                                                                                 "coverage": 0.0}), ["genpi"])
    assert more.tokens["train genpi"] == 2 * p.tokens["train genpi"]
    # stored teacher log-probabilities: one read of every record with the prompt, and no teacher pass in training
    top = estimate.plan(sc, tiny_tok, RunConfig.from_preset("quick", sc, synth={
        "num_inputs": 10, "max_turns": 1, "coverage": 0.0, "teacher_logprobs": 20}), ["genpi", "sft"])
    assert top.tokens["teacher log-probs"] == 10 * (p.prompt_tokens + top.tokens["train sft"] // (10 * cfg.train.epochs))
    assert top.tokens["train genpi"] < p.tokens["train genpi"] and top.tokens["train sft"] == p.tokens["train sft"]
    # records repeated when their teacher uses the prompt: at most every SFT example (and its teacher pass) 3 times
    rep = estimate.plan(sc, tiny_tok, RunConfig.from_preset("quick", sc, synth={"num_inputs": 10, "max_turns": 1,
                        "coverage": 0.0}, train={"grounded_repeats": 3}), ["sft"])
    assert rep.tokens["train sft"] == 3 * p.tokens["train sft"] and "at most" in rep.details["train sft"]
    # a PG example for each request that names a unit: at most one per record and epoch, on the genpi term only
    units = estimate.plan(sc, tiny_tok, RunConfig.from_preset("quick", sc, synth={"num_inputs": 10, "max_turns": 1,
                          "coverage": 0.0}, train={"pg_units": True}), ["genpi", "sft"])
    assert units.tokens["train genpi"] > p.tokens["train genpi"] and units.tokens["train sft"] == p.tokens["train sft"]


def test_paces_round_trip_and_give_times(sc, tiny_tok, tiny_ref, tmp_path, monkeypatch):
    monkeypatch.setenv("GENPI_CACHE", str(tmp_path))
    cfg = RunConfig.from_preset("quick", sc)
    p = estimate.plan(sc, tiny_tok, cfg, ["genpi"])
    keys = {k: estimate.rate_key(k, tiny_ref) for k in p.tokens}
    assert estimate.seconds(p, keys) == {k: None for k in p.tokens}
    assert "no stage has run here yet" in estimate.describe(p, estimate.seconds(p, keys))
    estimate.record(keys["synth"], p.tokens["synth"], 120.0)  # a pace measured on this very plan
    estimate.record(keys["eval"], 10, 0.5)                    # too short to be a pace: ignored
    secs = estimate.seconds(p, keys)
    assert secs["synth"] == pytest.approx(120.0, rel=1e-3) and secs["eval"] is None
    text = estimate.describe(p, secs)
    assert "synth: " in text and "about 2 min here" in text and "2 stage(s) not yet measured" in text
    assert json.loads((tmp_path / "rates.json").read_text())[keys["synth"]]["seconds"] == 120.0
    # a pace an older genpi kept under its fingerprint of the same model is read where today's key has none
    old = {k: estimate.rate_key(k, tiny_ref, fingerprint=tiny_ref.legacy_fingerprint()) for k in p.tokens}
    estimate.record(old["eval"], p.tokens["eval"], 60.0)
    older = estimate.older_keys(keys, tiny_ref)
    assert older == {k: [old[k]] for k in p.tokens}
    assert estimate.seconds(p, keys)["eval"] is None and estimate.seconds(p, keys, older)["eval"] == pytest.approx(60.0)


def test_dry_run_prints_the_plan_and_writes_nothing(cli, write, tmp_path, materialized_models):
    s = write("plan.yaml", SCENARIO)
    res = cli("run", str(s), "--out", str(tmp_path / "RUN"), "--preset", "smoke", "--dry-run")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("genpi run: plan: a ") and "train genpi:" in res.stdout
    assert not (tmp_path / "RUN").exists()
