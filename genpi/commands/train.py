"""Joint-loss training of the prompt adapter: (1 - lambda) * PG + lambda * SFT, no prompt in the input.

Reads the records `genpi synth` wrote to DATA_DIR; writes a standard PEFT adapter
(adapter_config.json + adapter_model.safetensors), genpi.json (metadata) and loss.png to ADAPTER_DIR;
with --merge also ADAPTER_DIR/merged/, a full model folder any server loads. An interrupted run
resumes from its last checkpoint when the same command is run again.

On several GPUs, one process each (data parallel; --batch-size and --grad-accum are per process, so N
processes with --grad-accum G train what one process with --grad-accum N*G does, N times faster):
  torchrun --nproc-per-node 4 -m genpi train SCENARIO --data DATA_DIR --out ADAPTER_DIR ...
  accelerate launch --multi_gpu --num_processes 4 -m genpi train SCENARIO --data DATA_DIR --out ADAPTER_DIR ...
"""

from __future__ import annotations

import json
import os
import sys

from ..config import add_flags, overrides_from
from ..errors import GenpiError
from . import common

HELP = "train a LoRA adapter that carries the prompt"


def add_arguments(p):
    from ..train import TrainConfig

    common.add_scenario(p)
    p.add_argument("--data", required=True, metavar="DATA_DIR", help="folder written by 'genpi synth'")
    common.add_out(p, "ADAPTER_DIR", "folder for the adapter (resumed from its last checkpoint if it exists)")
    common.add_model(p)
    common.add_preset(p)
    add_flags(p.add_argument_group("method, sizes and optimisation (defaults: the preset's)"), TrainConfig)
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")


def main(args) -> int:
    try:
        return _main(args)
    except GenpiError:
        if os.environ.get("RANK", "0") != "0":  # started by a launcher: the main process alone says it
            sys.exit(GenpiError.exit_code)
        raise


def _main(args) -> int:
    from ..train import TrainConfig

    cfg = TrainConfig.from_preset(args.preset, **overrides_from(args, TrainConfig))
    sc = common.scenario_arg(args)
    data = common.data_dir_arg(args.data)
    ref = common.model_arg(args.model, args.preset)
    out = common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    from ..train import train_adapter
    from ..train.parallel import is_main_process

    s = train_adapter(sc, ref, data, out, cfg, progress=not args.quiet)
    if not is_main_process():
        return 0
    t, d = s["train"], s["data"]
    terms = ", ".join(f"{k} {v:.4f}" for k, v in s["final_loss"].items())
    print(f"adapter: {args.out} ({s['method']}, {t['optimizer_steps']} steps, {d['sft_examples']} SFT / "
          f"{d['pg_examples']} PG examples, {t['wall_s']:.0f} s, {t['tokens_per_s']} tokens/s)", file=sys.stderr)
    print(f"final loss: {terms}", file=sys.stderr)
    print(json.dumps({"adapter": str(args.out), "method": s["method"], "final_loss": s["final_loss"],
                      "wall_s": t["wall_s"], "tokens_per_s": t["tokens_per_s"]}))
    return 0
