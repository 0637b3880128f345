"""Joint-loss training of the prompt adapter: (1 - lambda) * PG + lambda * SFT, no prompt in the input.

Reads DATA_DIR/records.jsonl from `genpi synth`; writes a standard PEFT adapter
(adapter_config.json + adapter_model.safetensors) and genpi.json to ADAPTER_DIR.
"""

from __future__ import annotations

from . import common

HELP = "train a LoRA adapter that carries the prompt"
METHODS = ("genpi", "sft", "sft-kl", "prompt-mix")


def add_arguments(p):
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
    p.add_argument("--epochs", type=float, default=None, metavar="E", help="training epochs (default: preset)")


def main(args) -> int:
    from ..presets import get_preset

    preset = get_preset(args.preset, epochs=args.epochs)
    if not 0.0 <= args.lam <= 1.0:
        raise common.GenpiError(f"--lambda {args.lam} is out of range: pass a value between 0 and 1")
    if preset.epochs <= 0:
        raise common.GenpiError("--epochs must be positive")
    sc = common.scenario_arg(args)
    common.data_dir_arg(args.data)
    ref = common.model_arg(args.model, preset.model)
    common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    common.not_built("train", 4)
