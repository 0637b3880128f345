"""Settings of one evaluation run; the reply length comes from the preset."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import StageConfig, at_least, option


@dataclass(frozen=True)
class EvalConfig(StageConfig):
    """How every variant is asked: the same inputs, greedy, the same limits."""

    STAGE = "eval"

    max_new_tokens: int = option(64, "reply length limit, the same for every variant", metavar="N")
    turns: int = option(1, "agent turns per conversation; above 1 the base model plays the scenario's environment "
                           "and the checks apply to every agent turn", metavar="T")
    seed: int = option(0, "random seed (decoding is greedy)", metavar="S")
    batch_size: int = option(8, "replies generated at once", metavar="B")
    kl: bool = option(True, "teacher-forced KL of each variant to the prompted model", cli=False)
    env: str | None = option(None, "where whole episodes run: the scenario's eval.environment (default), or "
                                   "'simulated' to skip the sandbox (first-turn checks and role-played turns only)",
                             metavar="KIND", choices=("shell", "simulated"))
    limit: int | None = option(None, "evaluate the first N runnable problems of the environment's problem set "
                                     "(default: all)", metavar="N")
    problems: str | None = option(None, "an AgentBench-format problem file or folder, instead of the scenario's "
                                        "eval.environment.problems", metavar="PATH")
    env_tokens: int = option(160, "reply length limit of an agent turn in an environment episode "
                                  "(a thought, then a command)", metavar="N")

    def __post_init__(self):
        at_least(self, 1, "max_new_tokens", "turns", "batch_size", "limit", "env_tokens")
