"""The simulated environment: a model plays what the prompt implies (an Ubuntu shell, a web page, a user).

It sees its instructions as a system message, then the conversation with roles swapped (the agent's
turns are its user turns, its own earlier turns are assistant turns), and writes the end marker when
the episode is over. Greedy, so the same conversation gets the same answer in synthesis, eval and bench.
"""

from __future__ import annotations

from ..generate.base import clean_reply
from ..scenario import RULE_BOOK_CLOSE, RULE_BOOK_OPEN, Scenario

# the environment's instructions, in our own words
TEMPLATE = (
    "You are playing {role} in a conversation with an AI agent. The agent's messages reach you as "
    "user messages; answer each one the way {role} would, and nothing more.{instructions}{rules}\n\n"
    "The task the agent was given: {input}\n\n"
    "When {end_when}, reply with only {end_marker} and nothing else.")


def environment_messages(sc: Scenario, x: str, conversation: list[dict]) -> list[dict]:
    """What the model playing the environment sees for input `x` and the conversation so far."""
    env = sc.environment
    instructions = f"\n\n{env.instructions.strip()}" if env.instructions.strip() else ""
    rules = "" if instructions else (
        f"\n\nThe agent follows this rule book, which tells you what it expects from you:\n"
        f"{RULE_BOOK_OPEN}\n{sc.prompt_text}\n{RULE_BOOK_CLOSE}")
    system = TEMPLATE.format(role=env.role, instructions=instructions, rules=rules, input=x,
                             end_when=env.end_when, end_marker=env.end_marker)
    swap = {"assistant": "user", "user": "assistant"}
    return [{"role": "system", "content": system}] + [
        {"role": swap[t["role"]], "content": t["content"]} for t in conversation]


def parse_environment_reply(reply: str, end_marker: str) -> tuple[str, bool]:
    """Reply -> (text before the end marker, episode over?). An empty reply also ends the episode."""
    text = clean_reply(reply)
    ended = bool(end_marker) and end_marker in text
    if ended:
        text = text.split(end_marker, 1)[0]
    text = text.strip()
    return text, ended or not text


class SimulatedEnvironment:
    """A backend (the generator, or the base model) playing the scenario's environment, greedy."""

    def __init__(self, sc: Scenario, backend, max_new_tokens: int, seed: int | None = 0):
        self.sc, self.backend, self.max_new_tokens, self.seed = sc, backend, max_new_tokens, seed

    def respond(self, inputs: list[str], conversations: list[list[dict]]) -> list[tuple[str, bool]]:
        """(observation, episode over?) for each conversation, whose last turn is the agent's."""
        replies = self.backend.chat([environment_messages(self.sc, x, c) for x, c in zip(inputs, conversations)],
                                    max_new_tokens=self.max_new_tokens, temperature=0.0, top_p=1.0, seed=self.seed)
        return [parse_environment_reply(r, self.sc.environment.end_marker) for r in replies]
