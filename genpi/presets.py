"""Presets: named sizes for every stage, as data. `smoke` for tests, `quick` for a CPU, `facts` for a CPU and a
prompt that is mostly facts and policies, `paper` for the paper's sizes.

Each stage's values are keyword arguments of that stage's config (genpi/config.py and the `config`
module of each stage); a flag given on the command line overrides them. `model` is the default --model;
`use` says what the preset is for (in --preset's help).
"""

from __future__ import annotations

import dataclasses

from .errors import GenpiError

PRESETS: dict[str, dict] = {
    "smoke": {
        "use": "tests",
        "model": "tiny",
        "synth": {"num_inputs": 4, "max_turns": 2, "max_new_tokens": 16, "reason_tokens": 16},
        "train": {"epochs": 1, "batch_size": 2, "grad_accum": 1, "learning_rate": 1e-3,
                  "max_source_tokens": 256, "max_target_tokens": 256},
        "eval": {"max_new_tokens": 16, "env_tokens": 24},
        "bench": {"turns": 2, "reply_tokens": 16, "env_tokens": 16, "conversations": 1, "repeats": 1},
    },
    # quick: sized so that `genpi run` (synth + train + eval + bench) on the embedded 135M model runs in
    # minutes on a 2-core CPU (shell-agent: 2,180 s, of which 1,326 s evaluation with 41 sandboxed
    # episodes per variant); first replies in the shipped scenarios are well under 64 tokens.
    # PG targets carry the whole prompt, so they cost several SFT examples each: pg_fraction 0.25.
    # No LoRA dropout: on a CPU drawing the dropout masks took 27% of a training step (py-spy; the
    # paper's 0.05 stays in `paper`, where a GPU draws them for next to nothing).
    # kl 1.0: the joint loss plus token-level KL to the prompted teacher. In benchmarks/compare_methods.py
    # (4 scenarios x 3 seeds) it tied the paper's loss on mean score (0.60 each) with a third of its KL
    # to the teacher and a smaller spread across seeds; `paper` keeps the paper's loss (kl 0).
    "quick": {
        "use": "CPU minutes",
        "model": "default",
        "synth": {"num_inputs": 24, "max_turns": 2, "max_new_tokens": 64, "reason_tokens": 64},
        "train": {"epochs": 4, "batch_size": 2, "grad_accum": 1, "learning_rate": 5e-4,
                  "max_source_tokens": 512, "max_target_tokens": 512, "pg_fraction": 0.25, "lora_dropout": 0.0,
                  "kl": 1.0},
        "eval": {"max_new_tokens": 64},
        "bench": {"turns": 2, "reply_tokens": 40, "env_tokens": 40, "conversations": 1, "repeats": 1},
    },
    "paper": {
        "use": "the paper's sizes",
        "model": "default",
        "synth": {"num_inputs": 1000, "max_turns": 10, "max_new_tokens": 512, "reason_tokens": 512},
        "train": {"epochs": 10, "batch_size": 4, "grad_accum": 8, "learning_rate": 1e-4,
                  "max_source_tokens": 512, "max_target_tokens": 512},
        "eval": {"max_new_tokens": 512, "env_tokens": 512},
        "bench": {"turns": 3, "reply_tokens": 40, "env_tokens": 40, "conversations": 4, "repeats": 5},
    },
}
# facts: quick, for a prompt that is mostly facts and policies (a policy sheet, a product's terms). Three
# times the inputs, all aimed at one fact or rule each and written by the generator shown fact / request
# pairs (--unit-questions), a first reply that leaves out its asked fact given that fact (--cite-units),
# and the paper's loss (kl 0). In benchmarks/compare_methods.py (README "Asking about every fact") it kept
# 0.9x the prompted model's facts on the IT-policy sheet (quick: next to none) and about as many as the
# prompted model on the support desk (quick: 0.6x); the KL term, even at 0.1 or 0.3, brings the adapter
# closer to the teacher token by token but costs a third to a half of those facts. About twice quick's time
# (IT-policy sheet, this 2-core CPU: 18 min with the cost benchmark).
PRESETS["facts"] = {**PRESETS["quick"], "use": "quick for a fact-heavy prompt",
                    "synth": {**PRESETS["quick"]["synth"], "num_inputs": 72, "coverage": 1.0, "unit_questions": True,
                              "cite_units": True},
                    "train": {**PRESETS["quick"]["train"], "kl": 0.0}}
PRESET_USES = {name: p["use"] for name, p in PRESETS.items()}  # for --preset's help
STAGES = ("synth", "train", "eval", "bench")


def check_preset(name: str) -> str:
    if name not in PRESETS:
        raise GenpiError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    return name


def preset_model(name: str) -> str:
    """The default --model of a preset."""
    return PRESETS[check_preset(name)]["model"]


def stage_values(name: str, stage: str) -> dict:
    """The preset's values for one stage's config."""
    return dict(PRESETS[check_preset(name)].get(stage, {}))


def describe_default(cls, f: dataclasses.Field) -> str:
    """For a flag's help: the presets' values of a field, or its plain default."""
    per = {p: v[cls.STAGE][f.name] for p, v in PRESETS.items() if f.name in v.get(cls.STAGE, {})}
    if f.default is not dataclasses.MISSING:
        plain = "off" if f.default is False else f.default
    else:
        plain = None
    if not per:
        return str(plain)
    text = ", ".join(f"{v:g} in {p}" if isinstance(v, float) else f"{v} in {p}" for p, v in per.items())
    missing = [p for p in PRESETS if p not in per]
    if missing and plain is not None:
        text += f", {plain} in {', '.join(missing)}"
    return text
