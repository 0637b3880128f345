"""A LoRA adapter with random weights, saved like a trained one.

Inference cost does not depend on the adapter's values, only on its shape, so benchmarks and tests
use this when no trained adapter is at hand. lora_B is drawn non-zero, so the adapter changes outputs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models import ModelRef, load_model


def make_random_adapter(ref: ModelRef, out_dir: str | Path, rank: int = 16, alpha: int = 32, seed: int = 0,
                        std: float = 0.02) -> Path:
    """Write adapter_config.json + adapter_model.safetensors (LoRA on all linear layers) to `out_dir`."""
    from peft import LoraConfig, get_peft_model

    out = Path(out_dir)
    model = get_peft_model(load_model(ref), LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.05,
                                                       target_modules="all-linear", task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    model.save_pretrained(str(out), safe_serialization=True)
    return out
