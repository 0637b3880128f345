"""`genpi init PROMPT_FILE`: a commented scenario that loads as written and with its examples filled in."""

from __future__ import annotations

import re

from conftest import one_line_error

from genpi.scenario import load_scenario


def test_init_writes_a_scenario_that_points_at_the_prompt(cli, write, tmp_path):
    p = write("kit.txt", "You are Kit, the support agent of a bike shop. Always greet the customer.\n")
    res = cli("init", str(p))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "kit.yaml"
    sc = load_scenario(out)
    assert sc.name == "kit" and sc.prompt_text.endswith("Always greet the customer.")
    assert sc.seed_inputs == [] and sc.eval.inputs == [] and sc.eval.checks == []
    # every commented example, uncommented, is valid too
    text = out.read_text()
    filled = re.sub(r"^(\s*)#  - ", r"\1  - ", text, flags=re.M)
    filled = re.sub(r": \[\]\n(\s+- )", r":\n\1", filled)
    filled = re.sub(r"^# environment:", "environment:", filled, flags=re.M)
    (tmp_path / "filled.yaml").write_text(filled)
    full = load_scenario(tmp_path / "filled.yaml")
    assert full.seed_inputs == ["How do I reset my password?"] and [c.name for c in full.eval.checks] == ["greeting"]
    assert [e.input for e in full.eval.inputs] == ["How long is the warranty?", "Can I return a used helmet?"]
    assert full.environment.max_turns == 3

    one_line_error(cli("init", str(p)), "exists: pass --force")
    assert cli("init", str(p), "--force").returncode == 0
    one_line_error(cli("init", str(tmp_path / "nope.txt")), "not found")
    one_line_error(cli("init", str(out)), "already a scenario")
