"""Teacher-forced KL from the prompted model to a variant, on the prompted model's own reply.

For one eval input x with the prompted reply y (tokens y_1..y_n):

    KL = 1/n * sum_t KL( p_teacher(. | P, x, y_<t) || p_variant(. | x, y_<t) )

Both models read the same reply tokens: the assistant turn is rendered once with the chat
template after the teacher's context, and the same tokens are appended to the variant's
context. When the reply ended by itself, its end-of-turn token counts too (knowing when to
stop is part of the behaviour); a reply cut at the token limit is scored without it.
"""

from __future__ import annotations

import torch

from ..kl import token_kl
from ..models import encode_chat, encode_text, render_chat


def mean_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> float:
    """Mean over positions of `genpi.kl.token_kl`."""
    return float(token_kl(teacher_logits, student_logits).mean())


def prefix_ids(tok, messages: list[dict]) -> list[int]:
    """The context tokens up to the start of the assistant's reply."""
    return encode_chat(tok, messages)


def reply_ids(tok, messages: list[dict], reply: str, finished: bool) -> list[int]:
    """The tokens of `reply` as the chat template renders it after `messages`.

    Ends just before the end-of-turn token, or includes it when `finished`.
    """
    head = prefix_ids(tok, messages)
    turn = messages + [{"role": "assistant", "content": reply}]
    full = encode_chat(tok, turn, "complete")
    if full[:len(head)] == head:
        tail = full[len(head):]
    else:  # tokens merge across the boundary (a "\n\n" generation prompt in a GPT-2-style BPE): the model
        # is prompted with `head`, so the reply's text is tokenized on its own after it
        head_text = render_chat(tok, messages)
        full_text = render_chat(tok, turn, "complete")
        if not full_text.startswith(head_text):
            raise ValueError("the chat template renders the context differently once a reply follows; "
                             "cannot align the reply tokens")
        tail = encode_text(tok, full_text[len(head_text):])
    eos = tok.eos_token_id
    if eos in tail:
        k = tail.index(eos)
        tail = tail[:k + 1] if finished else tail[:k]
    return tail


@torch.no_grad()
def continuation_logits(model, context: list[int], target: list[int]) -> torch.Tensor:
    """Logits [len(target), vocab] that `model` gives each target token after `context`."""
    if not target:
        raise ValueError("empty target: nothing to score")
    ids = torch.tensor([context + target], device=model.device)
    logits = model(input_ids=ids).logits[0]
    start = len(context) - 1
    return logits[start:start + len(target)].float()
