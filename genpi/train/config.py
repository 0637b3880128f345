"""The training configuration: one dataclass, every field with help text, validated on creation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..errors import GenpiError
from ..presets import Preset

METHODS = ("genpi", "sft", "sft-kl", "prompt-mix")
VLLM_RANKS = (8, 16, 32, 64, 128, 256)


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything that shapes a training run (and so its signature); presets fill the sizes."""

    method: str = _f("genpi", "genpi: (1-lambda)*PG + lambda*SFT; sft: SFT only; sft-kl: SFT + token KL to the "
                              "prompted teacher; prompt-mix: SFT with the prompt in a random half of the inputs")
    lam: float = _f(0.7, "weight of the SFT term in the joint loss; (1 - lambda) goes to the PG term")
    kl_weight: float = _f(1.0, "weight of the token-level KL(teacher || student) term (sft-kl only)")
    epochs: float = _f(6.0, "passes over the SFT examples (fractions allowed)")
    batch_size: int = _f(4, "SFT examples per micro-batch (PG batches are sized so each PG example comes "
                            "once per epoch)")
    grad_accum: int = _f(1, "micro-batches per optimizer step")
    learning_rate: float = _f(5e-4, "peak learning rate (cosine schedule after warm-up)")
    warmup_ratio: float = _f(0.03, "fraction of the optimizer steps spent warming up")
    max_grad_norm: float = _f(1.0, "gradient clipping norm")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    max_source_tokens: int = _f(512, "longest context before the first supervised token (the no-prompt input for "
                                     "SFT, the instruction for PG); longer SFT examples are skipped, PG outputs cut")
    max_target_tokens: int = _f(512, "most supervised-span tokens per example; SFT keeps whole turns within it, "
                                     "a longer prompt is split into sections that each fit as a PG target")
    pg_fraction: float = _f(1.0, "share of records that give a PG example in each epoch (drawn anew per epoch); "
                                 "PG targets carry the prompt, so this is the knob for PG cost")
    lora_r: int = _f(16, "LoRA rank (vLLM serves 8, 16, 32, 64, 128, 256)")
    lora_alpha: int = _f(32, "LoRA alpha (scale = alpha / r)")
    lora_dropout: float = _f(0.05, "dropout on the LoRA input")
    seed: int = _f(0, "seed for batching, the prompt-mix half, PG draws and LoRA initialisation")
    save_steps: int = _f(0, "optimizer steps between checkpoints (0: about ten checkpoints per run)")
    logging_steps: int = _f(0, "optimizer steps between log lines (0: about twenty lines per run)")
    merge: bool = _f(False, "also write ADAPTER_DIR/merged/, a full model folder with the adapter merged in")

    def __post_init__(self):
        def bad(msg):
            raise GenpiError(msg)

        if self.method not in METHODS:
            bad(f"unknown method '{self.method}': choose one of {', '.join(METHODS)}")
        if not 0.0 <= self.lam <= 1.0:
            bad(f"--lambda {self.lam} is out of range: pass a value between 0 and 1")
        if not (self.kl_weight >= 0 and math.isfinite(self.kl_weight)):
            bad(f"--kl-weight {self.kl_weight} must be a finite number >= 0")
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            bad(f"--epochs {self.epochs} must be positive")
        for name in ("batch_size", "grad_accum", "max_source_tokens", "max_target_tokens"):
            if getattr(self, name) < 1:
                bad(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_target_tokens < 16:
            bad("--max-target-tokens must be at least 16")
        if not (0 < self.learning_rate < 1):
            bad(f"--lr {self.learning_rate} must be between 0 and 1")
        if not 0.0 < self.pg_fraction <= 1.0:
            bad(f"--pg-fraction {self.pg_fraction} must be in (0, 1]")
        if self.lora_r not in VLLM_RANKS:
            bad(f"--lora-r {self.lora_r} is not a rank vLLM serves: choose one of {', '.join(map(str, VLLM_RANKS))}")
        if self.lora_alpha <= 0:
            bad("--lora-alpha must be positive")
        if not 0.0 <= self.lora_dropout < 1.0:
            bad("--lora-dropout must be in [0, 1)")
        if self.save_steps < 0 or self.logging_steps < 0:
            bad("--save-steps and --logging-steps must be >= 0")

    @property
    def uses_pg(self) -> bool:
        return self.method == "genpi" and self.lam < 1.0

    @property
    def uses_sft(self) -> bool:
        return self.method != "genpi" or self.lam > 0.0

    @classmethod
    def from_preset(cls, preset: Preset, **overrides) -> "TrainConfig":
        """The preset's training sizes, then every non-None override."""
        names = {f.name for f in fields(cls)}
        base = {k: getattr(preset, k) for k in ("epochs", "batch_size", "grad_accum", "learning_rate",
                                                 "max_source_tokens", "max_target_tokens") if hasattr(preset, k)}
        for k in ("pg_fraction",):  # optional preset fields
            if getattr(preset, k, None) is not None:
                base[k] = getattr(preset, k)
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def help_of(name: str) -> str:
        return next(f.metadata["help"] for f in fields(TrainConfig) if f.name == name)
