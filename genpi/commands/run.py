"""The whole pipeline: synth, train each method, eval all, bench; each stage resumes from its files.

Layout of DIR: data/ (synth), adapters/METHOD/ (train), report/ (eval), bench/ (bench).
"""

from __future__ import annotations

from pathlib import Path

from ..config import add_flags, overrides_from
from . import common

HELP = "synthesize, train, evaluate and benchmark in one command"


def add_arguments(p):
    from ..evaluate import EvalConfig
    from ..synth import SynthConfig
    from ..train import METHODS, TrainConfig

    common.add_scenario(p)
    common.add_out(p, "DIR", "folder for every stage's output (rerun to resume)")
    common.add_preset(p)
    common.add_model(p)
    common.add_generator(p)
    common.add_model_api(p)
    p.add_argument("--methods", default="genpi", metavar="M[,M...]",
                   help=f"training methods to compare, comma-separated from {', '.join(METHODS)} (default: genpi)")
    p.add_argument("--no-bench", action="store_true", help="skip the inference-cost benchmark")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (tokens each stage generates or trains on, and the time at the pace "
                        "earlier runs measured on this machine) and stop; every run prints it first")
    g = p.add_argument_group("sizes (defaults: the preset's; a changed size redoes the stages it feeds)")
    add_flags(g, SynthConfig, only=("num_inputs", "max_turns", "teacher_logprobs"))
    add_flags(g, TrainConfig, only=("epochs",))
    add_flags(g, EvalConfig, only=("env", "limit"))
    g = p.add_argument_group("what the data and the loss hold (defaults: the preset's; see genpi synth / train "
                             "--help)")
    add_flags(g, SynthConfig, only=("coverage", "unit_questions", "cite_units"))
    add_flags(g, TrainConfig, only=("kl", "cited_weight"))


def main(args) -> int:
    from ..evaluate import EvalConfig
    from ..pipeline import RunConfig, run_pipeline
    from ..synth import SynthConfig
    from ..train import TrainConfig, parse_methods
    from .eval import summary_line

    methods = parse_methods(args.methods)
    sc = common.scenario_arg(args)  # without held-out inputs, synthesis sets pseudo inputs aside for evaluation
    synth = {k: v for k, v in overrides_from(args, SynthConfig).items() if k != "env"}  # --env is eval's
    cfg = RunConfig.from_preset(args.preset, sc, synth=synth,
                                train=overrides_from(args, TrainConfig), eval=overrides_from(args, EvalConfig))
    ref = common.model_arg(args.model, args.preset)
    gen = common.generator_arg(args)
    served = common.model_api_arg(args)
    out = Path(args.out) if args.dry_run else common.out_dir_arg(args.out)
    common.fit_arg(sc, ref)
    result = run_pipeline(sc, ref, out, cfg, methods, gen, base_api=served, bench=not args.no_bench,
                          dry_run=args.dry_run)
    if args.dry_run:
        return 0
    print(summary_line(result["report"]))
    if result["bench"] is not None:
        r = result["bench"]["ratios"][result["bench"]["internalized_variant"]]
        print(f"bench: internalized / with_prompt = {r['flops']:.2f} FLOPs, {r['latency']:.2f} latency")
    bench_md = f" {out}/bench/bench.md," if result["bench"] is not None else ""
    print(f"wrote {out}/report/report.md,{bench_md} {out}/report/report.html and run.json "
          f"({result['run']['seconds_total']:.0f} s this run)")
    return 0
