"""Inference cost, side by side: the prompt re-sent every turn, prefix-cached, internalized, merged.

    from genpi.bench import BenchConfig, run_bench
    result = run_bench(scenario, model_ref, adapter_dir, out_dir, BenchConfig.from_preset("quick"))

Modules: config (BenchConfig), flops (analytic FLOPs, the formula), decode (the timed greedy loop),
conversations (the frozen multi-turn conversations), runner (the variants), pipeline (run_bench), report
(the bench report's markdown and plot), random_adapter (a LoRA of the trained shape with random weights:
cost does not depend on the weights).
"""

from ..lazy import lazy_exports

_EXPORTS = {
    'BenchConfig': '.config',
    'run_bench': '.pipeline',
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
