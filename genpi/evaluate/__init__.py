"""Evaluation: score no-prompt / with-prompt / adapters on held-out inputs and write the reports.

    checks.py       checks, expectations, score, retention, normalized (pure functions)
    agreement.py    exact match and chrF against the prompted model's outputs
    kl.py           teacher-forced KL from the prompted model to a variant
    runner.py       generation per variant, resumable outputs.jsonl
    report.py       report.json, report.md, report.png
    evaluation.py   evaluate(): all of the above in order
"""

from .evaluation import evaluate

__all__ = ["evaluate"]
