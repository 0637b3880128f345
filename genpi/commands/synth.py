"""Self role-playing data synthesis: pseudo inputs, teacher/student outputs, reasons, role-play.

Writes DATA_DIR/records.jsonl (one line per kept pseudo input, appended as each is finished),
DATA_DIR/inputs.jsonl (the pseudo-input pool), DATA_DIR/calls.jsonl (every generation call, a cache)
and DATA_DIR/meta.json. Rerunning the same command resumes; a larger --num-inputs tops up; another
--max-turns keeps the old records aside and generates only what is new. Ctrl-C (or SIGTERM) stops
between records.
"""

from __future__ import annotations

from ..config import add_flags, overrides_from
from . import common

HELP = "synthesize training records from the prompt alone (self role-playing)"


def add_arguments(p):
    from ..synth import SynthConfig

    common.add_scenario(p)
    common.add_out(p, "DATA_DIR", "folder for the records and their metadata (resumed if it exists)")
    common.add_model(p)
    common.add_generator(p)
    common.add_model_api(p)
    common.add_preset(p)
    add_flags(p.add_argument_group("sizes (defaults: the preset's)"), SynthConfig)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--export-hf", default=None, metavar="DIR",
                   help="also write the records as a Hugging Face datasets folder (chat `messages` without the "
                        "prompt, as TRL's SFTTrainer reads them); needs the datasets package")


def main(args) -> int:
    from ..synth import SynthConfig

    sc = common.scenario_arg(args)
    cfg = SynthConfig.from_preset(args.preset, sc, **overrides_from(args, SynthConfig))
    ref = common.model_arg(args.model, args.preset)
    gen = common.generator_arg(args)
    served = common.model_api_arg(args)
    out = common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    from ..synth import format_summary, synthesize

    summary = synthesize(sc, ref, gen, out, cfg, base_api=served, progress=not args.quiet)
    print(format_summary(summary))
    if args.export_hf:
        from ..export.hf_dataset import export_hf_dataset

        done = export_hf_dataset(sc, out, args.export_hf)
        print(f"wrote {done['rows']} conversations to {done['dir']} (datasets.load_from_disk(DIR)['train'])")
    return 0
