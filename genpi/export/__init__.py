"""Adapters in the formats other engines load: a llama.cpp LoRA GGUF (gguf_lora), a merged model folder."""

from .gguf_lora import export_gguf_lora

__all__ = ["export_gguf_lora"]
