"""The fixed multi-turn conversations every bench variant runs through.

A conversation is built once and frozen (saved as REPORT_DIR/conversations.json and reused by a
rerun with the same settings):
- the user's input is a held-out input of the scenario (`eval.inputs`, else its seed inputs);
- the agent turns in the history are the prompted base model's greedy replies of exactly
  `reply_tokens` tokens (the end-of-turn token masked out), i.e. what `with_prompt` itself says;
- the environment turns are written once by the base model playing the scenario's environment.

Every variant then sees the same conversation tokens and differs only in how the prompt is
handled; at each agent turn it decodes exactly `reply_tokens` new tokens itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import GenpiError
from ..scenario import Scenario, student_messages, teacher_messages
from .decode import greedy

FILE = "conversations.json"


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


def environment_messages(sc: Scenario, x: str, history: list[dict]) -> list[dict]:
    """The base model plays the environment: the agent's turns become its user turns."""
    env = sc.environment
    brief = (f"You play {env.role}. An agent is working on this task: {x}\n"
             f"Answer each of the agent's messages the way {env.role} would. {env.instructions}").strip()
    swapped = [{"role": "user" if t["role"] == "assistant" else "assistant", "content": t["content"]}
               for t in history]
    return [{"role": "system", "content": brief}] + swapped


def encode(tok, msgs: list[dict]) -> list[int]:
    out = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def eos_ids(tok, model) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else [ids]
    return sorted({i for i in ids + [tok.eos_token_id] if i is not None})


def build(sc: Scenario, model, tok, inputs: list[str], turns: int, reply_tokens: int,
          env_tokens: int) -> list[Conversation]:
    """Role-play each input for `turns` agent turns with the prompted base model (greedy)."""
    stop = eos_ids(tok, model)
    convs = []
    for x in tqdm(inputs, desc="bench: building conversations", unit="conv", leave=False):
        conv = Conversation(x, [], [])
        for t in range(turns):
            ids = encode(tok, messages(sc, conv, t, with_prompt=True))
            reply = tok.decode(greedy(model, ids, reply_tokens, eos_ids=stop).ids, skip_special_tokens=True)
            conv.replies.append(reply)
            if t < turns - 1:
                conv.turns.append({"role": "assistant", "content": reply})
                env_ids = encode(tok, environment_messages(sc, x, conv.turns))
                out = greedy(model, env_ids, env_tokens, eos_ids=stop, stop_at_eos=True).ids
                conv.turns.append({"role": "user", "content": tok.decode(out, skip_special_tokens=True).strip()})
        convs.append(conv)
    return convs


def load_or_build(path: Path, key: dict, make) -> list[Conversation]:
    """Reuse the frozen conversations at `path` when they were built with the same `key`."""
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            if saved.get("key") == key:
                return [Conversation(**c) for c in saved["conversations"]]
        except (ValueError, TypeError, KeyError):
            pass  # unreadable or from an older layout: rebuild
    convs = make()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "conversations": [asdict(c) for c in convs]}, indent=1,
                              ensure_ascii=False))
    tmp.replace(path)
    return convs
