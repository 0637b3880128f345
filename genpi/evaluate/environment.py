"""The environment side of a multi-turn evaluation, played by a model told to act as it.

A small, self-contained role-play for `genpi eval --turns T`: the environment model sees the
conversation with the roles swapped (the agent's replies are its user turns) and a system
message built from the scenario's `environment` section. It says `end_marker` when the episode
is over. (Synthesis has its own role-play; this one only serves evaluation.)
"""

from __future__ import annotations

from ..scenario import Scenario

_BRIEF = (
    "You are playing {role} in a conversation with an AI agent. The agent was given this task:\n\n"
    "{task}\n\n"
    "Every message you receive is the agent's latest reply. Answer exactly as {role} would, "
    "and nothing more; you are not the agent and you do not solve the task for it.{instructions}\n\n"
    "When {end_when}, reply with only {marker}."
)


def environment_system(sc: Scenario, task: str) -> str:
    env = sc.environment
    extra = f"\n\n{env.instructions.strip()}" if env.instructions.strip() else ""
    return _BRIEF.format(role=env.role, task=task, instructions=extra, end_when=env.end_when, marker=env.end_marker)


def environment_messages(sc: Scenario, task: str, turns: list[dict]) -> list[dict]:
    """Messages for the environment's next reply.

    `turns` is the agent-side conversation after the task: agent reply, environment reply,
    agent reply, ... ending with an agent reply. Roles are swapped for the environment.
    """
    if not turns or len(turns) % 2 == 0:
        raise ValueError("the environment answers an agent reply: pass an odd number of turns")
    swap = {"assistant": "user", "user": "assistant"}
    return [{"role": "system", "content": environment_system(sc, task)}] + \
        [{"role": swap[t["role"]], "content": t["content"]} for t in turns]


def ends_episode(sc: Scenario, reply: str) -> bool:
    """True when the environment's reply holds the end marker (or is empty)."""
    return not reply.strip() or sc.environment.end_marker in reply
