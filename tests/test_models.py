"""Model resolution: embedded default, tiny test model, folders, GGUF files, hub cache; adapter checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from genpi.errors import GenpiError
from genpi.artifacts import AdapterDir
from genpi.models import EMBEDDED_GGUF, _embedded_gguf, fingerprint_aliases, resolve_model


def test_default_is_a_materialized_fp32_folder():
    ref = resolve_model("default")
    assert ref.kind == "default" and (Path(ref.path) / "config.json").is_file()
    assert (Path(ref.path) / "model.safetensors").is_file()
    assert "SmolLM2-135M-Instruct" in ref.name


def test_tiny_model_shares_the_real_tokenizer_and_template(tiny_ref, tiny_tok, tiny_model):
    assert tiny_ref.kind == "tiny"
    assert tiny_model.config.vocab_size == len(tiny_tok)
    assert tiny_model.num_parameters() < 10_000_000
    text = tiny_tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                        add_generation_prompt=True)
    assert "<|im_start|>user\nhi<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert tiny_tok.pad_token_id == tiny_tok.eos_token_id  # SmolLM2: pad == eos == <|im_end|>
    assert resolve_model("tiny").fingerprint() == tiny_ref.fingerprint()


def test_fingerprint_names_the_model_not_the_transformers_that_saved_it(tiny_ref, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_ref.path, folder)
    ref = resolve_model(str(folder))
    before, legacy = ref.fingerprint(), ref.legacy_fingerprint()
    assert before == tiny_ref.fingerprint() and legacy == tiny_ref.legacy_fingerprint() != before
    assert fingerprint_aliases(ref) == {legacy: before}

    def rewrite(name, **changes):  # the same file written again: other key order, indent, the given changes
        cfg = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps(dict(reversed({**cfg, **changes}.items())), indent=1))

    rewrite("config.json", transformers_version="9.9.9")
    rewrite("generation_config.json", transformers_version="9.9.9")
    assert ref.fingerprint() == before and ref.legacy_fingerprint() != legacy
    rewrite("config.json", rms_norm_eps=1e-3)  # what the model computes changed: another model
    assert ref.fingerprint() != before
    gguf = resolve_model(str(_embedded_gguf()))  # a GGUF file is hashed as it is: nothing to alias
    assert fingerprint_aliases(gguf) == {}


def test_local_folder_and_gguf_file(tiny_ref):
    assert resolve_model(tiny_ref.path).kind == "dir"
    gguf = _embedded_gguf()
    ref = resolve_model(str(gguf))
    assert ref.kind == "gguf" and ref.gguf_file == EMBEDDED_GGUF
    assert resolve_model(str(gguf.parent)).kind == "gguf"  # a folder holding one .gguf file


@pytest.mark.parametrize("spec,needle", [
    ("/nonexistent", "not found"),
    ("/nonexistent/model.gguf", "not found"),
    ("nobody-here/no-such-model-xyz", "never downloads"),
    ("./relative/missing", "not found"),
])
def test_unknown_models_say_how_to_get_them(spec, needle):
    with pytest.raises(GenpiError, match=needle):
        resolve_model(spec)


def test_folder_without_config_is_rejected(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(GenpiError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_adapter_dir_checks(tmp_path):
    with pytest.raises(GenpiError, match="not found"):
        AdapterDir(tmp_path / "none").require()
    with pytest.raises(GenpiError, match="adapter_model.safetensors"):
        (tmp_path / "adapter_config.json").write_text("{}")
        AdapterDir(tmp_path).require()
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    assert AdapterDir(tmp_path).require().path == tmp_path


def test_device_comes_from_genpi_device_or_the_hardware(monkeypatch):
    import torch

    from genpi.models import default_device

    monkeypatch.delenv("GENPI_DEVICE", raising=False)
    assert default_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("GENPI_DEVICE", "cpu")
    assert default_device() == "cpu"
    monkeypatch.setenv("GENPI_DEVICE", "warp-drive")
    with pytest.raises(GenpiError, match="GENPI_DEVICE='warp-drive' is not a device"):
        default_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("GENPI_DEVICE", "cuda")
        with pytest.raises(GenpiError, match="sees no CUDA GPU"):
            default_device()
