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
    p.add_argument("--no-bench", action="store_true", help="skip the inference-cost benchmark")
    g = p.add_argument_group("sizes (defaults: the preset's; a changed size redoes the stages it feeds)")
    g.add_argument("--num-inputs", type=int, default=None, metavar="N", help="pseudo inputs to synthesize")
    g.add_argument("--max-turns", type=int, default=None, metavar="T",
                   help="agent turns per role-play conversation (at most the scenario's environment.max_turns)")
    g.add_argument("--epochs", type=float, default=None, metavar="E", help="training epochs of every method")


def main(args) -> int:
    from ..presets import get_preset

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise common.GenpiError(f"--methods: unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}")
    for flag in ("num_inputs", "max_turns", "epochs"):
        v = getattr(args, flag)
        if v is not None and v <= 0:
            raise common.GenpiError(f"--{flag.replace('_', '-')} must be above 0 (got {v})")
    preset = get_preset(args.preset, num_inputs=args.num_inputs, max_turns=args.max_turns, epochs=args.epochs)
    sc = common.scenario_arg(args)
    if not sc.eval.inputs:
        raise common.GenpiError(f"scenario '{args.scenario}' has no eval.inputs, so 'genpi run' cannot evaluate: "
                                "add held-out inputs under eval: inputs:")
    ref = common.model_arg(args.model, preset.model)
    gen = common.generator_arg(args)
    out = common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    from ..pipeline import run_pipeline
    from .eval import summary_line

    result = run_pipeline(sc, ref, out, preset, methods, gen, bench=not args.no_bench)
    print(summary_line(result["report"]))
    if result["bench"] is not None:
        r = result["bench"]["ratios"][result["bench"]["internalized_variant"]]
        print(f"bench: internalized / with_prompt = {r['flops']:.2f} FLOPs, {r['latency']:.2f} latency")
    print(f"wrote {out}/report/report.md, {out}/bench/bench.md and run.json "
          f"({result['run']['seconds_total']:.0f} s this run)")
    return 0
