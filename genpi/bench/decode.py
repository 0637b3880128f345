"""A plain greedy decode loop over a KV cache, timed per step (what bench measures).

Written out instead of calling `generate` so that the measured work is exactly what the FLOPs
formula counts (one prefill asking for the last row of logits, then one-token steps), the time to
first token is read directly, and every variant decodes the same number of tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from ..models import cache_kwargs


@dataclass
class Decoded:
    ids: list[int]               # the new tokens
    ttft_s: float                # prefill + first token
    total_s: float               # prefill + all decode steps
    first_logits: torch.Tensor   # the prefill's last-position logits (float32, on CPU)
    cache: DynamicCache          # the cache after the last step


@torch.inference_mode()
def greedy(model, ids: list[int], n: int, cache: DynamicCache | None = None, *, eos_ids=(),
           stop_at_eos: bool = False) -> Decoded:
    """Feed `ids` on top of `cache` (a fresh one if None) and decode `n` tokens greedily.

    With `stop_at_eos` False the end-of-turn tokens are masked out, so exactly `n` tokens come out
    (a fixed reply length for every variant); with it True decoding stops after an end token.
    """
    device = model.device
    cache = DynamicCache(config=model.config) if cache is None else cache
    eos = torch.tensor(sorted(set(eos_ids)), dtype=torch.long, device=device)
    kw = cache_kwargs(model, cache)
    out_ids: list[int] = []
    t0 = time.perf_counter()
    x = torch.tensor([ids], device=device)
    logits = model(input_ids=x, **kw, use_cache=True, logits_to_keep=1).logits[0, -1]
    first = logits.float().cpu()
    ttft = 0.0
    for step in range(n):
        if not stop_at_eos and len(eos):
            logits = logits.clone()
            logits[eos] = float("-inf")
        tok = int(logits.argmax())
        if step == 0:
            ttft = time.perf_counter() - t0
        out_ids.append(tok)
        if (stop_at_eos and tok in eos_ids) or step == n - 1:
            break
        logits = model(input_ids=torch.tensor([[tok]], device=device), **kw,
                       use_cache=True).logits[0, -1]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return Decoded(out_ids, ttft, time.perf_counter() - t0, first, cache)


def cache_bytes(cache: DynamicCache) -> int:
    """Bytes held by the key and value tensors of a cache."""
    total = 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if t is not None:
                total += t.numel() * t.element_size()
    return total
