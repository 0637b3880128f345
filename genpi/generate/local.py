"""Local generation with transformers: batched, left-padded, greedy or sampled."""

from __future__ import annotations

import torch


class LocalBackend:
    """Generate with a loaded model + tokenizer (the base model, an adapter-wrapped model, or a generator)."""

    def __init__(self, model, tokenizer, name: str = "local", batch_size: int = 8):
        self.model = model
        self.tok = tokenizer
        self.name = name
        self.batch_size = batch_size

    def encode(self, conv: list[dict]) -> list[int]:
        out = self.tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=True)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    @torch.no_grad()
    def chat(self, conversations, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None):
        replies: list[str] = []
        for i in range(0, len(conversations), self.batch_size):
            batch = [self.encode(c) for c in conversations[i:i + self.batch_size]]
            replies += self._generate(batch, max_new_tokens, temperature, top_p, seed)
        return replies

    def _generate(self, batch: list[list[int]], max_new_tokens, temperature, top_p, seed) -> list[str]:
        pad = self.tok.pad_token_id
        width = max(len(x) for x in batch)
        ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch])
        if seed is not None:
            torch.manual_seed(seed)
        sample = temperature > 0
        out = self.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=sample,
            temperature=temperature if sample else None, top_p=top_p if sample else None, top_k=None,
            pad_token_id=pad, eos_token_id=self.tok.eos_token_id)
        return [self.tok.decode(row[width:], skip_special_tokens=True).strip() for row in out]
