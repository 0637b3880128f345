"""On-policy distillation: the adapter answers pseudo inputs itself (no prompt), the prompted base model
(the same weights, adapter off) scores those replies token by token, and the loss is the per-token
reverse KL(adapter || teacher) over the full vocabulary at each position of the adapter's own reply.

Off-policy terms (SFT, the KL on the teacher's replies) only ever show the adapter the teacher's
conversations; here it learns on the states it reaches itself, where its own mistakes start.

These helpers are plain functions of token ids; GenpiTrainer calls them every `on_policy_every`
micro-steps with the contexts of that step's SFT examples and their teacher twins.
"""

from __future__ import annotations

import torch

from .losses import IGNORE


def contexts(input_ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """Each row's tokens before its first supervised token (the conversation up to the first reply)."""
    out = []
    for ids, lab, m in zip(input_ids.tolist(), labels.tolist(), mask.tolist()):
        first = next((i for i, x in enumerate(lab) if x != IGNORE), sum(m))
        out.append(ids[:first])
    return out


@torch.no_grad()
def sample_replies(model, prompts: list[list[int]], pad_id: int, eos_id: int | None, max_new_tokens: int,
                   temperature: float, seed: int) -> list[list[int]]:
    """The model's replies (token ids, up to and including the end-of-turn token), sampled, left-padded batch."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=model.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
    with torch.random.fork_rng(devices=[]):  # the training's own random stream is left as it was
        torch.manual_seed(seed)
        sample = temperature > 0
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=sample,
                             temperature=temperature if sample else None, top_p=None, top_k=None,
                             pad_token_id=pad_id, eos_token_id=eos_id, use_cache=True)
    replies = []
    for row in out[:, width:].tolist():
        replies.append(row[:row.index(eos_id) + 1] if eos_id is not None and eos_id in row else row)
    return replies


def scored_batch(prompts: list[list[int]], replies: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels: each prompt followed by its reply, the reply supervised."""
    width = max(len(p) + len(r) for p, r in zip(prompts, replies))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    labels = torch.full((len(prompts), width), IGNORE, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, replies)):
        n = len(p) + len(r)
        ids[i, :n] = torch.tensor(p + r)
        mask[i, :n] = 1
        labels[i, len(p):n] = torch.tensor(r)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
