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
