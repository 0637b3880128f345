"""Self role-playing data synthesis: pseudo inputs, teacher/student outputs, reasons, role-play.

Writes DATA_DIR/records.jsonl (one line per kept pseudo input, appended as each is finished)
and DATA_DIR/meta.json. Rerunning the same command resumes; a larger --num-inputs tops up.
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
                   help="role-play rounds per record, agent + environment (default: preset)")


def main(args) -> int:
    from ..presets import get_preset

    preset = get_preset(args.preset, num_inputs=args.num_inputs, max_turns=args.max_turns)
    if preset.num_inputs < 1 or preset.max_turns < 1:
        raise common.GenpiError("--num-inputs and --max-turns must be at least 1")
    sc = common.scenario_arg(args)
    ref = common.model_arg(args.model, preset.model)
    common.generator_arg(args)
    common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    common.not_built("synth", 3)
