"""Synthesis's optional last step (`--teacher-logprobs K`): the prompted teacher's top-K log-probabilities at
every agent-turn token of each record, stored beside the records (DataDir teacher_logprobs/), so that the KL
term of training reads them instead of running the prompted teacher.

With the base model served (`--model-api-base`) they come from the endpoint's prompt log-probabilities (see
generate.prompt_logprobs: vLLM and llama.cpp's server give them; `transformers serve` does not, and is refused
in one line); otherwise from the local model. One file per record, written as it is done: a rerun scores only
the records that have none (or have another K than the one asked for now).
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from ..artifacts import DataDir, Record
from ..errors import GenpiError
from ..scenario import Scenario


def store_teacher_logprobs(data: DataDir, sc: Scenario, records: list[Record], ref, k: int, *, served=None,
                           progress: bool = True) -> dict:
    """Score every record without a file; return meta.json's `teacher_logprobs` summary over all records.

    served: the base model's OpenAIBackend (synth.pipeline.served_base), or None for the local model."""
    import torch

    from ..generate.prompt_logprobs import Vocab, local_topk, served_topk
    from ..models import load_model, load_tokenizer, render_chat
    from ..scenario import teacher_messages
    from ..train.examples import teacher_rendering

    tok = load_tokenizer(ref)
    source = f"{served.spec.api_model} @ {served.spec.api_base}" if served is not None else f"local {ref.name}"
    todo = [r for r in records if _stored_k(data, r.id) != k]  # none yet, or another K asked for now
    model = vocab = None
    if todo:
        if served is not None:
            vocab = Vocab(tok)
        else:
            model = load_model(ref)
    t0 = time.time()
    bar = tqdm(todo, desc="teacher log-probs", unit="record", file=sys.stderr, disable=not progress, leave=True,
               dynamic_ncols=True, mininterval=0.5)
    for rec in bar:
        r = teacher_rendering(tok, sc, rec)
        positions = [p for a, b in r.spans for p in range(a, b)]
        if served is not None:
            text = render_chat(tok, teacher_messages(sc, rec.input) + rec.turns(), "complete")
            top = served_topk(served, vocab, text, r.ids, positions, k)
        else:
            top = local_topk(model, r.ids, positions, k)
        if top.matched == 0:
            raise GenpiError(f"{source} reported no log-probabilities for record {rec.id}'s agent turns: serve "
                             "the same model and tokenizer as --model, or leave out --teacher-logprobs")
        data.write_teacher_logprobs(rec.id, {"input_ids": torch.tensor(r.ids, dtype=torch.int32),
                                             "positions": torch.tensor(positions, dtype=torch.int32),
                                             "top_ids": top.top_ids, "top_logprobs": top.top_logprobs},
                                    {"k": k, "source": source, "matched": top.matched, "tokens": len(positions)})
    return summary(data, records, k, time.time() - t0)


def _stored_k(data: DataDir, record_id: str) -> int | None:
    if not data.has_teacher_logprobs(record_id):
        return None
    got = data.read_teacher_logprobs(record_id, tensors=False)
    return int(got[1].get("k", -1)) if got else None


def summary(data: DataDir, records: list[Record], k: int, seconds: float) -> dict:
    """How many records have stored log-probabilities, from which sources, and the share of their agent-turn
    tokens whose distribution the source reported."""
    tokens = matched = n = 0
    sources: set[str] = set()
    for rec in records:
        got = data.read_teacher_logprobs(rec.id, tensors=False)
        if got is None:
            continue
        meta = got[1]
        n += 1
        tokens += int(meta.get("tokens", 0))
        matched += int(meta.get("matched", 0))
        sources.add(meta.get("source", "?"))
    return {"k": k, "records": n, "sources": sorted(sources), "tokens": tokens, "matched": matched,
            "matched_share": round(matched / tokens, 4) if tokens else 0.0, "seconds": round(seconds, 2)}
