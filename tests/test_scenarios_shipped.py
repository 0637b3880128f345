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


def test_it_policy_cites_a_section_and_its_units_carry_their_headings():
    from genpi.synth.coverage import split_units

    sc = _shipped("it-policy")
    cite = {c.name: c for c in sc.eval.checks}["cites_section"]
    assert cite.passes("Passwords must have at least 14 characters. [IT-1]")
    assert not cite.passes("[IT-1] Passwords must have at least 14 characters.")
    assert not cite.passes("Passwords must have at least 14 characters. [IT-9]")
    assert all(cite.passes(m.content) for m in sc.prompt if m.role == "assistant")
    assert all(e.expect is not None for e in sc.eval.inputs) and len(sc.eval.inputs) == 20
    units = split_units([m.model_dump() for m in sc.prompt])
    facts = [u for u in units if u.kind == "item" and u.section.startswith("IT-")]
    assert len(facts) == 26 and sum(u.section == "Rules:" for u in units) == 3
    by_input = {e.input: e.expect for e in sc.eval.inputs}
    night = by_input["What is the number for urgent problems at night?"]
    assert expectation_passes(night, "Call the on-call line 0800 555 019. [IT-6]")
    assert not expectation_passes(night, "Call extension 4400. [IT-6]")


def test_agentbench_kg_checks_accept_real_tool_calls_only():
    sc = _load(REPO / "benchmarks" / "agentbench-kg.yaml")
    checks = {c.name: c for c in sc.eval.checks}
    good = ["Thought: I need the relations of Google first.\nAction: get_relations(Google)",
            "Thought: Use the founders relation.\nAction: get_neighbors(#0, organization.organization.founders)",
            "Thought: Both sets are people.\nAction: intersection(#0, #1)",
            "Thought: Count them.\nAction: count(#2)",
            "Thought: #3 is the answer.\nFinal Answer: #3"]
    for text in good:
        assert checks["protocol"].passes(text) and checks["tool_signature"].passes(text), text
    demo = [m.content for m in sc.prompt if m.role == "assistant" and m.content.startswith("Thought")]
    assert demo and all(c.passes(t) for t in demo for c in checks.values())
    wrong_arity = "Thought: find founders.\nAction: get_neighbors(Google)"
    unknown_tool = "Thought: search the web.\nAction: search(Google founders)"
    prose = "The founders of Google are Larry Page and Sergey Brin."
    two_actions = "Thought: go.\nAction: get_relations(Google)\nAction: get_relations(Stanford)"
    assert not checks["tool_signature"].passes(wrong_arity)
    assert not checks["protocol"].passes(unknown_tool) and not checks["tool_signature"].passes(unknown_tool)
    assert not any(c.passes(prose) for c in checks.values())
    assert not checks["tool_signature"].passes(two_actions)
    first = {e.input: e.expect for e in sc.eval.inputs}
    assert all(e.expect is not None for e in sc.eval.inputs)
    q = next(k for k in first if "Kurosawa" in k)
    assert expectation_passes(first[q], "Thought: start.\nAction: get_relations(Toshiro Mifune)")
    assert not expectation_passes(first[q], "Thought: start.\nAction: get_relations(Japan)")
