"""A PEFT LoRA adapter as a llama.cpp LoRA adapter file (GGUF), written with the `gguf` package.

llama.cpp loads a LoRA GGUF beside its base model (`llama-server -m BASE.gguf --lora ADAPTER.gguf`,
Ollama's `ADAPTER`): metadata `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`,
and `general.architecture` the base's; for every adapted weight `W` of the base GGUF (say
`blk.3.attn_q.weight`) two tensors `blk.3.attn_q.weight.lora_a` (PEFT's lora_A, rank x in) and
`...lora_b` (lora_B, out x rank), so that llama.cpp adds (alpha / rank) * B @ A to W.

One subtlety: the Hugging Face -> GGUF conversion of a Llama reorders the rows of the query and key
projections (interleaved rotary halves), and transformers undoes it when it loads a GGUF. The adapter
was trained on transformers' layout, so its B matrices for attn_q and attn_k get the same row order
as the base file's weights; A (the input side) is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import GenpiError

PREFIX = "base_model.model."
PERMUTED = {"attn_q": "head_count", "attn_k": "head_count_kv"}  # base rows reordered by the conversion


def rotary_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """The GGUF conversion's row order of a Llama query/key projection: in each head, the rows of the
    first and second rotary halves interleaved (row pairs (i, i + d/2) become (2i, 2i + 1))."""
    out_dim = w.shape[0]
    return w.reshape(heads, 2, out_dim // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def export_gguf_lora(adapter_dir: str | Path, base_gguf: str | Path, out_file: str | Path) -> dict:
    """Write `out_file`; return a summary (tensors, rank, alpha, architecture). One-line errors on a
    folder that is not a LoRA adapter, or an adapter whose weights the base GGUF does not have."""
    import gguf
    from safetensors.numpy import load_file

    adapter_dir, base_gguf, out_file = Path(adapter_dir), Path(base_gguf), Path(out_file)
    cfg_path, weights = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    if not (cfg_path.is_file() and weights.is_file()):
        raise GenpiError(f"'{adapter_dir}' is not a PEFT adapter folder (adapter_config.json and "
                         "adapter_model.safetensors): pass a folder written by 'genpi train'")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("peft_type") != "LORA" or cfg.get("use_dora") or cfg.get("modules_to_save"):
        raise GenpiError(f"'{adapter_dir}' is not a plain LoRA adapter (DoRA and modules_to_save have no "
                         "llama.cpp form): export a LoRA adapter")
    reader = gguf.GGUFReader(base_gguf)
    arch = _field(reader, "general.architecture")
    try:
        arch_enum = next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == arch)
    except StopIteration:
        raise GenpiError(f"base GGUF '{base_gguf}' has architecture {arch!r}, which this gguf package does not "
                         "know: upgrade gguf") from None
    blocks = int(_field(reader, f"{arch}.block_count"))
    heads = {k: int(_field(reader, f"{arch}.attention.{k}")) for k in set(PERMUTED.values())}
    base_shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    names = gguf.get_tensor_name_map(arch_enum, blocks)

    tensors = load_file(str(weights))
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        for side in ("lora_A", "lora_B"):
            tag = f".{side}.weight"
            if key.endswith(tag):
                module = key[:-len(tag)].removeprefix(PREFIX)
                pairs.setdefault(module, {})[side] = value
    if not pairs:
        raise GenpiError(f"'{weights}' holds no lora_A / lora_B weights: pass a LoRA adapter folder")

    writer = gguf.GGUFWriter(str(out_file), arch)
    writer.add_string(gguf.Keys.General.TYPE, "adapter")
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(cfg["lora_alpha"]))
    count, rank = 0, None
    for module in sorted(pairs):
        ab = pairs[module]
        if set(ab) != {"lora_A", "lora_B"}:
            raise GenpiError(f"adapter weight {module} has only {', '.join(ab)}: the adapter file is damaged")
        base = names.get_name(module)
        if base is None or f"{base}.weight" not in base_shapes:
            raise GenpiError(f"adapter weight {module} has no counterpart in '{base_gguf}': is the adapter trained "
                             "on this base model?")
        a, b = ab["lora_A"].astype(np.float32), ab["lora_B"].astype(np.float32)
        kind = base.split(".")[-1]
        if kind in PERMUTED:
            b = rotary_rows(b, heads[PERMUTED[kind]])
        want = base_shapes[f"{base}.weight"]  # ggml order: (in, out)
        if (a.shape[1], b.shape[0]) != want:
            raise GenpiError(f"adapter weight {module} is {b.shape[0]} x {a.shape[1]} but '{base_gguf}' has "
                             f"{base}.weight {want[1]} x {want[0]}: the adapter was trained on another base model")
        writer.add_tensor(f"{base}.weight.lora_a", a)
        writer.add_tensor(f"{base}.weight.lora_b", b)
        count, rank = count + 1, a.shape[0]
    out_file.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"file": str(out_file), "architecture": arch, "weights": count, "rank": rank,
            "alpha": float(cfg["lora_alpha"]), "bytes": out_file.stat().st_size}


def _field(reader, key: str):
    f = reader.fields.get(key)
    if f is None:
        raise GenpiError(f"the base GGUF has no '{key}': pass the GGUF file of the adapter's base model")
    return f.contents()
