"""The architecture's rules, checked on the source: one owner per file contract, one copy of each shared piece."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONTRACT_FILES = ("records.jsonl", "meta.json", "genpi.json", "report.json", "bench.json", "outputs.jsonl", "episodes.jsonl")


def _sources(*roots: str) -> list[Path]:
    return sorted(p for r in roots for p in (REPO / r).rglob("*.py"))


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings (docstrings document; code names files)."""
    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docs.add(id(body[0].value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_only_the_artifacts_package_names_the_contract_files():
    offenders = []
    for path in _sources("genpi", "benchmarks"):
        if path.is_relative_to(REPO / "genpi" / "artifacts"):
            continue
        for line, text in _code_strings(path):
            offenders += [f"{path.relative_to(REPO)}:{line}: {name}" for name in CONTRACT_FILES if name in text]
    assert offenders == [], "open these files through genpi.artifacts, not by name:\n" + "\n".join(offenders)


@pytest.mark.parametrize("needle, allowed", [
    ("apply_chat_template(", {"genpi/models.py"}),                             # the one chat renderer
    ("log_softmax(", {"genpi/kl.py"}),                                          # the one KL
    ("file_digest(", {"genpi/artifacts/io.py"}),                                 # the one file hasher
    ("os.replace(", {"genpi/artifacts/io.py", "genpi/evaluate/report.py"}),     # atomic JSON; the plot's PNG
    ("def environment_messages", {"genpi/envs/simulated.py"}),                  # the one role-play prompt
    ("def run_episodes", {"genpi/envs/episodes.py"}),                           # the one role-play loop
    ("def shared_prefix_len", {"genpi/generate/local.py"}),                     # the one shared-prefix search
])
def test_one_copy_of_each_shared_piece(needle, allowed):
    found = {str(p.relative_to(REPO)) for p in _sources("genpi", "benchmarks") if needle in p.read_text()}
    assert found <= allowed and found, f"{needle!r} found in {sorted(found)}; allowed only in {sorted(allowed)}"


def test_every_stage_config_field_has_help_and_every_flag_is_generated():
    import dataclasses

    from genpi.bench import BenchConfig
    from genpi.evaluate import EvalConfig
    from genpi.synth import SynthConfig
    from genpi.train import TrainConfig

    for cls in (SynthConfig, TrainConfig, EvalConfig, BenchConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
