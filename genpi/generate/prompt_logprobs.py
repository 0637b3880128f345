"""The teacher's top-K log-probabilities at chosen tokens of a rendered conversation, from a served base model
(its prompt log-probabilities) or from the local one.

Servers report prompt log-probabilities in two shapes; both are read:
- vLLM's `prompt_logprobs`: per prompt token, null or {token id: {"logprob": x, ...}}; ids, exact;
- the legacy completions `echo` + `logprobs` (llama.cpp's server, vLLM, others): per prompt token its text
  and {token text: log-prob}. Texts are mapped back to ids through the tokenizer: raw vocabulary entries
  ("Ġthe"), decoded texts (" the") or vLLM's "token_id:N". A text that several tokens decode to is left out
  (its mass falls in the "every other token" bucket of genpi.kl.topk_kl).
The server tokenizes the text itself, so its tokens are matched to the local tokenizer's by their text, in
order; a special token the server leaves out (llama.cpp drops the BOS-like <|im_start|>) is skipped. Entry i
of either shape is the distribution token i was drawn from, so the log-probabilities predicting our token j are
those of the server token matched to j.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import GenpiError
from ..kl import top_logprobs
from .openai_api import NO_LOGPROBS_FIX


class Vocab:
    """Token text -> id for a tokenizer, in each form a server may name a token by."""

    def __init__(self, tok):
        n = len(tok)
        self.raw_names = tok.convert_ids_to_tokens(list(range(n)))
        self.raw = {t: i for i, t in enumerate(self.raw_names) if t is not None}
        self.text = [tok.decode([i]) for i in range(n)]
        seen: dict[str, int] = {}
        for i, t in enumerate(self.text):
            seen[t] = -1 if t in seen else i
        self.decoded = {t: i for t, i in seen.items() if i >= 0}
        self.special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}

    def id_of(self, name) -> int | None:
        if isinstance(name, int):
            return name
        name = str(name)
        if name.startswith("token_id:") and name[9:].isdigit():
            return int(name[9:])
        return self.decoded.get(name, self.raw.get(name))


def _lossy(s: str) -> bool:
    """A token text a server could not decode alone (part of a multi-byte character)."""
    return s == "" or "\ufffd" in s


def align(vocab: Vocab, ids: list[int], theirs: list[str]) -> list[int | None]:
    """For each of our tokens, the index of the server token that is the same one (None: the server left it out
    or the texts part ways; after a parting nothing further is matched)."""
    out: list[int | None] = [None] * len(ids)
    i = 0
    for j, t in enumerate(ids):
        if i >= len(theirs):
            break
        b = theirs[i] if isinstance(theirs[i], str) else ""
        special = t in vocab.special
        same = b in (vocab.text[t], vocab.raw_names[t]) or (special and b == "")
        if same or (not special and (_lossy(b) or _lossy(vocab.text[t]))):
            out[j] = i
            i += 1
        elif special:
            continue
        else:
            break
    return out


def distributions(choice: dict, vocab: Vocab, ids: list[int]) -> list[dict[int, float] | None]:
    """Per token of ours, {id: log-prob} of the distribution it was drawn from (None where unknown)."""
    entries = choice.get("prompt_logprobs")
    if isinstance(entries, list) and entries:
        if len(entries) == len(ids) + 1:  # the server put a BOS token before the text
            entries = entries[1:]
        if len(entries) != len(ids):
            raise GenpiError(f"the endpoint tokenized the conversation into {len(entries)} tokens and the local "
                             f"tokenizer into {len(ids)}: serve the same model and tokenizer as --model")
        return [_entry_ids(e, vocab) for e in entries]
    lp = choice.get("logprobs")
    if not isinstance(lp, dict) or not isinstance(lp.get("top_logprobs"), list) or not isinstance(lp.get("tokens"), list):
        raise GenpiError(f"the endpoint's answer holds no prompt log-probabilities: {NO_LOGPROBS_FIX}")
    tops = lp["top_logprobs"]
    where = align(vocab, ids, lp["tokens"])
    out = []
    for i in where:
        top = tops[i] if i is not None and i < len(tops) else None
        out.append({vid: float(v) for k, v in top.items() if (vid := vocab.id_of(k)) is not None
                    and isinstance(v, (int, float)) and math.isfinite(v)} if isinstance(top, dict) else None)
    return out


def _entry_ids(e, vocab: Vocab) -> dict[int, float] | None:
    if not isinstance(e, dict):
        return None
    out = {}
    for k, v in e.items():
        x = v.get("logprob") if isinstance(v, dict) else v
        vid = int(k) if str(k).isdigit() else vocab.id_of(k)  # token ids, as JSON object keys
        if vid is not None and isinstance(x, (int, float)) and math.isfinite(x):
            out[vid] = float(x)
    return out


@dataclass
class TopK:
    """The teacher's top entries at chosen positions: ids [N, K] (-1 pads a shorter row), log-probs [N, K]."""

    top_ids: torch.Tensor
    top_logprobs: torch.Tensor
    matched: int  # positions whose distribution the source reported

    @classmethod
    def from_dicts(cls, dists: list[dict[int, float] | None], k: int) -> "TopK":
        width = max([k] + [min(len(d), k + 1) for d in dists if d])
        ids = torch.full((len(dists), width), -1, dtype=torch.int32)
        lps = torch.full((len(dists), width), -math.inf, dtype=torch.float32)
        for r, d in enumerate(dists):
            for c, (tid, x) in enumerate(sorted((d or {}).items(), key=lambda kv: -kv[1])[:width]):
                ids[r, c], lps[r, c] = tid, x
        return cls(ids, lps, sum(1 for d in dists if d))


def probe(backend, tok, k: int) -> None:
    """Fail fast, in one line, when the endpoint gives no prompt log-probabilities (before any synthesis)."""
    from ..models import encode_text, render_chat

    text = render_chat(tok, [{"role": "user", "content": "Name three colours."},
                             {"role": "assistant", "content": "Red, green and blue."}], "complete")
    dists = distributions(backend.prompt_logprobs(text, k), Vocab(tok), encode_text(tok, text))
    if not any(dists):
        raise GenpiError(f"{backend.spec.api_base} gave no usable prompt log-probabilities: {NO_LOGPROBS_FIX}")


def served_topk(backend, vocab: Vocab, text: str, ids: list[int], positions: list[int], k: int) -> TopK:
    """The served base model's top-k at `positions` (indices into `ids`, the local tokens of `text`)."""
    dists = distributions(backend.prompt_logprobs(text, k), vocab, ids)
    return TopK.from_dicts([dists[p] for p in positions], k)


@torch.no_grad()
def logits_at(model, ids: list[int], positions: list[int]) -> torch.Tensor:
    """[N, V] logits of one sequence predicting ids[p] for each p in `positions` (each p >= 1)."""
    x = torch.tensor([ids], device=model.device)
    pos = torch.tensor([p - 1 for p in positions], device=model.device)
    return model(input_ids=x, logits_to_keep=pos, use_cache=False).logits[0].float()


def local_topk(model, ids: list[int], positions: list[int], k: int) -> TopK:
    """The local model's top-k at `positions` (each p >= 1: the distribution predicting ids[p])."""
    v, i = top_logprobs(logits_at(model, ids, positions), k)
    return TopK(i.to(torch.int32).cpu(), v.cpu(), len(positions))
