"""The frozen base model as training holds it: fp32 weights (bf16 on a CPU that computes bf16 fast), or
bitsandbytes' 4-bit NF4 weights (QLoRA, --load-in-4bit); with activation checkpointing when asked
(--gradient-checkpointing), which recomputes each layer in the backward pass instead of keeping its
activations. Either way the LoRA weights that PEFT adds on top stay in fp32."""

from __future__ import annotations

import importlib.util

from ..errors import GenpiError
from ..models import ModelRef, load_model


def load_base(ref: ModelRef, device: str, bf16: bool, load_in_4bit: bool = False, checkpointing: bool = False):
    import torch

    if load_in_4bit:
        model = _load_4bit(ref, device, torch.bfloat16 if bf16 else torch.float32, checkpointing)
    else:
        model = load_model(ref, device=device)
        if bf16 and model.device.type == "cpu":
            # frozen weights in bf16 halve what every matrix product reads; PEFT keeps the LoRA weights in fp32
            model.to(torch.bfloat16)
        if checkpointing:
            enable_checkpointing(model)
    model.config.use_cache = False
    return model


def enable_checkpointing(model) -> None:
    """Checkpoint every layer, the non-reentrant way: it needs no gradient on the (frozen) inputs, so it
    works under LoRA as is (the reentrant kind needs enable_input_require_grads)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def check_4bit(ref: ModelRef, device) -> None:
    """--load-in-4bit needs a CUDA GPU, the bitsandbytes package and a Hugging Face model folder."""
    if device.type != "cuda":
        raise GenpiError(f"--load-in-4bit needs a CUDA GPU (bitsandbytes' 4-bit weights) and this process trains "
                         f"on {device.type}: drop --load-in-4bit (use --gradient-checkpointing to save memory)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise GenpiError("--load-in-4bit needs the bitsandbytes package, which is not installed: "
                         "pip install bitsandbytes, or drop --load-in-4bit")
    if ref.gguf_file:
        raise GenpiError(f"--load-in-4bit quantizes a Hugging Face model folder, not a .gguf file ({ref.gguf_file}): "
                         "pass the model's folder or hub id with --model, or drop --load-in-4bit")


def _load_4bit(ref: ModelRef, device: str, compute, checkpointing: bool):
    """NF4 weights with double quantization, computing in `compute`; prepared the PEFT way (norms and
    embeddings in fp32, checkpointing when asked). Each process holds its copy on its own GPU."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    model = AutoModelForCausalLM.from_pretrained(ref.path, quantization_config=quant, dtype=compute,
                                                 device_map={"": device})
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                           gradient_checkpointing_kwargs={"use_reentrant": False})
