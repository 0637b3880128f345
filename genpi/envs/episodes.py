"""The one episode loop: the agent's first replies are given; then environment and agent take turns."""

from __future__ import annotations

from typing import Callable

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
