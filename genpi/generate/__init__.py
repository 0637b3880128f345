"""Text generation backends behind one small interface.

A backend turns a batch of chat conversations (lists of {role, content}) into reply texts:

    backend.chat(conversations, max_new_tokens=64, temperature=0.0, top_p=1.0, seed=None) -> list[str]

temperature 0 means greedy. Replies are plain text with the end-of-turn marker removed.
Backends: LocalBackend (transformers, batched, shared-prefix KV cache), OpenAIBackend (an
OpenAI-compatible HTTP endpoint), FakeBackend (queued replies, for tests); `build_backend`
makes one from the description that `commands.common.generator_arg` returns.
"""

from .base import Backend, clean_reply
from .fake import FakeBackend
from .local import LocalBackend
from .registry import build_backend, local_backend, register

__all__ = ["Backend", "LocalBackend", "FakeBackend", "build_backend", "local_backend", "register", "clean_reply"]
