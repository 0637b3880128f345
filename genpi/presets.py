"""Presets: named sizes for every stage. `smoke` for tests, `quick` for a CPU, `paper` for the paper's sizes.

Every field can be overridden by the matching command-line flag; a preset is only defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .errors import GenpiError


@dataclass(frozen=True)
class Preset:
    name: str
    model: str                 # default --model
    # synthesis
    num_inputs: int            # pseudo inputs kept
    max_turns: int             # role-play rounds (agent + environment) per record
    max_new_tokens: int        # per agent / environment turn during synthesis and eval
    reason_tokens: int         # per reason
    # training
    epochs: float
    batch_size: int
    grad_accum: int
    learning_rate: float
    max_source_tokens: int
    max_target_tokens: int
    # evaluation / bench
    eval_max_new_tokens: int
    bench_repeats: int
    # conversations measured by the bench stage of `genpi run` (`genpi bench` takes --conversations)
    bench_conversations: int
    # share of records giving a prompt-generation (PG) example per epoch: PG targets carry the whole prompt,
    # so they cost several SFT examples each; 1.0 = every record every epoch (the paper)
    pg_fraction: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "smoke": Preset("smoke", model="tiny", num_inputs=4, max_turns=2, max_new_tokens=16, reason_tokens=16,
                    epochs=1, batch_size=2, grad_accum=1, learning_rate=1e-3, max_source_tokens=256,
                    max_target_tokens=256, eval_max_new_tokens=16, bench_repeats=1, bench_conversations=1),
    # quick: sized so that `genpi run` (synth + train + eval + bench) on the embedded 135M model takes
    # about 20 minutes on a 2-core CPU; agent replies in the shipped scenarios are well under 64 tokens
    "quick": Preset("quick", model="default", num_inputs=24, max_turns=2, max_new_tokens=64, reason_tokens=64,
                    epochs=4, batch_size=2, grad_accum=1, learning_rate=5e-4, max_source_tokens=512,
                    max_target_tokens=512, eval_max_new_tokens=64, bench_repeats=1, bench_conversations=1,
                    pg_fraction=0.25),
    "paper": Preset("paper", model="default", num_inputs=1000, max_turns=10, max_new_tokens=512, reason_tokens=512,
                    epochs=10, batch_size=4, grad_accum=8, learning_rate=1e-4, max_source_tokens=512,
                    max_target_tokens=512, eval_max_new_tokens=512, bench_repeats=5, bench_conversations=4),
}


def get_preset(name: str | None, **overrides) -> Preset:
    """The named preset with any non-None overrides applied."""
    if name not in PRESETS:
        raise GenpiError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
