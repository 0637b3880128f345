"""The timed variants: one conversation run through one way of handling the prompt.

Every variant re-sends the conversation history each turn (a stateless chat API); they differ only
in the prompt:
  with_prompt               the prompt is re-encoded with the history at every turn
  with_prompt_prefix_cache  the prompt's KV is computed once (a one-time cost, reported apart, as
                            vLLM's automatic prefix caching amortizes it over all users); each turn
                            the cache is cropped back to the prompt and only the rest is prefilled
  internalized              base model + LoRA adapter (unmerged), no prompt
  internalized_merged       the adapter merged into the weights, no prompt
  no_prompt                 the base model without prompt (run instead of the two above when no
                            adapter is given; a merged adapter costs exactly this)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from transformers import DynamicCache

from .decode import cache_bytes, greedy

WITH_PROMPT, PREFIX_CACHE = "with_prompt", "with_prompt_prefix_cache"
INTERNALIZED, MERGED, NO_PROMPT = "internalized", "internalized_merged", "no_prompt"


@dataclass
class Variant:
    name: str
    model: Any
    with_prompt: bool
    lora_params: int = 0          # LoRA A/B parameters run beside the base weights (unmerged only)
    prefix: list[int] | None = None  # prompt tokens whose KV is computed once and reused
    cache: DynamicCache | None = None
    prefix_build_s: float | None = None

    def build_prefix_cache(self) -> None:
        """Compute the prompt's KV once (timed; a one-time cost shared by every conversation)."""
        t0 = time.perf_counter()
        self.cache = greedy(self.model, self.prefix, 1).cache
        self.prefix_build_s = time.perf_counter() - t0


@dataclass
class ConvRun:
    ttft_s: list[float] = field(default_factory=list)   # per turn
    turn_s: list[float] = field(default_factory=list)   # per turn: prefill + reply decode
    replies: list[list[int]] = field(default_factory=list)
    kv_bytes: int = 0                                    # cache size after the last turn
    first_logits: Any = None                             # turn 1, prefill's last-position logits


def run_conversation(v: Variant, contexts: list[list[int]], reply_tokens: int, eos_ids) -> ConvRun:
    """Run the agent turns of one conversation; `contexts[t]` holds the full token ids of turn t."""
    run = ConvRun()
    for ids in contexts:
        if v.cache is not None:
            p = len(v.prefix)
            extra = v.cache.get_seq_length() - p
            t0 = time.perf_counter()
            if extra:
                v.cache.crop(-extra)  # back to the prompt alone
            d = greedy(v.model, ids[p:], reply_tokens, v.cache, eos_ids=eos_ids)
            crop_s = time.perf_counter() - t0 - d.total_s
            d.ttft_s += crop_s
            d.total_s += crop_s
        else:
            d = greedy(v.model, ids, reply_tokens, eos_ids=eos_ids)
        run.ttft_s.append(d.ttft_s)
        run.turn_s.append(d.total_s)
        run.replies.append(d.ids)
        run.first_logits = d.first_logits if run.first_logits is None else run.first_logits
        run.kv_bytes = cache_bytes(d.cache)
        del d  # a stateless turn's cache goes before the next turn starts
    return run
