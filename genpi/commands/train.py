"""Joint-loss training of the prompt adapter: (1 - lambda) * PG + lambda * SFT, no prompt in the input.

Reads DATA_DIR/records.jsonl from `genpi synth`; writes a standard PEFT adapter
(adapter_config.json + adapter_model.safetensors), genpi.json (metadata) and loss.png to ADAPTER_DIR;
with --merge also ADAPTER_DIR/merged/, a full model folder any server loads. An interrupted run
resumes from its last checkpoint when the same command is run again.
"""

from __future__ import annotations

import json
import sys

from ..train.config import METHODS
from . import common

HELP = "train a LoRA adapter that carries the prompt"


def add_arguments(p):
    from ..train.config import TrainConfig

    h = TrainConfig.help_of
    common.add_scenario(p)
    p.add_argument("--data", required=True, metavar="DATA_DIR", help="folder written by 'genpi synth'")
    common.add_out(p, "ADAPTER_DIR", "folder for the adapter (resumed from its last checkpoint if it exists)")
    common.add_model(p)
    common.add_preset(p)
    p.add_argument("--method", default="genpi", choices=METHODS,
                   help="genpi: joint PG + SFT; sft: SFT only; sft-kl: SFT + token KL to the prompted teacher; "
                        "prompt-mix: SFT with the prompt kept in half the inputs (default: genpi)")
    p.add_argument("--lambda", dest="lam", type=float, default=0.7, metavar="L",
                   help="weight of SFT in the joint loss, (1 - L) goes to PG (default: 0.7)")
    p.add_argument("--kl-weight", type=float, default=1.0, metavar="W", help=h("kl_weight") + " (default: 1.0)")
    p.add_argument("--epochs", type=float, default=None, metavar="E", help="training epochs (default: preset)")
    g = p.add_argument_group("sizes and optimisation (defaults: the preset's)")
    g.add_argument("--batch-size", type=int, default=None, metavar="N", help=h("batch_size"))
    g.add_argument("--grad-accum", type=int, default=None, metavar="N", help=h("grad_accum"))
    g.add_argument("--lr", dest="learning_rate", type=float, default=None, metavar="LR", help=h("learning_rate"))
    g.add_argument("--max-source-tokens", type=int, default=None, metavar="N", help=h("max_source_tokens"))
    g.add_argument("--max-target-tokens", type=int, default=None, metavar="N", help=h("max_target_tokens"))
    g.add_argument("--pg-fraction", type=float, default=None, metavar="F", help=h("pg_fraction") + " (default: 1)")
    g.add_argument("--lora-r", type=int, default=None, metavar="R", help=h("lora_r") + " (default: 16)")
    g.add_argument("--lora-alpha", type=int, default=None, metavar="A", help=h("lora_alpha") + " (default: 32)")
    g.add_argument("--seed", type=int, default=None, metavar="S", help=h("seed") + " (default: 0)")
    g.add_argument("--save-steps", type=int, default=None, metavar="N", help=h("save_steps"))
    p.add_argument("--merge", action="store_true", help=h("merge") + " (for servers that take no adapters)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")


OVERRIDES = ("epochs", "batch_size", "grad_accum", "learning_rate", "max_source_tokens", "max_target_tokens",
             "pg_fraction", "lora_r", "lora_alpha", "seed", "save_steps")


def main(args) -> int:
    from ..presets import get_preset
    from ..train import TrainConfig, train_adapter

    preset = get_preset(args.preset)
    overrides = {k: getattr(args, k) for k in OVERRIDES}
    TrainConfig.from_preset(preset, method=args.method, lam=args.lam, kl_weight=args.kl_weight, **overrides)
    sc = common.scenario_arg(args)
    common.data_dir_arg(args.data)
    ref = common.model_arg(args.model, preset.model)
    common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    s = train_adapter(sc, ref, args.data, args.out, method=args.method, preset=preset, lam=args.lam,
                      kl_weight=args.kl_weight, merge=args.merge, progress=not args.quiet, **overrides)
    t, d = s["train"], s["data"]
    terms = ", ".join(f"{k} {v:.4f}" for k, v in s["final_loss"].items())
    print(f"adapter: {args.out} ({s['method']}, {t['optimizer_steps']} steps, {d['sft_examples']} SFT / "
          f"{d['pg_examples']} PG examples, {t['wall_s']:.0f} s, {t['tokens_per_s']} tokens/s)", file=sys.stderr)
    print(f"final loss: {terms}", file=sys.stderr)
    print(json.dumps({"adapter": str(args.out), "method": s["method"], "final_loss": s["final_loss"],
                      "wall_s": t["wall_s"], "tokens_per_s": t["tokens_per_s"]}))
    return 0
