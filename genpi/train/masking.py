"""Supervised spans from the model's own chat template, never from hand-written markers.

An assistant turn's span is found by rendering message prefixes: the tokens that
`messages[:i+1]` adds to `messages[:i]` + the generation prompt are turn i's content and
its closing tokens. The span stops right after the template's end-of-turn token (found by
rendering a probe turn), so the model learns to stop; what the template adds after it
(a newline in ChatML) is context. A template whose renderings are not prefixes of each
other cannot be masked this way and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GenpiError
from ..models import encode_chat

_PROBE = "gEnPiPr0bE"


@dataclass(frozen=True)
class Rendered:
    ids: list[int]
    spans: list[tuple[int, int]]  # [start, end) of each supervised assistant turn, in order

    @property
    def source_len(self) -> int:
        """Tokens before the first supervised token."""
        return self.spans[0][0] if self.spans else len(self.ids)


def end_of_turn_id(tok) -> int:
    """The special token the chat template closes an assistant turn with (e.g. <|im_end|> in ChatML)."""
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE}],
                                   tokenize=False)
    at = text.rfind(_PROBE)
    if at < 0:
        raise GenpiError("the model's chat template drops assistant text, so turns cannot be supervised: "
                         "use a model whose template renders assistant turns")
    tail = tok(text[at + len(_PROBE):], add_special_tokens=False)["input_ids"]
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
    eot = next((i for i in tail if i in special), None)
    if eot is None:
        raise GenpiError("the model's chat template ends assistant turns without a special token, so the adapter "
                         "could not learn to stop: use a chat model whose template closes turns (e.g. ChatML)")
    return eot


def assistant_spans(tok, messages: list[dict], first: int = 0) -> Rendered:
    """Render `messages`; return the ids and the span of each assistant message at index >= `first`."""
    eot = end_of_turn_id(tok)
    full = encode_chat(tok, messages, "complete")
    spans = []
    for i in range(max(first, 1), len(messages)):
        if messages[i]["role"] != "assistant":
            continue
        before = encode_chat(tok, messages[:i])
        after = encode_chat(tok, messages[:i + 1], "complete")
        if after[:len(before)] != before or full[:len(after)] != after:
            raise GenpiError("the model's chat template is not prefix-stable (rendering more turns changes earlier "
                             "tokens), so supervised spans cannot be found: use a model with a plain chat template")
        turn = after[len(before):]
        if eot not in turn:
            raise GenpiError("an assistant turn rendered without the template's end-of-turn token: "
                             "use a model with a plain chat template")
        last = len(turn) - 1 - turn[::-1].index(eot)
        spans.append((len(before), len(before) + last + 1))
    return Rendered(full, spans)
