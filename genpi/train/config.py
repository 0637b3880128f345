"""The training configuration: one dataclass, every field with help text, validated on creation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import StageConfig, at_least, option
from ..errors import GenpiError

METHODS = ("genpi", "sft", "sft-kl", "prompt-mix")
VLLM_RANKS = (8, 16, 32, 64, 128, 256)
PRECISIONS = ("auto", "bf16", "fp32")


def parse_methods(methods: str | list[str] | tuple[str, ...]) -> list[str]:
    """Methods from 'a,b' or a list: known, at least one, each once, in the order given."""
    items = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [m.strip() for m in methods]
    items = [m for m in dict.fromkeys(items) if m]
    bad = [m for m in items if m not in METHODS]
    if bad or not items:
        raise GenpiError(f"--methods: unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}")
    return items


@dataclass
class TrainConfig(StageConfig):
    """Everything that shapes a training run (and so its signature); presets fill the sizes."""

    STAGE = "train"

    method: str = option("genpi", "genpi: (1-lambda)*PG + lambda*SFT; sft: SFT only; sft-kl: SFT + token KL to the "
                                  "prompted teacher; prompt-mix: SFT with the prompt in a random half of the inputs",
                         choices=METHODS)
    lam: float = option(0.7, "weight of the SFT term in the joint loss; (1 - lambda) goes to the PG term",
                        flag="--lambda", metavar="L")
    kl_weight: float = option(1.0, "weight of the token-level KL(teacher || student) term (sft-kl only)", metavar="W")
    kl: float = option(0.0, "genpi only: weight of a token-level KL(prompted teacher || adapter) term on the "
                            "teacher's replies, added to the joint loss (off-policy distillation of the teacher's "
                            "distribution, not only its sampled tokens); 0: the paper's loss", metavar="W")
    kl_teacher: str = option("auto", "where the KL term (sft-kl, --kl) gets the prompted teacher's distribution: "
                                     "'model' runs the prompted base model in each step; 'stored' reads the top-K "
                                     "log-probabilities `genpi synth --teacher-logprobs K` stored beside the records "
                                     "(no teacher pass; a lower bound of the full KL, see README); 'auto': stored "
                                     "when every record has them", metavar="SOURCE", choices=("auto", "model", "stored"))
    on_policy: float = option(0.0, "weight of an on-policy distillation term: the adapter answers the pseudo inputs "
                                   "itself (no prompt), the prompted base model scores the reply, the loss is the "
                                   "per-token reverse KL(adapter || teacher); 0: off", metavar="W")
    on_policy_every: int = option(4, "micro-steps between on-policy batches (each samples a reply per SFT example of "
                                     "its step)", metavar="N")
    on_policy_tokens: int = option(64, "longest sampled reply of an on-policy batch", cli=False)
    on_policy_temperature: float = option(1.0, "sampling temperature of the adapter's own replies", cli=False)
    grounded_repeats: int = option(1, "times per epoch the SFT example of a record is trained on when its teacher "
                                      "reply uses a unit of the prompt (a fact, a rule: by the unit's distinctive "
                                      "words, as the synthesis coverage counts them), to weigh what the prompt says "
                                      "above how it is said; 1: as often as any other record", metavar="N")
    cited_weight: float = option(1.0, "times the SFT term counts each token of text that synthesis cited into a "
                                      "teacher reply (`genpi synth --cite-units`: the fact or rule the request "
                                      "asks about, which the teacher left out). The KL term leaves that text out, "
                                      "so SFT alone teaches it; a weight above 1 keeps it against the KL term's "
                                      "pull to the teacher's wording. 1: as any other token", metavar="W")
    pg_units: bool = option(False, "add a PG example per record whose request names a unit of the prompt (a fact, "
                                   "a rule: by a word of that unit's that no other unit has), trained in every "
                                   "epoch: from the request and both answers, write out that unit word for word "
                                   "(a loss term of its own, logged as 'units', weighed as PG), to bind the request "
                                   "to the part of the prompt it needs even where the teacher's reply missed it. "
                                   "On the embedded model it kept no more facts (README)")
    epochs: float = option(6.0, "passes over the SFT examples (fractions allowed)", metavar="E")
    batch_size: int = option(4, "SFT examples per micro-batch, in each process (PG batches are sized so each PG "
                                "example comes once per epoch)", metavar="N")
    grad_accum: int = option(1, "micro-batches per optimizer step, in each process (N processes with G train as "
                                "one with N*G)", metavar="N")
    learning_rate: float = option(5e-4, "peak learning rate (cosine schedule after warm-up)", flag="--lr",
                                  metavar="LR")
    warmup_ratio: float = option(0.03, "fraction of the optimizer steps spent warming up", cli=False)
    max_grad_norm: float = option(1.0, "gradient clipping norm", cli=False)
    weight_decay: float = option(0.0, "AdamW weight decay", cli=False)
    max_source_tokens: int = option(512, "longest context before the first supervised token (the no-prompt input "
                                         "for SFT, the instruction for PG); longer SFT examples are skipped, PG "
                                         "outputs cut", metavar="N")
    max_target_tokens: int = option(512, "most supervised-span tokens per example; SFT keeps whole turns within it, "
                                         "a longer prompt is split into sections that each fit as a PG target",
                                    metavar="N")
    pg_fraction: float = option(1.0, "share of records that give a PG example in each epoch (drawn anew per "
                                     "epoch); PG targets carry the prompt, so this is the knob for PG cost",
                                metavar="F")
    lora_r: int = option(16, "LoRA rank (vLLM serves 8, 16, 32, 64, 128, 256)", metavar="R")
    lora_alpha: int = option(32, "LoRA alpha (scale = alpha / r)", metavar="A")
    lora_dropout: float = option(0.05, "dropout on the LoRA input", cli=False)
    seed: int = option(0, "seed for batching, the prompt-mix half, PG draws and LoRA initialisation", metavar="S")
    save_steps: int = option(0, "optimizer steps between checkpoints (0: about ten checkpoints per run)",
                             metavar="N")
    logging_steps: int = option(0, "optimizer steps between log lines (0: about twenty lines per run)", cli=False)
    precision: str = option("auto", "arithmetic of training: bf16 (bfloat16 matrix products, LoRA weights and "
                                    "optimizer in fp32; on a CPU the frozen base weights are stored in bf16 too), "
                                    "fp32, or auto: bf16 where the hardware has it (a CUDA GPU with bf16, a CPU with "
                                    "AVX512-BF16 or AMX), else fp32. Not part of the run's signature",
                            choices=PRECISIONS)
    gradient_checkpointing: bool = option(False, "recompute each layer's activations in the backward pass instead "
                                                 "of keeping them: much less memory for long prompts and sequences, "
                                                 "about a third more compute, the same loss. Not part of the run's "
                                                 "signature")
    load_in_4bit: bool = option(False, "QLoRA: hold the frozen base weights in 4-bit NF4 (bitsandbytes; needs a CUDA "
                                       "GPU and `pip install bitsandbytes`); about a quarter of the fp16 weight memory, "
                                       "LoRA weights and optimizer stay in full precision")
    merge: bool = option(False, "also write ADAPTER_DIR/merged/, a full model folder with the adapter merged in "
                                "(for servers that take no adapters)")

    def __post_init__(self):
        def bad(msg):
            raise GenpiError(msg)

        if self.precision not in PRECISIONS:
            bad(f"unknown precision '{self.precision}': choose one of {', '.join(PRECISIONS)}")
        if self.method not in METHODS:
            bad(f"unknown method '{self.method}': choose one of {', '.join(METHODS)}")
        if not 0.0 <= self.lam <= 1.0:
            bad(f"--lambda {self.lam} is out of range: pass a value between 0 and 1")
        if not (self.kl_weight >= 0 and math.isfinite(self.kl_weight)):
            bad(f"--kl-weight {self.kl_weight} must be a finite number >= 0")
        if not (self.kl >= 0 and math.isfinite(self.kl)):
            bad(f"--kl {self.kl} must be a finite number >= 0")
        if not (self.cited_weight > 0 and math.isfinite(self.cited_weight)):
            bad(f"--cited-weight {self.cited_weight} must be a finite number above 0")
        if not (self.on_policy >= 0 and math.isfinite(self.on_policy)):
            bad(f"--on-policy {self.on_policy} must be a finite number >= 0")
        if self.on_policy > 0 and not self.uses_sft:
            bad("--on-policy needs SFT examples (their inputs are what the adapter answers): use --lambda above 0")
        at_least(self, 1, "on_policy_every", "on_policy_tokens", "grounded_repeats")
        if self.pg_units and not (self.method == "genpi" and self.lam < 1.0):
            bad("--pg-units adds examples to the PG term: use --method genpi with --lambda below 1")
        if self.kl_teacher not in ("auto", "model", "stored"):
            bad(f"unknown --kl-teacher '{self.kl_teacher}': choose auto, model or stored")
        if self.kl > 0 and self.method != "genpi":
            bad(f"--kl adds a KL term to the genpi joint loss; method {self.method} does not take it "
                "(sft-kl has --kl-weight)")
        at_least(self, 0, "epochs", strict=True)
        if not math.isfinite(self.epochs):
            bad(f"--epochs {self.epochs} must be a finite number")
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

    @classmethod
    def from_preset(cls, preset: str, **overrides):
        """As StageConfig.from_preset; a preset's `kl` belongs to the genpi joint loss, so another method
        leaves it out unless --kl is given (which that method then refuses)."""
        if overrides.get("method") not in (None, "genpi") and overrides.get("kl") is None:
            overrides["kl"] = 0.0
        return super().from_preset(preset, **overrides)

    @property
    def uses_pg(self) -> bool:
        return self.method == "genpi" and self.lam < 1.0

    @property
    def uses_kl(self) -> bool:
        """A term that needs the prompted teacher's view of the SFT examples (so teacher twins are built)."""
        return (self.method == "sft-kl" or (self.method == "genpi" and self.kl > 0 and self.lam > 0)
                or self.on_policy > 0)

    def signed(self) -> dict:
        """The fields that sign a run: options left at their "off" value are left out, so adapters
        trained before the option existed keep their signature; how the arithmetic is done (precision,
        gradient checkpointing), like the device, is recorded in genpi.json but does not sign the run."""
        off = {"kl"} if self.kl == 0 else set()
        off |= {"load_in_4bit"} if not self.load_in_4bit else set()
        off |= {"grounded_repeats"} if self.grounded_repeats == 1 else set()
        off |= {"cited_weight"} if self.cited_weight == 1 else set()
        off |= {"pg_units"} if not self.pg_units else set()
        if self.on_policy == 0:
            off |= {"on_policy", "on_policy_every", "on_policy_tokens", "on_policy_temperature"}
        # kl_teacher: the source the run actually used is signed by the recipe (run key "teacher_logprobs")
        return {k: v for k, v in self.to_dict().items()
                if k not in ("merge", "precision", "gradient_checkpointing", "kl_teacher") and k not in off}

    @property
    def uses_sft(self) -> bool:
        return self.method != "genpi" or self.lam > 0.0
