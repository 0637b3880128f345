"""The one KL function: per-position KL(teacher || student) over the full vocabulary, from logits.

Training sums it over supervised tokens (the sft-kl term); evaluation averages it over the prompted
reply (kl_to_teacher). Argument order is always teacher first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_teacher || p_student) in nats at each of N aligned positions: [N, V] logits each -> [N]."""
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(teacher_logits.shape)} vs {tuple(student_logits.shape)}")
    t = F.log_softmax(teacher_logits.float(), dim=-1)
    s = F.log_softmax(student_logits.float(), dim=-1)
    return (t.exp() * (t - s)).sum(-1)


def top_logprobs(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k highest log-probabilities at each position and their token ids: [N, V] logits -> ([N, k], [N, k])."""
    v, i = F.log_softmax(logits.float(), dim=-1).topk(min(k, logits.shape[-1]), dim=-1)
    return v, i


def topk_kl(top_ids: torch.Tensor, top_logprobs: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL at each of N positions when only the teacher's top K log-probabilities are known: [N, K] ids (-1 where
    a row has fewer), [N, K] log-probs, [N, V] student logits -> [N].

    Both distributions are coarsened to the K listed tokens plus one bucket for every other token, and the KL
    of the coarsened pair is returned: a lower bound of the full KL (coarsening never increases a KL) that
    equals it when the listed tokens hold all of the teacher's mass. benchmarks/bench_topk_kl.py measures the
    gap on real data.
    """
    if top_ids.shape != top_logprobs.shape or top_ids.shape[0] != student_logits.shape[0]:
        raise ValueError(f"shapes differ: ids {tuple(top_ids.shape)}, log-probs {tuple(top_logprobs.shape)}, "
                         f"student logits {tuple(student_logits.shape)}")
    listed = top_ids >= 0
    s = F.log_softmax(student_logits.float(), dim=-1).gather(-1, top_ids.clamp(min=0)).masked_fill(~listed, 0.0)
    t = top_logprobs.float().masked_fill(~listed, 0.0)
    p, q = t.exp() * listed, s.exp() * listed
    head = (p * (t - s)).sum(-1)
    p_rest = (1.0 - p.sum(-1)).clamp(min=0.0)
    q_rest = (1.0 - q.sum(-1)).clamp(min=1e-12)
    return head + p_rest * (p_rest.clamp(min=1e-12).log() - q_rest.log())
