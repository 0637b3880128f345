"""The interface every generation backend implements, and the reply cleaning they share."""

from __future__ import annotations

import re
from typing import Protocol

# special-token-looking tags of any model family: <|im_end|>, <|eot_id|>, </s>, <end_of_turn>, [INST] ...
_SPECIAL = re.compile(r"<\|[^|>\s]{1,40}\|>|</?s>|<(?:end_of_turn|start_of_turn|eos|bos|pad)>|\[/?INST\]", re.I)


class Backend(Protocol):
    name: str
    # a string that changes when the model changes (what the call cache keys replies on)
    identity: str
    # True when a conversation may end with a started assistant turn, which `chat` then continues
    # (its reply is the continuation alone); False when every conversation must end with a user turn
    continues: bool

    def chat(self, conversations: list[list[dict]], *, max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, seed: int | None = None) -> list[str]:
        """One reply per conversation (see `continues` for conversations ending with an assistant turn)."""
        ...


def clean_reply(text: str | None) -> str:
    """Cut a reply at the first special-token tag that leaked into it, and trim it."""
    if not text:
        return ""
    m = _SPECIAL.search(text)
    return (text[:m.start()] if m else text).strip()
