"""The fixed multi-turn conversations every bench variant runs through.

A conversation is built once and frozen (saved in the report folder and reused by a rerun with the
same settings):
- the user's input is a held-out input of the scenario (`eval.inputs`, else its seed inputs);
- the agent turns in the history are the prompted base model's greedy replies of exactly
  `reply_tokens` tokens (the end-of-turn token masked out), i.e. what `with_prompt` itself says;
- the environment turns are written once by the base model playing the scenario's environment, with
  the same instructions synthesis and evaluation use (genpi.envs.simulated).

Every variant then sees the same conversation tokens and differs only in how the prompt is
handled; at each agent turn it decodes exactly `reply_tokens` new tokens itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..artifacts import BenchDir
from ..errors import GenpiError
from ..models import encode_chat
from ..scenario import Scenario, student_messages, teacher_messages
from .decode import greedy


@dataclass
class Conversation:
    input: str
    turns: list[dict]  # the frozen history: agent, environment, agent, ... (2 * (T - 1) messages)
    replies: list[str]  # the reference agent replies, one per turn (the last one is not in `turns`)


def pick_inputs(sc: Scenario, n: int) -> list[str]:
    """The first `n` held-out inputs (eval inputs, else seed inputs)."""
    pool = [e.input for e in sc.eval.inputs] or list(sc.seed_inputs)
    if not pool:
        raise GenpiError(f"scenario '{sc.name}' has no eval inputs or seed inputs to build bench "
                         "conversations from: add some under eval.inputs")
    return pool[:n]


def messages(sc: Scenario, conv: Conversation, turn: int, with_prompt: bool) -> list[dict]:
    """Chat messages for agent turn `turn` (0-based) of `conv`, with or without the prompt."""
    build = teacher_messages if with_prompt else student_messages
    return build(sc, conv.input, conv.turns[:2 * turn])


def eos_ids(tok, model) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else [ids]
    return sorted({i for i in ids + [tok.eos_token_id] if i is not None})


def build(sc: Scenario, model, tok, inputs: list[str], turns: int, reply_tokens: int,
          env_tokens: int) -> list[Conversation]:
    """Role-play each input for `turns` agent turns: the prompted base model answers with exactly
    `reply_tokens` tokens, the base model plays the environment (genpi.envs.simulated, as in synthesis)."""
    from ..envs import SimulatedEnvironment, run_episodes
    from ..generate import LocalBackend

    stop = eos_ids(tok, model)

    def agent(idx: list[int], convs: list[list[dict]]) -> list[str]:
        return [tok.decode(greedy(model, encode_chat(tok, teacher_messages(sc, inputs[i], c)), reply_tokens,
                                  eos_ids=stop).ids, skip_special_tokens=True) for i, c in zip(idx, convs)]

    env = SimulatedEnvironment(sc, LocalBackend(model, tok, name="environment"), env_tokens)
    firsts = agent(list(range(len(inputs))), [[] for _ in inputs])
    convs = run_episodes(inputs, firsts, agent, env, turns, until_end=False, end_on_empty=False)
    return [Conversation(x, c[:-1], [t["content"] for t in c if t["role"] == "assistant"])
            for x, c in zip(inputs, convs)]


def load_or_build(out: BenchDir, key: dict, make) -> list[Conversation]:
    """Reuse the frozen conversations of `out` when they were built with the same `key`."""
    saved = out.read_conversations(key)
    if saved is not None:
        try:
            return [Conversation(**c) for c in saved]
        except TypeError:
            pass  # from an older layout: rebuild
    convs = make()
    out.write_conversations(key, [asdict(c) for c in convs])
    return convs
