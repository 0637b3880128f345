"""Is the model behind an endpoint the base model? Checked before a served model stands in for it.

An adapter trained on another model's replies is silently wrong, so `genpi synth --model-api-base`
asks both the local base model and the endpoint for greedy replies to a few fixed probes and refuses
when they disagree. A quantized server (llama.cpp running the GGUF the local model was dequantized
from) drifts from the fp32 weights after some tokens, so a probe counts as agreeing when the replies'
first words are the same, and the models pass when most probes agree. Servers rarely expose token
probabilities (`transformers serve` does not), which is why replies are compared rather than logits.
A degenerate model (the tests' random one writes only newlines) agrees with any other that does.
"""

from __future__ import annotations

from ..errors import GenpiError
from .base import Backend, clean_reply

PROBES = (
    [{"role": "user", "content": "Name three colours of the rainbow."}],
    [{"role": "system", "content": "You answer in one short sentence."},
     {"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write the numbers from one to five in words."}],
)
PROBE_TOKENS = 12
WORDS = 3  # words that must agree at the start of each probe's reply


def first_words(text: str, n: int = WORDS) -> list[str]:
    return clean_reply(text).lower().split()[:n]


def agreement(local: list[str], served: list[str]) -> list[bool]:
    """Per probe: do the two replies start with the same words (as many as the shorter one has, up to WORDS)?"""
    out = []
    for a, b in zip(local, served):
        wa, wb = first_words(a), first_words(b)
        k = min(len(wa), len(wb))
        out.append(wa[:k] == wb[:k] and (k > 0 or not wa and not wb))
    return out


def check_same_model(local: Backend, served: Backend, local_name: str, served_name: str, flag: str) -> None:
    """Raise a one-line GenpiError unless most probes' greedy replies agree."""
    probes = [list(p) for p in PROBES]
    mine = local.chat(probes, max_new_tokens=PROBE_TOKENS, seed=0)
    theirs = served.chat(probes, max_new_tokens=PROBE_TOKENS, seed=0)
    ok = agreement(mine, theirs)
    if sum(ok) * 2 <= len(ok):
        i = ok.index(False)
        raise GenpiError(
            f"the model served as {served_name} is not the base model {local_name}: greedy replies to "
            f"{len(ok) - sum(ok)} of {len(ok)} probes differ (e.g. {clean_reply(mine[i])[:40]!r} here, "
            f"{clean_reply(theirs[i])[:40]!r} served); serve the same model, or pass it as --model "
            f"(an adapter trained on another model's replies is wrong), or leave out {flag}")
