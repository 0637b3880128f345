"""A backend with queued replies, for tests (in the style of simonw/llm's mock model).

    fake = FakeBackend(["1. first\n2. second", "an answer"])   # replies in order
    fake = FakeBackend(lambda conv: "echo: " + conv[-1]["content"])  # or computed per conversation
Every call is recorded in `fake.calls` (conversations and settings). When the queue runs out,
`default` is returned (or an error raised when default is None).
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable


class FakeBackend:
    def __init__(self, replies: Iterable[str] | Callable[[list[dict]], str] = (), *, name: str = "fake",
                 default: str | None = None, fail_times: int = 0, error: type[Exception] = RuntimeError,
                 continues: bool = False):
        self.name = name
        self.identity = name  # keys of the call cache: a fake is its name
        self.continues = continues
        self.fn = replies if callable(replies) else None
        self.queue = deque([] if callable(replies) else replies)
        self.default = default
        self.fail_times = fail_times
        self.error = error
        self.calls: list[dict] = []

    def chat(self, conversations, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None):
        self.calls.append({"conversations": conversations, "max_new_tokens": max_new_tokens,
                           "temperature": temperature, "top_p": top_p, "seed": seed})
        if self.fail_times > 0:
            self.fail_times -= 1
            raise self.error("fake failure")
        return [self._one(c) for c in conversations]

    def _one(self, conv: list[dict]) -> str:
        if self.fn is not None:
            return self.fn(conv)
        if self.queue:
            return self.queue.popleft()
        if self.default is None:
            raise AssertionError("FakeBackend: no queued reply left")
        return self.default
