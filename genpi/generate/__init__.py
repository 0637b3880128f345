"""Text generation backends behind one small interface.

A backend turns a batch of chat conversations (lists of {role, content}) into reply texts:

    backend.chat(conversations, max_new_tokens=64, temperature=0.0, top_p=1.0, seed=None) -> list[str]

temperature 0 means greedy. Replies are plain text with the end-of-turn marker removed.
Backends: LocalBackend (transformers, batched, shared-prefix KV cache), OpenAIBackend (an
OpenAI-compatible HTTP endpoint), FakeBackend (queued replies, for tests); CachedBackend wraps any of
them with a hash-keyed file of calls already made. The specs (SameSpec, LocalSpec, ApiSpec) say which
generator to use; `build_backend(spec, base)` makes its backend.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    'Backend': '.base',
    'clean_reply': '.base',
    'CachedBackend': '.cache',
    'FakeBackend': '.fake',
    'LocalBackend': '.local',
    'local_backend': '.local',
    'ApiSpec': '.specs',
    'GeneratorSpec': '.specs',
    'LocalSpec': '.specs',
    'SameSpec': '.specs',
    'build_backend': '.specs',
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
