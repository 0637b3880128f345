"""`run_pipeline`: synth -> train each method -> eval all -> bench, each stage resuming from its files.

Layout of OUT_DIR:
    data/             genpi synth   (records.jsonl, meta.json)
    adapters/METHOD/  genpi train   (one PEFT adapter per method)
    report/           genpi eval    (report.json, report.md, report.png, outputs.jsonl)
    bench/            genpi bench   (bench.json, bench.md, bench.png), on the first method's adapter
    run.json          what ran, what was reused, and the seconds per stage

Every stage keys its output on its inputs (scenario, model, data, settings) and returns at once when
that output is already there, so rerunning the same command resumes a killed run and a changed
setting redoes only what depends on it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import GenpiError
from .evaluate.report import write_json
from .models import ModelRef
from .presets import Preset, get_preset
from .scenario import Scenario
from .train.config import METHODS

if TYPE_CHECKING:
    from .generate.specs import GeneratorSpec


def _stage(name: str, timings: dict, fn):
    print(f"genpi run: {name} ...", file=sys.stderr)
    t0 = time.time()
    result = fn()
    timings[name] = round(time.time() - t0, 1)
    print(f"genpi run: {name} done in {timings[name]:.0f} s", file=sys.stderr)
    return result


def run_pipeline(scenario: Scenario, model_ref: ModelRef, out_dir: str | Path, preset: Preset | str = "quick",
                 methods: list[str] | tuple[str, ...] = ("genpi",), generator_spec: GeneratorSpec | None = None,
                 *, bench: bool = True, progress: bool = True) -> dict:
    """Run every stage for `scenario`; return {"report": report.json's dict, "bench": ..., "timings": ...}."""
    from .bench import run_bench
    from .evaluate import evaluate
    from .synth import synthesize
    from .train import train_adapter

    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise GenpiError(f"unknown method(s) {', '.join(bad) or '(none)'}: choose from {', '.join(METHODS)}")
    if not scenario.eval.inputs:
        raise GenpiError(f"scenario '{scenario.source or scenario.name}' has no eval.inputs, so 'genpi run' "
                         "cannot evaluate: add held-out inputs under eval: inputs:")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    data = out / "data"
    _stage("synth", timings, lambda: synthesize(scenario, model_ref, generator_spec, data, preset=preset,
                                                progress=progress))
    adapters = []
    for m in dict.fromkeys(methods):
        a = out / "adapters" / m
        _stage(f"train {m}", timings, lambda: train_adapter(scenario, model_ref, data, a, method=m, preset=preset,
                                                          progress=progress))
        adapters.append(a)
    report = _stage("eval", timings, lambda: evaluate(scenario, model_ref, adapters, out / "report", preset))
    bench_result = None
    if bench:
        tokens = min(40, preset.eval_max_new_tokens)  # bench's own defaults, scaled down for the smoke preset
        bench_result = _stage("bench", timings, lambda: run_bench(
            scenario, model_ref, adapters[0], out / "bench", turns=min(3, preset.max_turns), preset=preset,
            reply_tokens=tokens, env_tokens=tokens, conversations=preset.bench_conversations, progress=progress))
    summary = {"scenario": scenario.name, "model": model_ref.name, "preset": preset.name, "methods": list(methods),
               "outputs": {"data": "data", "adapters": {m: f"adapters/{m}" for m in methods}, "report": "report",
                           "bench": "bench" if bench else None},
               "seconds": timings, "seconds_total": round(sum(timings.values()), 1)}
    write_json(out / "run.json", summary)
    return {"report": report, "bench": bench_result, "run": summary}
