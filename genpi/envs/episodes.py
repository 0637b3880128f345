"""The episode loops, used by every stage and every variant.

run_episodes: conversations with a simulated environment (synthesis, the first-turn evaluation, bench):
the agent's first replies are given, then environment and agent take turns.
play_episodes: problems in environment objects (genpi.envs.base.Environment: a shell...), played side
by side with one batched agent call per round, each judged by task success.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .base import END_ENVIRONMENT, END_ROUND_LIMIT, Environment, Unrunnable


def squash(text: str) -> str:
    """`text` with every run of whitespace made one space: replies that differ only there are the same."""
    return " ".join(text.split())


def repeated_turns(conversation: list[dict]) -> int:
    """Agent turns of `conversation` that say again, word for word, what the agent said in its turn before
    (with greedy decoding and the same observation, an agent that does so is stuck until the round limit)."""
    said = [squash(m["content"]) for m in conversation if m["role"] == "assistant"]
    return sum(a == b for a, b in zip(said, said[1:]))


# agent(indices, conversations) -> one reply per conversation; each conversation ends with the
# environment's turn and `indices` say which inputs they belong to
Agent = Callable[[list[int], list[list[dict]]], list[str]]


def run_episodes(inputs: list[str], first_replies: list[str], agent: Agent, env, max_turns: int, *,
                 until_end: bool = True, end_on_empty: bool = True) -> list[list[dict]]:
    """Conversations [agent, environment, agent, ...] of at most `max_turns` agent turns each.

    env: has `respond(inputs, conversations) -> [(observation, ended)]` (e.g. SimulatedEnvironment).
    until_end: stop an episode when the environment ends it (False: always play `max_turns` turns,
    as bench does to compare variants on conversations of one length).
    end_on_empty: an agent with nothing more to say ends its episode (its empty reply is not kept).
    """
    convs = [[{"role": "assistant", "content": r}] for r in first_replies]
    active = list(range(len(inputs)))
    for _ in range(max_turns - 1):
        if not active:
            break
        answers = env.respond([inputs[i] for i in active], [convs[i] for i in active])
        going = [(i, text) for i, (text, ended) in zip(active, answers) if not (ended and until_end)]
        if not going:
            break
        replies = agent([i for i, _ in going], [convs[i] + [{"role": "user", "content": t}] for i, t in going])
        active = []
        for (i, text), reply in zip(going, replies):
            if reply or not end_on_empty:
                convs[i] += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
                active.append(i)
    return convs


# -- episodes against environment objects (a shell, ...) judged by task success -------------------

# agent(openings, turns) -> one reply per episode: `openings` are the problems' first user turns,
# `turns` what followed ([assistant, user, ...], ending with the environment's latest observation)
TaskAgent = Callable[[list[str], list[list[dict]]], list[str]]


@dataclass
class Episode:
    problem_id: str
    conversation: list[dict] = field(default_factory=list)  # user (the problem), assistant, user, ...
    end_reason: str | None = None
    turns: int = 0                  # agent turns
    valid_turns: int = 0            # agent turns that parsed as an action of the protocol
    success: bool | None = None     # None: the problem could not run here
    reason: str = ""                # the judge's reason, or why the problem could not run
    unrunnable: bool = False
    setup_s: float = 0.0            # sandbox start + the problem's setup
    env_s: float = 0.0              # everything the environment did (setup, commands, judging, clean-up)


def play_episodes(problems: Iterable, make_env: Callable[[], Environment], agent: TaskAgent, round_limit: int,
                  *, width: int = 8, problem_id: Callable[[object], str] = lambda p: p.id,
                  on_episode: Callable[[Episode], None] | None = None,
                  on_step: Callable[[int], None] | None = None) -> list[Episode]:
    """Play `problems` (any iterable, pulled as slots free up), at most `width` at once, each in its
    own environment; every step one batched agent call for every open episode.

    An episode ends when the environment says so (an answer, finish, an invalid reply) or after
    `round_limit` agent turns (END_ROUND_LIMIT); then it is judged, its environment closed, and
    `on_episode(episode)` called at once (so a caller can store it), and its slot goes to the next
    problem. A problem whose setup cannot run here comes back with `unrunnable` set, not as a
    failure. Returns the episodes in the order they finished. on_step(open_episodes) is for progress.
    """
    queue = iter(problems)
    done: list[Episode] = []
    live: list[tuple[Episode, Environment, str]] = []

    def finish(ep: Episode, env: Environment | None) -> None:
        t0 = time.perf_counter()
        if env is not None:
            if ep.end_reason is None:
                ep.end_reason = END_ROUND_LIMIT
            if not ep.unrunnable:
                verdict = env.judge()
                ep.success, ep.reason = verdict.success, verdict.reason
            env.close()
        ep.env_s += time.perf_counter() - t0
        done.append(ep)
        if on_episode is not None:
            on_episode(ep)

    def fill() -> None:
        while len(live) < width:
            p = next(queue, None)
            if p is None:
                return
            ep, env, t0 = Episode(problem_id(p)), make_env(), time.perf_counter()
            try:
                opening = env.reset(p)
            except Unrunnable as e:
                ep.unrunnable, ep.reason = True, str(e)
                ep.setup_s = ep.env_s = time.perf_counter() - t0
                env.close()
                finish(ep, None)
                continue
            ep.setup_s = ep.env_s = time.perf_counter() - t0
            ep.conversation.append({"role": "user", "content": opening})
            live.append((ep, env, opening))

    try:
        while True:
            fill()
            if not live:
                break
            if on_step is not None:
                on_step(len(live))
            replies = agent([o for _, _, o in live], [ep.conversation[1:] for ep, _, _ in live])
            going = []
            for (ep, env, o), reply in zip(live, replies):
                _step(ep, env, reply)
                if ep.end_reason is not None or ep.turns >= round_limit:
                    finish(ep, env)
                else:
                    going.append((ep, env, o))
            live[:] = going
    finally:
        for _, env, _ in live:
            env.close()
    return done


def _step(ep: Episode, env: Environment, reply: str) -> None:
    t0 = time.perf_counter()
    ep.conversation.append({"role": "assistant", "content": reply})
    ep.turns += 1
    try:
        step = env.step(reply)
    except Unrunnable as e:  # the environment broke under the agent (not the agent's doing)
        ep.unrunnable, ep.reason, ep.end_reason = True, str(e), END_ENVIRONMENT
        return
    finally:
        ep.env_s += time.perf_counter() - t0
    ep.valid_turns += step.valid_action
    if step.observation is None:
        ep.end_reason = step.end_reason
    else:
        ep.conversation.append({"role": "user", "content": step.observation})
