"""The interface every generation backend implements."""

from __future__ import annotations

from typing import Protocol


class Backend(Protocol):
    name: str

    def chat(self, conversations: list[list[dict]], *, max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, seed: int | None = None) -> list[str]:
        """One reply per conversation; each conversation ends with a user turn."""
        ...
