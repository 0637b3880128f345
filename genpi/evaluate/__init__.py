"""Evaluation: score no-prompt / with-prompt / adapters on held-out inputs and write the reports.

    config.py       EvalConfig (reply length, turns, seed, batch size)
    checks.py       checks, expectations, score, retention, normalized (pure functions)
    agreement.py    exact match and chrF against the prompted model's outputs
    kl.py           teacher-forced KL from the prompted model to a variant
    runner.py       generation per variant, resumable outputs store
    report.py       report.md and report.png (report.json's schema: genpi.artifacts.Report)
    evaluation.py   evaluate(): all of the above in order
"""

from ..lazy import lazy_exports

_EXPORTS = {
    'EvalConfig': '.config',
    'evaluate': '.evaluation',
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
