"""Every scenario the project ships loads, holds out its eval inputs, and has working checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from genpi.evaluate.checks import expectation_passes
from genpi.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHIPPED = sorted((REPO / "scenarios").glob("*.yaml"))
BENCHMARKS = sorted((REPO / "benchmarks").glob("*.yaml"))


def _norm(s: str) -> str:
    return " ".join(s.casefold().split())


def _load(path: Path):
    if path.parent.name == "benchmarks" and not (SHARED / "data").is_dir():
        pytest.skip(f"{path.name} reads its prompt from {SHARED}/data, which is not beside this checkout")
    return load_scenario(path)


def test_the_two_shipped_scenarios_exist():
    assert {p.stem for p in SHIPPED} >= {"shell-agent", "support-desk"}


@pytest.mark.parametrize("path", SHIPPED + BENCHMARKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_loads_with_held_out_inputs_and_checks(path):
    sc = _load(path)
    inputs = [_norm(e.input) for e in sc.eval.inputs]
    assert len(inputs) >= 15, "ship at least 15 held-out eval inputs"
    assert len(set(inputs)) == len(inputs), "eval inputs repeat"
    assert sc.seed_inputs, "ship a few seed inputs"
    assert not set(inputs) & {_norm(s) for s in sc.seed_inputs}, "eval inputs must be disjoint from the seeds"
    assert sc.eval.checks, "ship at least one check"
    for c in sc.eval.checks:
        if c.regex:
            re.compile(c.regex)
    for e in sc.eval.inputs:
        if e.expect and e.expect.regex:
            re.compile(e.expect.regex)


def _shipped(name: str):
    return load_scenario(REPO / "scenarios" / f"{name}.yaml")


def test_shell_agent_checks_accept_the_protocol_and_reject_prose():
    sc = _shipped("shell-agent")
    good_cmd = "Plan: Count the .py files under /srv/app.\n```sh\nfind /srv/app -name '*.py' | wc -l\n```"
    good_final = "Plan: The command printed the count, so I can answer.\nFinal: There are 12 files."
    prose = "To count the files you can use the following Python code:\n```python\nimport os\n```"
    demo = sc.prompt[2].content  # the prompt's own demonstration follows its protocol
    for text in (good_cmd, good_final, demo):
        assert all(c.passes(text) for c in sc.eval.checks), text
    assert not any(c.passes(prose) for c in sc.eval.checks if c.name == "protocol")


def test_support_desk_greeting_and_expectations():
    sc = _shipped("support-desk")
    greet = {c.name: c for c in sc.eval.checks}["greeting"]
    assert greet.passes("Copperleaf here! We close at 6 pm on weekdays.")
    assert not greet.passes("We close at 6 pm on weekdays. Copperleaf here!")
    assert all(e.expect is not None for e in sc.eval.inputs), "every support-desk input names its fact"
    by_input = {e.input: e.expect for e in sc.eval.inputs}
    assert expectation_passes(by_input["What is the price of a tandem?"], "Copperleaf here! A tandem is 28 euros a day.")
    assert not expectation_passes(by_input["What is the price of a tandem?"], "A tandem costs about 40 dollars.")
    hourly = by_input["I only need a bike for two hours. What do you charge per hour?"]
    assert expectation_passes(hourly, "It is 4 euros an hour.") and not expectation_passes(hourly, "It is 14 euros.")
