"""The model card's evaluation table: figures come from the report, rows appear only when measured."""

from __future__ import annotations

from genpi.artifacts.model_card import write_model_card


def _report(kept):
    facts = {"score": 0.6, "checks": {"greeting": 1.0}, "expectations": 0.2, "kl_to_teacher": 0.33,
             "agreement": {"chrf": 0.5}}
    if kept is not None:
        facts["expectations_kept"] = kept
    return {"scenario": "desk", "n_inputs": 18, "variants": {
        "with_prompt": {"score": 0.64, "checks": {"greeting": 1.0}, "expectations": 0.28}, "a": facts}}


def test_card_shows_the_facts_kept_of_the_prompted_model_when_measured(tmp_path):
    card = write_model_card(tmp_path, report=_report(0.4), report_dir=tmp_path / "r1", variant="a").read_text()
    assert "| expectations (facts) | 0.20 | 0.28 |" in card
    assert "| of the facts the prompted model used, the share it uses too | 0.40 | 1.00 |" in card
    assert "| KL to the prompted model (nats/token) | 0.33 | – |" in card
    (tmp_path / "b").mkdir()
    card = write_model_card(tmp_path / "b", report=_report(None), report_dir=tmp_path / "r2", variant="a").read_text()
    assert "| expectations (facts) |" in card and "share it uses too" not in card
