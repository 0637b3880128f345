"""Text generation backends behind one small interface.

A backend turns a batch of chat conversations (lists of {role, content}) into reply texts:

    backend.chat(conversations, max_new_tokens=64, temperature=0.0, top_p=1.0, seed=None) -> list[str]

temperature 0 means greedy. Replies are plain text with the end-of-turn marker removed.
Backends: LocalBackend (transformers, batched, shared-prefix KV cache), OpenAIBackend (an
OpenAI-compatible HTTP endpoint), FakeBackend (queued replies, for tests); CachedBackend wraps any of
them with a hash-keyed file of calls already made. The specs (SameSpec, LocalSpec, ApiSpec) say which
generator to use; `build_backend(spec, base)` makes its backend.
"""

from .base import Backend, clean_reply
from .cache import CachedBackend
from .fake import FakeBackend
from .local import LocalBackend, local_backend
from .specs import ApiSpec, GeneratorSpec, LocalSpec, SameSpec, build_backend

__all__ = ["Backend", "LocalBackend", "FakeBackend", "CachedBackend", "build_backend", "local_backend",
           "GeneratorSpec", "SameSpec", "LocalSpec", "ApiSpec", "clean_reply"]
