"""The base model with an adapter merged into its weights: a plain model folder any server loads."""

from __future__ import annotations

from pathlib import Path


def write_merged(ref, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Write OUT_DIR (atomically: a killed run leaves no half folder): merged safetensors and the tokenizer."""
    from ..files import write_dir_atomically
    from ..models import load_adapter, load_model, load_tokenizer

    def build(tmp: Path):
        merged = load_adapter(load_model(ref), adapter_dir, merge=True)
        merged.save_pretrained(str(tmp), safe_serialization=True)
        load_tokenizer(ref).save_pretrained(str(tmp))

    return write_dir_atomically(Path(out_dir), build)
