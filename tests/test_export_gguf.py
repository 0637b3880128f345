"""`genpi export --format gguf-lora`: a PEFT adapter as a llama.cpp LoRA GGUF for the embedded base GGUF."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import one_line_error

from genpi.errors import GenpiError
from genpi.export.gguf_lora import export_gguf_lora, rotary_rows
from genpi.models import _embedded_gguf, resolve_model

gguf = pytest.importorskip("gguf")
MODULES = {"self_attn.q_proj": (576, 576), "self_attn.k_proj": (192, 576), "mlp.down_proj": (576, 1536)}


def fake_adapter(folder, rank=4, alpha=8, layers=(0, 7), modules=MODULES, seed=0):
    """A LoRA adapter folder shaped for the embedded model (out x in per module), random weights."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for layer in layers:
        for mod, (out, inp) in modules.items():
            key = f"base_model.model.model.layers.{layer}.{mod}"
            tensors[f"{key}.lora_A.weight"] = rng.standard_normal((rank, inp)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = rng.standard_normal((out, rank)).astype(np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank, "lora_alpha": alpha}))
    return tensors


def test_the_file_has_llama_cpp_adapter_conventions(tmp_path):
    tensors = fake_adapter(tmp_path / "A")
    info = export_gguf_lora(tmp_path / "A", _embedded_gguf(), tmp_path / "a.gguf")
    assert info["weights"] == 6 and info["rank"] == 4 and info["architecture"] == "llama"
    r = gguf.GGUFReader(tmp_path / "a.gguf")
    assert r.fields["general.type"].contents() == "adapter"
    assert r.fields["adapter.type"].contents() == "lora"
    assert r.fields["adapter.lora.alpha"].contents() == 8.0
    assert r.fields["general.architecture"].contents() == "llama"
    got = {t.name: t for t in r.tensors}
    assert set(got) == {f"blk.{i}.{m}.weight.lora_{s}" for i in (0, 7) for m in ("attn_q", "attn_k", "ffn_down")
                        for s in "ab"}
    base = {t.name: tuple(int(x) for x in t.shape) for t in gguf.GGUFReader(_embedded_gguf()).tensors}
    for name, t in got.items():  # llama.cpp's loader check: a.ne[0] == W.ne[0], b.ne[1] == W.ne[1], ranks equal
        w = base[name.rsplit(".", 1)[0]]
        ne = tuple(int(x) for x in t.shape)
        assert (ne[0] == w[0] and ne[1] == 4) if name.endswith("lora_a") else (ne[1] == w[1] and ne[0] == 4)
    # the input side as PEFT wrote it; the down projection's output side too
    a = tensors["base_model.model.model.layers.7.mlp.down_proj.lora_A.weight"]
    np.testing.assert_array_equal(np.asarray(got["blk.7.ffn_down.weight.lora_a"].data), a)
    b = tensors["base_model.model.model.layers.7.mlp.down_proj.lora_B.weight"]
    np.testing.assert_array_equal(np.asarray(got["blk.7.ffn_down.weight.lora_b"].data), b)
    # query and key: B's rows in the base file's order (9 query heads, 3 key/value heads)
    for mod, kind, heads in (("q_proj", "attn_q", 9), ("k_proj", "attn_k", 3)):
        b = tensors[f"base_model.model.model.layers.0.self_attn.{mod}.lora_B.weight"]
        np.testing.assert_array_equal(np.asarray(got[f"blk.0.{kind}.weight.lora_b"].data), rotary_rows(b, heads))


@pytest.mark.slow
def test_rotary_rows_is_the_order_of_the_base_files_query_and_key(materialized_models):
    """The dequantized GGUF weights are transformers' fp32 weights with rows in rotary_rows order, so
    B reordered the same way adds to each weight exactly what the adapter adds in transformers."""
    from safetensors import safe_open

    r = gguf.GGUFReader(_embedded_gguf())
    hf = safe_open(str(resolve_model("default").path) + "/model.safetensors", "np")
    for mod, kind, heads in (("q_proj", "attn_q", 9), ("k_proj", "attn_k", 3), ("v_proj", "attn_v", None)):
        t = next(t for t in r.tensors if t.name == f"blk.2.{kind}.weight")
        w_gguf = gguf.quants.dequantize(t.data, t.tensor_type).reshape(tuple(int(x) for x in t.shape[::-1]))
        w_hf = hf.get_tensor(f"model.layers.2.self_attn.{mod}.weight")
        expect = rotary_rows(w_hf, heads) if heads else w_hf
        np.testing.assert_allclose(w_gguf, expect, atol=1e-6)
        if heads:
            assert not np.allclose(w_gguf, w_hf)  # the reordering is real, not a no-op


def test_bad_adapters_are_refused_in_one_line(tmp_path):
    with pytest.raises(GenpiError, match="is not a PEFT adapter folder"):
        export_gguf_lora(tmp_path, _embedded_gguf(), tmp_path / "x.gguf")
    fake_adapter(tmp_path / "W", modules={"mlp.down_proj": (576, 999)})
    with pytest.raises(GenpiError, match="trained on another base model"):
        export_gguf_lora(tmp_path / "W", _embedded_gguf(), tmp_path / "x.gguf")
    fake_adapter(tmp_path / "N", layers=(45,))
    with pytest.raises(GenpiError, match="no counterpart"):
        export_gguf_lora(tmp_path / "N", _embedded_gguf(), tmp_path / "x.gguf")


def test_cli_writes_the_file_and_an_ollama_modelfile(cli, tmp_path):
    fake_adapter(tmp_path / "A")
    res = cli("export", str(tmp_path / "A"), "--format", "gguf-lora", "--out", str(tmp_path / "out" / "a.gguf"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "out" / "a.gguf").is_file() and "llama-server -m " in res.stdout
    modelfile = (tmp_path / "out" / "Modelfile").read_text()
    assert f"FROM {_embedded_gguf()}" in modelfile and f"ADAPTER {(tmp_path / 'out' / 'a.gguf').resolve()}" in modelfile
    one_line_error(cli("export", str(tmp_path / "A"), "--format", "gguf-lora", "--out", str(tmp_path / "a.bin")),
                   "must be a file path ending in .gguf")
    one_line_error(cli("export", str(tmp_path / "nope"), "--format", "gguf-lora", "--out", str(tmp_path / "b.gguf")),
                   "not found")


def test_cli_refuses_a_base_model_that_is_not_gguf(cli, tmp_path, materialized_models):
    fake_adapter(tmp_path / "A")
    one_line_error(cli("export", str(tmp_path / "A"), "--format", "gguf-lora", "--out", str(tmp_path / "a.gguf"),
                       "--model", "tiny"), "llama.cpp runs GGUF files")


def test_merged_export_equals_the_adapter_on_its_base(cli, tiny_ref, tmp_path):
    import torch

    from genpi.bench.random_adapter import make_random_adapter
    from genpi.models import load_adapter, load_model

    a = make_random_adapter(tiny_ref, tmp_path / "A", std=0.2)
    res = cli("export", str(a), "--format", "merged", "--out", str(tmp_path / "M"), "--model", "tiny")
    assert res.returncode == 0, res.stderr[-2000:]
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "M").eval()
    peft = load_adapter(load_model(tiny_ref), a).eval()
    base = load_model(tiny_ref).eval()
    ids = torch.tensor([[1, 5, 9, 200, 17, 4]])
    with torch.no_grad():
        want, got, bare = peft(ids).logits, merged(ids).logits, base(ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(bare, want, atol=1e-3)  # the adapter does change the outputs
    one_line_error(cli("export", str(a), "--format", "merged", "--out", str(tmp_path / "M"), "--model", "tiny"),
                   "is not empty")
