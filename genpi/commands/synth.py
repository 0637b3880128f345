"""Self role-playing data synthesis: pseudo inputs, teacher/student outputs, reasons, role-play.

Writes DATA_DIR/records.jsonl (one line per kept pseudo input, appended as each is finished),
DATA_DIR/inputs.jsonl (the pseudo-input pool), DATA_DIR/calls.jsonl (every generation call, a cache)
and DATA_DIR/meta.json. Rerunning the same command resumes; a larger --num-inputs tops up; another
--max-turns keeps the old records aside and generates only what is new. Ctrl-C (or SIGTERM) stops
between records.
"""

from __future__ import annotations

from . import common

HELP = "synthesize training records from the prompt alone (self role-playing)"


def add_arguments(p):
    common.add_scenario(p)
    common.add_out(p, "DATA_DIR", "folder for records.jsonl and meta.json (resumed if it exists)")
    common.add_model(p)
    common.add_generator(p)
    common.add_preset(p)
    p.add_argument("--num-inputs", type=int, default=None, metavar="N", help="pseudo inputs to keep (default: preset)")
    p.add_argument("--max-turns", type=int, default=None, metavar="T",
                   help="agent turns per conversation, the environment answering between them "
                        "(default: the smaller of the preset's and the scenario's environment.max_turns)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="records generated together (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled stages (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args) -> int:
    from ..presets import get_preset
    from ..synth import format_summary, synthesize

    for flag in ("num_inputs", "max_turns", "batch_size"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise common.GenpiError(f"--{flag.replace('_', '-')} must be at least 1 (got {v})")
    preset = get_preset(args.preset)
    sc = common.scenario_arg(args)
    ref = common.model_arg(args.model, preset.model)
    gen = common.generator_arg(args)
    out = common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    summary = synthesize(sc, ref, gen, out, args.num_inputs, args.max_turns, preset,
                         batch_size=args.batch_size, seed=args.seed, progress=not args.quiet)
    print(format_summary(summary))
    return 0
