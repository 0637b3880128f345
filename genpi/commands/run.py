"""The whole pipeline: synth, train each method, eval all, bench; each stage resumes from its files.

Layout of DIR: data/ (synth), adapters/METHOD/ (train), report/ (eval), bench/ (bench).
"""

from __future__ import annotations

from . import common
from .train import METHODS

HELP = "synthesize, train, evaluate and benchmark in one command"


def add_arguments(p):
    common.add_scenario(p)
    common.add_out(p, "DIR", "folder for every stage's output (rerun to resume)")
    common.add_preset(p)
    common.add_model(p)
    common.add_generator(p)
    p.add_argument("--methods", default="genpi", metavar="M[,M...]",
                   help=f"training methods to compare, comma-separated from {', '.join(METHODS)} (default: genpi)")


def main(args) -> int:
    from ..presets import get_preset

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise common.GenpiError(f"--methods: unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}")
    preset = get_preset(args.preset)
    sc = common.scenario_arg(args)
    ref = common.model_arg(args.model, preset.model)
    common.generator_arg(args)
    common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    common.not_built("run", 5)
