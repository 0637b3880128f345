"""Settings of one synthesis run, with the paper's defaults; sizes come from the preset."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..config import StageConfig, at_least, option
from ..errors import GenpiError
from ..scenario import Scenario
from .filters import FilterConfig


@dataclass
class SynthConfig(StageConfig):
    """How many records to make, how long each generation may be, and how pseudo inputs are sought."""

    STAGE = "synth"

    num_inputs: int = option(24, "pseudo inputs to keep (one record each)", metavar="N")
    max_turns: int = option(2, "agent turns per conversation, the environment answering between them; at most "
                               "the scenario's environment.max_turns unless given", metavar="T")
    max_new_tokens: int = option(64, "tokens per teacher / student / agent / environment turn", metavar="N")
    reason_tokens: int = option(64, "tokens per reason", metavar="N")
    input_tokens: int | None = option(None, "tokens per pseudo-input generation call (default: twice "
                                            "max_new_tokens)", cli=False)
    inputs_per_call: int | None = option(None, "new requests asked for in each call (paper: 10; default: "
                                               "what input_tokens has room for, 2 to 10)", cli=False)
    calls_per_round: int = option(8, "pseudo-input calls batched into one round", cli=False)
    max_rounds: int | None = option(None, "pseudo-input rounds before giving up (default: grows with the "
                                          "number still needed)", cli=False)
    coverage: float = option(0.5, "share of pseudo-input calls aimed at one unit of the prompt (a fact, a rule, "
                                  "a section, a demonstration), least covered first, then at pairs of units; "
                                  "0: every call continues the list of example requests (the paper's way)",
                             metavar="F")
    aim_stems: bool = option(False, "open each aimed request with the unit's label (\"What about the tandem\" for "
                                    "\"Tandem: 28 euros a day\"; a local generator ends the question), keep an aimed "
                                    "request only if it names a distinctive word of its unit, and keep the teacher's "
                                    "sample that uses most of the unit; on the embedded model it makes the data use "
                                    "more of the prompt's facts but the adapter kept fewer of them (README)")
    avoid_demo_copies: bool = option(False, "sample again (within --teacher-samples) a teacher reply that repeats a "
                                            "demonstration's wording to another request (six content words in a row, "
                                            "two of them in no fact or rule: \"so a week of 7 days costs\"), and keep "
                                            "the first sample that does not; such replies are counted either way "
                                            "(coverage.teacher_demo_copies); on the embedded model the adapter kept "
                                            "no more facts with it (README)")
    act_first: bool = option(False, "in an agent scenario, sample again (within --teacher-samples) a first teacher "
                                    "reply that answers or finishes at once, without acting, and keep the first "
                                    "sample whose action is a command: the prompted embedded model answers most "
                                    "shell problems without running anything, so its records rarely show a command, "
                                    "its output and then the answer; counted either way (teacher_answered_at_once)")
    avoid_repeats: bool = option(False, "sample again (within --teacher-samples) a role-play agent turn that repeats "
                                        "the agent's previous reply word for word, for one that does not, and end the "
                                        "conversation before it if none does; the records' repeated turns are counted "
                                        "either way (repeated_turns_kept); on the shell agent it cut the adapter's "
                                        "looping episodes on two seeds and raised them on three others (README)")
    cite_units: bool = option(False, "when a prompted first reply leaves out the fact or rule its request asks about "
                                     "(the unit it was aimed at and names, or else the one it names), put that "
                                     "unit's text into the reply (after its first sentence, else at its start or "
                                     "end, where the scenario's checks still pass) and mark it in the record "
                                     "(`cited`), which training keeps out of the KL term; not in agent scenarios "
                                     "(a reply there is one action); counted (teacher_left_out_asked, teacher_cited)")
    unit_questions: bool = option(False, "ask for a request aimed at one fact or rule by showing the generator "
                                         "that unit after a few fact / request pairs (each demonstration's request "
                                         "with the unit its answer uses, each seed input with the unit it names) "
                                         "and letting it write the request, greedily, instead of telling it in an "
                                         "instruction which part to ask about; a request that names none of its "
                                         "unit's distinctive words counts as a plain input (unit_questions, "
                                         "unit_questions_off_target); needs a seed input or a demonstration that "
                                         "names a unit")
    coverage_k: int = option(2, "inputs each unit should get before calls aim at pairs of units", cli=False)
    aimed_per_call: int = option(2, "requests asked for in a call aimed at a unit (few, so that a round's aimed "
                                    "calls spread over many units)", cli=False)
    holdout: int = option(0, "pseudo inputs set aside before any record is made and never trained on (marked in "
                             "inputs.jsonl), for evaluation; `genpi run` sets some aside when the scenario has no "
                             "held-out inputs of its own", metavar="N")
    examples_shown: int = option(3, "example requests shown per call (seeds or kept inputs)", cli=False)
    teacher_logprobs: int = option(0, "also store the prompted teacher's top-K log-probabilities at every agent-turn "
                                      "token of each record (from the served base model with --model-api-base, else "
                                      "the local one); training's KL term then reads them instead of running the "
                                      "teacher (--kl-teacher); 0: store none", metavar="K")
    batch_size: int = option(8, "records generated together", metavar="B")
    reason_sentences: int = option(5, "sentences asked for in a reason", cli=False)
    teacher_samples: int = option(4, "sampled retries of a teacher reply that breaks one of the scenario's checks "
                                     "(eval.checks; never the held-out expectations) or, in an agent scenario, holds "
                                     "no valid action (every role-play turn too): the first that passes them all "
                                     "is kept, else the greedy reply; a reply to an input aimed at a unit of the "
                                     "prompt that uses none of it is sampled again the same way for one that does "
                                     "(with --aim-stems: N times, for the one using most of the unit); 0: keep "
                                     "every greedy reply", metavar="N")
    empty_retries: int = option(2, "sampled retries of an empty greedy reply", cli=False)
    seed: int = option(0, "seed of the sampled stages", metavar="S")
    filter: FilterConfig = option(help="pseudo-input filter", cli=False, default_factory=FilterConfig)
    env: str = option("auto", "who answers the agent's commands in role-play: 'simulated' (the generator "
                              "imagines the environment, as in the paper), 'shell' (a real sandboxed shell per "
                              "pseudo input, with the scenario's eval.environment protocol and limits), or 'auto': "
                              "shell where the scenario declares one and the sandbox runs here, else simulated",
                      metavar="KIND", choices=("auto", "simulated", "shell"))

    def __post_init__(self):
        if not 0.0 <= self.coverage <= 1.0:
            raise GenpiError(f"--coverage must be between 0 and 1, not {self.coverage}")
        at_least(self, 0, "teacher_samples", "holdout", "teacher_logprobs")
        at_least(self, 1, "coverage_k", "aimed_per_call", "num_inputs", "max_turns", "max_new_tokens", "reason_tokens", "input_tokens",
                 "inputs_per_call", "calls_per_round", "batch_size")
        if self.input_tokens is None:
            self.input_tokens = 2 * self.max_new_tokens
        if self.inputs_per_call is None:
            self.inputs_per_call = max(2, min(10, self.input_tokens // 24))

    @classmethod
    def from_preset(cls, preset: str, scenario: Scenario | None = None, **overrides) -> "SynthConfig":
        """The preset's sizes and the overrides; without an explicit max_turns, at most the scenario's."""
        cfg = super().from_preset(preset, **overrides)
        if scenario is not None and overrides.get("max_turns") is None:
            cfg = replace(cfg, max_turns=min(cfg.max_turns, scenario.environment.max_turns))
        return cfg

    def resolved(self, scenario: Scenario) -> "SynthConfig":
        """env 'auto' made concrete: real command output where the scenario has a shell environment and the
        sandbox can start here (on the embedded model it gave adapters more valid actions, see README)."""
        if self.env != "auto":
            return self
        env = scenario.eval.environment
        if env is None or env.kind != "shell":
            return replace(self, env="simulated")
        from ..envs.sandbox import SandboxError, check_sandbox

        try:
            check_sandbox()
        except SandboxError:
            return replace(self, env="simulated")
        return replace(self, env="shell")

    def rounds_allowed(self, needed: int) -> int:
        if self.max_rounds is not None:
            return self.max_rounds
        return max(5, 3 * math.ceil(needed / self.calls_per_round))

    def shaping(self) -> dict:
        """The settings that shape each record: a resumed run must use the same."""
        shape = {"max_turns": self.max_turns, "max_new_tokens": self.max_new_tokens,
                 "reason_tokens": self.reason_tokens}
        if self.env != "simulated":  # folders made before this option stay resumable
            shape["env"] = self.env
        if self.cite_units:
            shape["cite_units"] = True
        return shape
