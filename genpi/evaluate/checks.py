"""Scoring outputs: scenario checks, per-input expectations, and the summary formulas.

Pure functions on strings and numbers, so every rule here has a unit test.

    score      = mean of the pass rates of every check and of the expectations (when any input has one)
    retention  = score / ceiling                    (the paper's measure; null when the ceiling is 0)
    normalized = (score - floor) / (ceiling - floor) (null when ceiling == floor)
    kept       = of the inputs whose expectation the prompted model meets, the share a variant meets too
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..scenario import Check, Expectation

EXPECTATIONS = "expectations"  # the name the expectations' rate goes under in a score breakdown


def expectation_passes(exp: Expectation, text: str) -> bool:
    """True when `text` meets every condition of `exp` (contains all, contains one of, regex)."""
    hay = text if exp.case_sensitive else text.casefold()

    def norm(s: str) -> str:
        return s if exp.case_sensitive else s.casefold()

    if not all(norm(s) in hay for s in exp.contains):
        return False
    if exp.contains_any and not any(norm(s) in hay for s in exp.contains_any):
        return False
    if exp.regex is not None:
        flags = 0 if exp.case_sensitive else re.IGNORECASE
        if re.search(exp.regex, text, flags) is None:
            return False
    return True


def check_results(checks: Sequence[Check], text: str) -> dict[str, bool]:
    """Each check's verdict on one output."""
    return {c.name: c.passes(text) for c in checks}


def rate(bits: Sequence[bool]) -> float | None:
    """Fraction of True; None for an empty sequence (nothing to measure)."""
    return sum(bool(b) for b in bits) / len(bits) if bits else None


def summarize(checks: Sequence[Check], expectations: Sequence[Expectation | None],
              outputs: Sequence[str]) -> dict:
    """Check rates, the expectations' rate and the score for one variant's outputs.

    `expectations[i]` belongs to `outputs[i]` (None where that input has no expectation).
    Returns {"score", "checks": {name: rate}, "expectations": rate or None, "n_expectations"}.
    """
    if len(expectations) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs but {len(expectations)} expectations")
    per_check = {c.name: rate([c.passes(o) for o in outputs]) for c in checks}
    judged = [expectation_passes(e, o) for e, o in zip(expectations, outputs) if e is not None]
    exp_rate = rate(judged)
    parts = [r for r in per_check.values() if r is not None] + ([exp_rate] if exp_rate is not None else [])
    return {"score": sum(parts) / len(parts) if parts else None, "checks": per_check,
            "expectations": exp_rate, "n_expectations": len(judged)}


def expectations_kept(expectations: Sequence[Expectation | None], outputs: Sequence[str],
                       teacher_outputs: Sequence[str]) -> float | None:
    """Of the inputs whose expectation the prompted model's reply meets, the share this variant's reply
    meets too: the facts kept from the teacher, apart from facts the variant gets right on its own.
    None when the teacher met none (nothing to keep)."""
    if not len(expectations) == len(outputs) == len(teacher_outputs):
        raise ValueError(f"{len(expectations)} expectations, {len(outputs)} outputs, "
                         f"{len(teacher_outputs)} teacher outputs")
    return rate([expectation_passes(e, o) for e, o, t in zip(expectations, outputs, teacher_outputs)
                 if e is not None and expectation_passes(e, t)])


def retention(score: float | None, ceiling: float | None) -> float | None:
    """score / ceiling; None when either is missing or the ceiling is 0 (the ratio means nothing)."""
    if score is None or ceiling is None or ceiling == 0:
        return None
    return score / ceiling


def normalized(score: float | None, floor: float | None, ceiling: float | None) -> float | None:
    """(score - floor) / (ceiling - floor): 0 at the no-prompt floor, 1 at the prompted ceiling.

    None when any value is missing or ceiling == floor (the prompt made no measurable difference).
    Can be negative (worse than no prompt) or above 1 (better than the prompt).
    """
    if score is None or floor is None or ceiling is None or ceiling == floor:
        return None
    return (score - floor) / (ceiling - floor)
