"""What an environment is: the small interface every kind (simulated, shell, ...) implements.

    first = env.reset(problem)        # the user turn that opens the episode (the problem's text)
    step = env.step(agent_reply)      # Step: the next observation, or the end and why
    verdict = env.judge()             # Judgement: did the agent solve the problem, and why (not)
    env.close()                       # everything the episode started is gone
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import GenpiError

# why an episode ended
END_ANSWERED = "answered"            # the agent gave a final answer
END_FINISHED = "finished"            # the agent said it is done (no answer)
END_INVALID = "invalid_action"       # the reply did not parse as an action of the protocol
END_ROUND_LIMIT = "round_limit"      # the agent used every round without concluding
END_ENVIRONMENT = "environment_end"  # the environment ended it (a simulated environment's end marker)
END_REASONS = (END_ANSWERED, END_FINISHED, END_INVALID, END_ROUND_LIMIT, END_ENVIRONMENT)


@dataclass
class Step:
    """The environment's answer to one agent reply."""
    observation: str | None          # the next user turn; None when the episode is over
    end_reason: str | None = None    # one of END_REASONS when the episode is over
    valid_action: bool = True        # did the reply parse as an action of the protocol?


@dataclass
class Judgement:
    success: bool
    reason: str


class Unrunnable(GenpiError):
    """A problem that cannot run on this machine (its setup needs the network, a limit it needs is
    above what the machine allows...): reported as such, never counted as the agent's failure."""


class Environment(Protocol):
    def reset(self, problem: Any) -> str: ...
    def step(self, agent_reply: str) -> Step: ...
    def judge(self) -> Judgement: ...
    def close(self) -> None: ...
