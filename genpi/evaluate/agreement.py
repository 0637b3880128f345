"""How close a variant's outputs are to the prompted model's: exact match and chrF (sacrebleu)."""

from __future__ import annotations

from collections.abc import Sequence


def exact_match(a: str, b: str) -> bool:
    """Equal after trimming surrounding whitespace."""
    return a.strip() == b.strip()


def chrf(hypothesis: str, reference: str) -> float:
    """Sentence-level chrF (character n-gram F-score, sacrebleu's defaults) on a 0-1 scale."""
    from sacrebleu.metrics import CHRF

    if not hypothesis.strip() and not reference.strip():
        return 1.0
    return CHRF().sentence_score(hypothesis, [reference]).score / 100.0


def agreement(outputs: Sequence[str], references: Sequence[str]) -> dict:
    """Mean exact match and mean chrF of `outputs` against `references` (pairwise, same order)."""
    if len(outputs) != len(references):
        raise ValueError(f"{len(outputs)} outputs but {len(references)} references")
    if not outputs:
        return {"exact": None, "chrf": None}
    n = len(outputs)
    return {"exact": sum(exact_match(o, r) for o, r in zip(outputs, references)) / n,
            "chrf": sum(chrf(o, r) for o, r in zip(outputs, references)) / n}
