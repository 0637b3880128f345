"""Inference cost, side by side: the prompt re-sent every turn, prefix-cached, internalized, merged.

    from genpi.bench import run_bench
    result = run_bench(scenario, model_ref, adapter_dir, out_dir, turns=3, preset="quick")

Modules: flops (analytic FLOPs, the formula), decode (the timed greedy loop), conversations (the
frozen multi-turn conversations), runner (the variants), pipeline (run_bench), report (bench.json,
bench.md, bench.png), random_adapter (a LoRA of the trained shape with random weights: cost does
not depend on the weights).
"""

from .pipeline import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench"]
