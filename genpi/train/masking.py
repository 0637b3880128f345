"""Supervised spans from the model's own chat template, never from hand-written markers.

An assistant turn's span is found by rendering message prefixes: the tokens that
`messages[:i+1]` adds to `messages[:i]` + the generation prompt are turn i's content and
its closing tokens. The span stops right after the template's end-of-turn token (found by
rendering a probe turn), so the model learns to stop; what the template adds after it
(a newline in ChatML) is context. A template whose renderings are not prefixes of each
other (as text) cannot be masked this way and is refused.

The text of a longer rendering starts with the shorter one's, but its tokens need not: a
generation prompt that ends in "\n\n" (Llama 3) is one token on its own and two before a
reply in a GPT-2-style BPE. There the tokens the model is prompted with are kept and the
text that follows is tokenized on its own, as it is at inference time (the prompt's tokens,
then the reply's).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GenpiError
from ..models import encode_text, render_chat

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
    text = render_chat(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE}], "complete")
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


class _Growing:
    """Token ids of a rendering that grows by whole turns (see the module docstring)."""

    def __init__(self, tok):
        self.tok, self.text, self.ids = tok, "", []

    def grow(self, messages: list[dict], add_generation_prompt: bool = False) -> None:
        text = render_chat(self.tok, messages, "generate" if add_generation_prompt else "complete")
        if not text.startswith(self.text):
            raise GenpiError("the model's chat template is not prefix-stable (rendering more turns changes earlier "
                             "text), so supervised spans cannot be found: use a model with a plain chat template")
        whole = encode_text(self.tok, text)
        if whole[:len(self.ids)] == self.ids:  # the tokenizer agrees at the boundary (ChatML, for one)
            self.ids = whole
        else:  # tokens merge across the boundary: keep the earlier ones, tokenize the new text alone
            self.ids = self.ids + encode_text(self.tok, text[len(self.text):])
        self.text = text


def assistant_spans(tok, messages: list[dict], first: int = 0) -> Rendered:
    """Render `messages`; return the ids and the span of each assistant message at index >= `first`."""
    eot = end_of_turn_id(tok)
    r = _Growing(tok)
    spans = []
    for i in range(max(first, 1), len(messages)):
        if messages[i]["role"] != "assistant":
            continue
        r.grow(messages[:i], add_generation_prompt=True)
        start = len(r.ids)
        r.grow(messages[:i + 1])
        turn = r.ids[start:]
        if eot not in turn:
            raise GenpiError("an assistant turn rendered without the template's end-of-turn token: "
                             "use a model with a plain chat template")
        last = len(turn) - 1 - turn[::-1].index(eot)
        spans.append((start, start + last + 1))
    r.grow(messages)
    return Rendered(r.ids, spans)


def tokens_of(tok, ids: list[int], span: tuple[int, int], part: str) -> set[int]:
    """Positions in ids[span] of the tokens that spell `part` (a cited passage of the agent turn the span
    holds): those whose decoded characters overlap it. Empty when the decoded turn does not hold it."""
    start = span[0]
    a = tok.decode(ids[start:span[1]]).find(part) if part else -1
    if a < 0:
        return set()
    b, out, before = a + len(part), set(), 0
    for k in range(start, span[1]):
        upto = len(tok.decode(ids[start:k + 1]))
        if upto > a and before < b:
            out.add(k)
        before = upto
        if before >= b:
            break
    return out
