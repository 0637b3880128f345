"""Sizes of a bench run; the preset fills them, and every field has a `genpi bench` flag."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import StageConfig, at_least, option
from ..errors import GenpiError


@dataclass(frozen=True)
class BenchConfig(StageConfig):
    """The conversations every variant runs through, and how they are timed."""

    STAGE = "bench"

    turns: int = option(3, "agent turns per conversation", metavar="T")
    reply_tokens: int = option(40, "tokens every variant decodes per agent turn", metavar="N")
    env_tokens: int = option(40, "at most this many tokens per environment turn", metavar="N")
    conversations: int = option(2, "held-out inputs to converse on, one conversation each", metavar="N")
    repeats: int = option(3, "timed passes after one warm-up; the median is reported", metavar="N")
    threads: int = option(0, "torch CPU threads, pinned for the run (0: all cores)", metavar="N")

    def __post_init__(self):
        at_least(self, 1, "turns", "reply_tokens", "env_tokens", "conversations", "repeats")
        if self.threads < 0:
            raise GenpiError(f"--threads must be 0 (all cores) or more (got {self.threads})")
