"""Folders written before genpi.artifacts owned the file contracts (commit 8f2481e) still load, train, resume
and evaluate: tests/fixtures/main-8f2481e holds a data folder and an adapter that commit's smoke run wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from genpi.artifacts import AdapterDir, DataDir
from genpi.scenario import load_scenario

OLD = Path(__file__).parent / "fixtures" / "main-8f2481e"
OLD_TINY = "697e3f86d99aeab1"  # the tiny model's fingerprint in the fixture (built with transformers 5.24.0)


@pytest.fixture
def old(tmp_path):
    """A writable copy of the old folders (nothing may change the fixture itself)."""
    shutil.copytree(OLD, tmp_path / "old")
    return tmp_path / "old"


def test_old_records_meta_and_genpi_json_load(old):
    data = DataDir(old / "data")
    records = data.read_records(require=True)
    assert len(records) == 4 and all(r.reason and r.student_output for r in records)
    assert records[0].turns()[0]["content"] == records[0].teacher_output
    meta = data.read_meta()
    assert meta.status == "done" and meta.identity["settings"]["max_turns"] == 2
    adapter = AdapterDir(old / "adapter").require()
    m = adapter.read_meta()
    assert m.method == "genpi" and m.base_model.spec == "tiny" and m.data.dir == "/tmp/old/data"
    assert m.data.file == "records.jsonl"  # a field of the old layout, kept as it was
    assert adapter.base_model_spec() == "tiny"


def test_old_data_resumes_without_generating_and_trains(old, tiny_ref, tmp_path):
    from genpi.generate import FakeBackend
    from genpi.synth import SynthConfig, synthesize
    from genpi.train import TrainConfig, train_adapter

    # The fixture's meta.json holds the tiny model's fingerprint as genpi computed it then: over the raw bytes of
    # config.json, which held the version of the transformers that built the model (5.24.0). State it as that
    # old fingerprint of the tiny model built here (the same seeded weights, whatever transformers is
    # installed), so that the folder resumes the way a user's folder from that genpi does after an upgrade.
    meta = old / "data" / "meta.json"
    assert OLD_TINY in meta.read_text() and tiny_ref.legacy_fingerprint() != tiny_ref.fingerprint()
    meta.write_text(meta.read_text().replace(OLD_TINY, tiny_ref.legacy_fingerprint()))
    sc = load_scenario(old / "scenario.yaml")
    nothing = FakeBackend([], name="nothing")  # any call would fail: the old folder is complete
    summary = synthesize(sc, tiny_ref, None, old / "data", SynthConfig.from_preset("smoke", sc),
                         base_backend=nothing, generator_backend=nothing, progress=False)
    assert summary["records"] == 4 and nothing.calls == []
    s = train_adapter(sc, tiny_ref, old / "data", tmp_path / "new", TrainConfig.from_preset("smoke", max_target_tokens=48,
                                                                                              max_source_tokens=256),
                      progress=False)
    assert s["data"]["sft_examples"] == 4 and AdapterDir(tmp_path / "new").require().is_complete()


def test_old_adapter_evaluates(old, tiny_ref, tmp_path):
    from genpi.evaluate import EvalConfig, evaluate

    sc = load_scenario(old / "scenario.yaml")
    report = evaluate(sc, tiny_ref, [old / "adapter"], tmp_path / "r", EvalConfig(max_new_tokens=4))
    assert list(report["variants"]) == ["with_prompt", "no_prompt", "genpi"]  # named by the old genpi.json's method
    assert report["variants"]["genpi"]["kl_to_teacher"] > 0
