"""Text generation backends behind one small interface.

A backend turns a batch of chat conversations (lists of {role, content}) into reply texts:

    backend.chat(conversations, max_new_tokens=64, temperature=0.0, top_p=1.0, seed=None) -> list[str]

temperature 0 means greedy. Replies are plain text with the end-of-turn marker removed.
Backends: LocalBackend (transformers, batched) and, for generators, an OpenAI-compatible HTTP one.
"""

from .base import Backend
from .local import LocalBackend

__all__ = ["Backend", "LocalBackend"]
