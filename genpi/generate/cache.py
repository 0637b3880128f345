"""A hash-keyed cache of generation calls (in the style of bespokelabs' curator): a call asked again
gets the stored reply instead of a new generation.

    cached = CachedBackend(backend, "DATA_DIR/calls.jsonl", backend.identity)
    cached.chat(conversations, max_new_tokens=64)   # only the conversations not stored yet are generated

The file holds one line {"key", "reply"} per reply, appended as replies arrive (genpi.artifacts'
JSONL policy: a torn last line is ignored by readers and cut off before the next append). A key is the sha256 of the
identity (which model), the messages and the generation settings; the k-th repeat of one request
within a call gets a key of its own, so a sampled batch keeps its distinct draws. Several wrappers
(different identities) may share one file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..artifacts import JsonlAppender, read_jsonl, text_sha256


def _valid(obj) -> dict:
    if not (isinstance(obj, dict) and isinstance(obj.get("key"), str) and isinstance(obj.get("reply"), str)):
        raise ValueError("each line needs a string 'key' and 'reply'")
    return obj


class CachedBackend:
    """Wrap `backend`: stored replies come from `path`, the rest from `backend` (in one batch, order kept)."""

    def __init__(self, backend, path: str | Path, identity: str | None = None):
        self.inner = backend
        self.path = Path(path)
        self.identity = identity if identity is not None else getattr(backend, "identity", backend.name)
        self.replies: dict[str, str] = {o["key"]: o["reply"] for o in read_jsonl(
            self.path, _valid, fix=f"delete {self.path.name} (it only caches generation calls)")}
        self.hits = self.misses = 0
        self._writer: JsonlAppender | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def continues(self) -> bool:
        return bool(getattr(self.inner, "continues", False))

    def key(self, messages: list[dict], *, max_new_tokens: int, temperature: float, top_p: float,
            seed: int | None, repeat: int = 0) -> str:
        request = {"identity": self.identity, "messages": messages, "max_new_tokens": max_new_tokens,
                   "temperature": float(temperature), "top_p": float(top_p), "seed": seed}
        return text_sha256({**request, "repeat": repeat} if repeat else request)

    def chat(self, conversations, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None):
        settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}
        keys, seen = [], Counter()
        for conv in conversations:
            first = self.key(conv, **settings)
            keys.append(self.key(conv, **settings, repeat=seen[first]) if seen[first] else first)
            seen[first] += 1
        missing = [i for i, k in enumerate(keys) if k not in self.replies]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            got = self.inner.chat([conversations[i] for i in missing], **settings)
            if self._writer is None:
                self._writer = JsonlAppender(self.path)
            for i, reply in zip(missing, got):
                self.replies[keys[i]] = reply
                self._writer.write({"key": keys[i], "reply": reply})
        return [self.replies[k] for k in keys]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
