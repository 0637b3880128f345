"""Which generated pseudo inputs to keep: drop empty, degenerate, prompt-copying, seed and duplicate candidates.

A small generator mostly writes the seeds again, cut-down variants of them, or the prompt's own
demonstration problem; near-duplicate filtering is what leaves any data at all. Each reason a
candidate was dropped is counted (written to meta.json).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from .text import normalize, similarity

DROP_REASONS = ("empty", "degenerate", "copies_prompt", "seed", "duplicate", "near_duplicate")


@dataclass
class FilterConfig:
    """Thresholds of the pseudo-input filter."""

    similarity: float = field(default=0.8, metadata={"help": "drop a candidate this similar (0-1) to a seed, "
                                                              "a prompt line or an input already kept"})
    min_words: int = field(default=3, metadata={"help": "fewer words than this is 'empty'"})
    max_chars: int = field(default=300, metadata={"help": "longer than this (or twice the longest seed, if more) "
                                                          "is 'degenerate'"})
    min_distinct: float = field(default=0.4, metadata={"help": "distinct / total words below this is 'degenerate'"})

    def __post_init__(self):
        if not 0 < self.similarity <= 1:
            raise ValueError("similarity must be in (0, 1]")


class InputFilter:
    """Stateful filter: remembers what it kept, counts what it dropped and why."""

    def __init__(self, seeds: list[str], prompt_text: str, config: FilterConfig | None = None,
                 kept: list[str] | None = None):
        self.cfg = config or FilterConfig()
        self.seeds = list(seeds)
        self.seed_norms = {normalize(s) for s in seeds}
        self.max_chars = max([self.cfg.max_chars] + [2 * len(s) for s in seeds])
        self.prompt_norm = normalize(prompt_text)
        # prompt lines worth comparing against (the demonstration's problem, instructions)
        self.prompt_lines = [ln for ln in (normalize(x) for x in re.split(r"[\n]+", prompt_text))
                             if len(ln.split()) >= self.cfg.min_words]
        self.kept: list[str] = []
        self.kept_norms: set[str] = set()
        self.drops: Counter = Counter()
        for k in kept or []:
            self._keep(k)

    def _keep(self, text: str) -> None:
        self.kept.append(text)
        self.kept_norms.add(normalize(text))

    def reason(self, text: str) -> str | None:
        """Why `text` would be dropped, or None to keep it (does not record anything)."""
        cfg, norm = self.cfg, normalize(text)
        words = norm.split()
        if len(text.split()) < cfg.min_words:
            return "empty"
        letters = sum(c.isalpha() for c in text)
        if (len(words) < cfg.min_words or len(text) > self.max_chars or len(set(words)) / len(words) < cfg.min_distinct
                or letters < 0.5 * len(text.replace(" ", ""))):
            return "degenerate"
        if norm in self.prompt_norm and len(words) >= 4 or any(
                similarity(norm, ln) >= cfg.similarity for ln in self.prompt_lines):
            return "copies_prompt"
        if norm in self.seed_norms or any(similarity(norm, s) >= cfg.similarity for s in self.seeds):
            return "seed"
        if norm in self.kept_norms:
            return "duplicate"
        if any(similarity(norm, k) >= cfg.similarity for k in self.kept):
            return "near_duplicate"
        return None

    def add(self, candidates: list[str]) -> list[str]:
        """Keep the candidates that pass (in order, each checked against those kept before it); count the rest."""
        new = []
        for c in candidates:
            why = self.reason(c)
            if why:
                self.drops[why] += 1
            else:
                self._keep(c)
                new.append(c)
        return new

    def drop_counts(self) -> dict[str, int]:
        return {r: int(self.drops.get(r, 0)) for r in DROP_REASONS}
