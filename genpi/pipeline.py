"""`run_pipeline`: synth -> train each method -> eval all -> bench, each stage resuming from its files.

Layout of OUT_DIR:
    data/             genpi synth
    adapters/METHOD/  genpi train   (one PEFT adapter per method)
    report/           genpi eval
    bench/            genpi bench, on the first method's adapter
    run.json          what ran, and the seconds per stage

Every stage keys its output on its inputs (scenario, model, data, settings) and returns at once when
that output is already there, so rerunning the same command resumes a killed run and a changed
setting redoes only what depends on it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .artifacts import write_run_summary
from .bench import BenchConfig
from .evaluate import EvalConfig
from .models import ModelRef
from .errors import GenpiError
from .scenario import EvalInput, Scenario
from .synth import SynthConfig
from .train import TrainConfig, parse_methods


@dataclass(frozen=True)
class RunConfig:
    """One config per stage, built once from the preset and the command line."""

    preset: str
    synth: SynthConfig
    train: TrainConfig
    eval: EvalConfig
    bench: BenchConfig

    @classmethod
    def from_preset(cls, preset: str, scenario: Scenario, *, synth: dict | None = None,
                    train: dict | None = None, eval: dict | None = None, bench: dict | None = None) -> "RunConfig":
        return cls(preset, SynthConfig.from_preset(preset, scenario, **(synth or {})),
                   TrainConfig.from_preset(preset, **(train or {})), EvalConfig.from_preset(preset, **(eval or {})),
                   BenchConfig.from_preset(preset, **(bench or {})))

if TYPE_CHECKING:
    from .generate.specs import GeneratorSpec


def heldout_size(config: RunConfig) -> int:
    """Pseudo inputs set aside for evaluation when a scenario has no held-out inputs: a quarter of the
    records, at least 4 and at most 20."""
    return max(4, min(20, config.synth.num_inputs // 4))


def _stage(name: str, timings: dict, fn):
    print(f"genpi run: {name} ...", file=sys.stderr)
    t0 = time.time()
    result = fn()
    timings[name] = round(time.time() - t0, 1)
    print(f"genpi run: {name} done in {timings[name]:.0f} s", file=sys.stderr)
    return result


def run_pipeline(scenario: Scenario, model_ref: ModelRef, out_dir: str | Path, config: RunConfig,
                 methods: list[str] | tuple[str, ...] | str = ("genpi",), generator_spec: GeneratorSpec | None = None,
                 *, base_api=None, bench: bool = True, progress: bool = True, dry_run: bool = False) -> dict:
    """Run every stage for `scenario`; return {"report": report.json's dict, "bench": ..., "run": ...}.
    base_api: the base model behind an endpoint, for synthesis (see synth.synthesize).
    First prints the plan (genpi.estimate: tokens per stage, and time at the paces measured here);
    dry_run: only that, returning {"plan": ...}."""
    from . import estimate
    from .artifacts import AdapterDir, DataDir
    from .models import load_tokenizer
    from .bench import run_bench
    from .evaluate import evaluate
    from .evaluate.tasks import load_task_problems, task_environment
    from .synth import synthesize
    from .train import train_adapter

    methods = parse_methods(methods)
    env = task_environment(scenario, config.eval)
    problems = []
    if env is not None:  # the problem set and the sandbox are checked now, not after synthesis and training
        problems = load_task_problems(env)
    episodes = min(len(problems), config.eval.limit or len(problems))
    synthetic = not scenario.eval.inputs and not problems  # no held-out inputs: set pseudo inputs aside
    planned = scenario
    if synthetic:
        config = replace(config, synth=replace(config.synth, holdout=max(config.synth.holdout, heldout_size(config))))
        planned = scenario.model_copy(update={"eval": scenario.eval.model_copy(update={"inputs": [
            EvalInput(input="a held-out pseudo input")] * config.synth.holdout})})
    the_plan = estimate.plan(planned, load_tokenizer(model_ref), config, methods, episodes=episodes,
                             rounds=env.round_limit if env is not None else 0)
    backend = f"{base_api.api_base} {base_api.api_model}" if base_api is not None else "local"
    keys = {stage: estimate.rate_key(stage, model_ref, backend if stage == "synth" else "local")
            for stage in the_plan.tokens}
    print("genpi run: " + estimate.describe(the_plan, estimate.seconds(the_plan, keys,
                                                                      estimate.older_keys(keys, model_ref))),
          file=sys.stdout if dry_run else sys.stderr)
    if dry_run:
        return {"plan": the_plan}

    def paced(stage: str, fresh: bool) -> None:  # a stage that did all its work sets the pace for the next plan
        if fresh:
            estimate.record(keys[stage], the_plan.tokens[stage], timings[stage])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    data = out / "data"
    fresh = not DataDir(data).has_records()
    _stage("synth", timings, lambda: synthesize(scenario, model_ref, generator_spec, data, config.synth,
                                                base_api=base_api, progress=progress))
    paced("synth", fresh)
    adapters = []
    for m in methods:
        a = out / "adapters" / m
        cfg = replace(config.train, method=m, **({} if m == "genpi" else {"kl": 0.0}))  # --kl is genpi's term
        fresh = not AdapterDir(a).weights_path.exists() and not AdapterDir(a).checkpoints.exists()
        _stage(f"train {m}", timings, lambda: train_adapter(scenario, model_ref, data, a, cfg, progress=progress))
        paced(f"train {m}", fresh)
        adapters.append(a)
    notes = []
    if synthetic:  # evaluate on the pseudo inputs synthesis set aside
        held = DataDir(data).read_heldout()
        if not held:
            raise GenpiError("synthesis could set no pseudo inputs aside for evaluation: add held-out inputs under "
                             "eval: inputs: in a scenario file (genpi init PROMPT_FILE writes one)")
        scenario = scenario.model_copy(update={"eval": scenario.eval.model_copy(update={"inputs": [
            EvalInput(input=x) for x in held]})})
        notes.append(f"the scenario has no held-out inputs, so these {len(held)} are synthetic: pseudo inputs that "
                     "synthesis set aside before training (never trained on)")
        print(f"genpi run: evaluating on {len(held)} synthetic held-out inputs (pseudo inputs never trained on)",
              file=sys.stderr)
    fresh = not (out / "report").exists()
    report = _stage("eval", timings, lambda: evaluate(scenario, model_ref, adapters, out / "report", config.eval,
                                                      notes=notes))
    paced("eval", fresh)
    bench_result = None
    if bench:
        bench_result = _stage("bench", timings, lambda: run_bench(scenario, model_ref, adapters[0], out / "bench",
                                                                  config.bench, progress=progress))
        from .evaluate.html_report import render_html

        render_html(out / "report", bench_result)  # the page gets the inference-cost figures too
    summary = {"scenario": scenario.name, "model": model_ref.name, "preset": config.preset, "methods": methods,
               "outputs": {"data": "data", "adapters": {m: f"adapters/{m}" for m in methods}, "report": "report",
                           "bench": "bench" if bench else None},
               "seconds": timings, "seconds_total": round(sum(timings.values()), 1)}
    write_run_summary(out, summary)
    return {"report": report, "bench": bench_result, "run": summary}
