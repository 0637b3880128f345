"""Settings of one synthesis run, with the paper's defaults; lengths come from the preset."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..errors import GenpiError
from ..presets import Preset, get_preset
from ..scenario import Scenario
from .filters import FilterConfig


@dataclass
class SynthConfig:
    """How many records to make, how long each generation may be, and how pseudo inputs are sought."""

    num_inputs: int = field(metadata={"help": "records to end up with (pseudo inputs kept)"})
    max_turns: int = field(metadata={"help": "agent turns per conversation; the environment answers between them"})
    max_new_tokens: int = field(metadata={"help": "tokens per teacher / student / agent / environment turn"})
    reason_tokens: int = field(metadata={"help": "tokens per reason"})
    input_tokens: int = field(metadata={"help": "tokens per pseudo-input generation call"})
    inputs_per_call: int = field(default=10, metadata={"help": "new requests asked for in each call (paper: 10)"})
    calls_per_round: int = field(default=8, metadata={"help": "pseudo-input calls batched into one round"})
    max_rounds: int | None = field(default=None, metadata={
        "help": "pseudo-input rounds before giving up (default: grows with the number still needed)"})
    examples_shown: int = field(default=3, metadata={"help": "example requests shown per call (seeds or kept inputs)"})
    batch_size: int = field(default=8, metadata={"help": "records generated together"})
    reason_sentences: int = field(default=5, metadata={"help": "sentences asked for in a reason"})
    empty_retries: int = field(default=2, metadata={"help": "sampled retries of an empty greedy reply"})
    seed: int = field(default=0, metadata={"help": "seed of the sampled stages"})
    filter: FilterConfig = field(default_factory=FilterConfig, metadata={"help": "pseudo-input filter"})

    def __post_init__(self):
        for name in ("num_inputs", "max_turns", "max_new_tokens", "reason_tokens", "input_tokens",
                     "inputs_per_call", "calls_per_round", "batch_size"):
            if getattr(self, name) < 1:
                raise GenpiError(f"synthesis setting {name.replace('_', '-')} must be at least 1")

    def rounds_allowed(self, needed: int) -> int:
        if self.max_rounds is not None:
            return self.max_rounds
        return max(5, 3 * math.ceil(needed / self.calls_per_round))

    @classmethod
    def from_preset(cls, preset: str | Preset, sc: Scenario, num_inputs: int | None = None,
                    max_turns: int | None = None, **overrides) -> "SynthConfig":
        """Preset lengths; --max-turns when given, else the smaller of the preset's and the scenario's."""
        p = preset if isinstance(preset, Preset) else get_preset(preset)
        turns = max_turns if max_turns is not None else min(p.max_turns, sc.environment.max_turns)
        input_tokens = overrides.pop("input_tokens", None) or 2 * p.max_new_tokens
        per_call = overrides.pop("inputs_per_call", None) or max(2, min(10, input_tokens // 24))
        return cls(num_inputs=num_inputs if num_inputs is not None else p.num_inputs, max_turns=turns,
                   max_new_tokens=p.max_new_tokens, reason_tokens=p.reason_tokens, input_tokens=input_tokens,
                   inputs_per_call=per_call, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)

    def shaping(self) -> dict:
        """The settings that shape each record: a resumed run must use the same."""
        return {"max_turns": self.max_turns, "max_new_tokens": self.max_new_tokens,
                "reason_tokens": self.reason_tokens}
