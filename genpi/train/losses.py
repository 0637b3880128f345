"""The loss terms, as small pure functions of tensors.

Conventions: `labels[b, t]` is the token at position t if it is supervised, else IGNORE (-100); the logits
that predict it sit at position t - 1. To save the vocabulary projection where nothing is supervised, the
model is asked for logits only at `predict_positions(labels)`, the union over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def predict_positions(labels: torch.Tensor) -> torch.Tensor:
    """Sorted positions p (shared by every row) whose logits predict a supervised token at p + 1."""
    sup = (labels[:, 1:] != IGNORE).any(dim=0)
    return torch.nonzero(sup, as_tuple=False).flatten()


def targets_at(labels: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The tokens predicted from `positions` ([B, K]); IGNORE where that row supervises nothing."""
    return labels[:, positions + 1]


def token_nll(logits: torch.Tensor, targets: torch.Tensor,
              weights: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the supervised targets, and how many there are.

    logits: [..., V]; targets: [...] with IGNORE where not supervised; weights (optional): how many times each
    supervised target counts, in their row-major order (1 each when None).
    """
    flat_t = targets.reshape(-1)
    keep = flat_t != IGNORE
    n = int(keep.sum())
    if weights is not None and weights.shape[0] != n:
        raise RuntimeError("the token weights and the supervised tokens are misaligned")
    if n == 0:
        return logits.sum() * 0.0, 0
    lp = logits.reshape(-1, logits.shape[-1])[keep].float()
    if weights is None:
        return F.cross_entropy(lp, flat_t[keep], reduction="sum"), n
    nll = F.cross_entropy(lp, flat_t[keep], reduction="none")
    return (nll * weights.to(nll.device, nll.dtype)).sum(), n


def token_mean(total: torch.Tensor, count: int) -> torch.Tensor:
    """A per-kind token mean; 0 (still attached to the graph) when there are no tokens."""
    return total / count if count else total * 0.0


def kept_mean(per_token: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of a per-token term over the tokens `keep` marks (all when None); 0 when it marks none."""
    if keep is None:
        return token_mean(per_token.sum(), per_token.shape[0])
    keep = keep.to(per_token.device)
    if keep.shape[0] != per_token.shape[0]:
        raise RuntimeError("the KL mask and the supervised tokens are misaligned")
    return token_mean(per_token[keep].sum(), int(keep.sum()))


def supervised_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The [N, V] logits of supervised targets, in row-major (row, position) order."""
    keep = targets.reshape(-1) != IGNORE
    return logits.reshape(-1, logits.shape[-1])[keep]


def joint_loss(pg: torch.Tensor | None, sft: torch.Tensor | None, lam: float,
               kl: torch.Tensor | None = None, kl_weight: float = 0.0) -> torch.Tensor:
    """(1 - lam) * PG + lam * SFT (+ kl_weight * KL); a term may be None only when its weight is 0."""
    if lam < 1.0 and pg is None or lam > 0.0 and sft is None or kl_weight > 0.0 and kl is None:
        raise ValueError("the joint loss needs every term whose weight is not zero")
    if lam == 1.0:
        loss = sft
    elif lam == 0.0:
        loss = pg
    else:
        loss = (1.0 - lam) * pg + lam * sft
    return loss + kl_weight * kl if kl_weight > 0.0 else loss


def sft_kl_loss(sft: torch.Tensor, kl: torch.Tensor, kl_weight: float) -> torch.Tensor:
    """SFT + kl_weight * KL."""
    return sft + kl_weight * kl


def with_on_policy(loss: torch.Tensor, reverse_kl: torch.Tensor, weight: float) -> torch.Tensor:
    """A step's loss plus the weighted on-policy reverse-KL term (on the steps that sample one)."""
    return loss + weight * reverse_kl
