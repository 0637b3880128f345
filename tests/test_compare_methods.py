"""benchmarks/compare_methods.py: one synthesis per seed, every method trained on it, one evaluation, and
a table of mean and spread that comes from the reports (tiny model, smoke preset)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "compare_methods.py"

SCENARIO = """\
name: mini-desk
prompt: |
  Facts:
  - Single kayak: 30 euros a day.
  - Double kayak: 45 euros a day.

  Rules:
  1. Start every reply with "Ahoy!".
student_template: "{input}"
seed_inputs: ["How much is a kayak?", "Are you open on Monday?"]
eval:
  checks: [{name: greeting, regex: '\\AAhoy!'}]
  inputs:
    - {input: "What does a double kayak cost?", expect: {contains: ["45"]}}
    - {input: "Is a single kayak cheaper?", expect: {contains: ["30"]}}
"""


def _script():
    spec = importlib.util.spec_from_file_location("compare_methods", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_compares_methods_over_seeds_and_resumes(tmp_path, capsys, tiny_ref):
    sc = tmp_path / "mini.yaml"
    sc.write_text(SCENARIO)
    out = tmp_path / "cmp"
    mod = _script()
    args = [str(sc), "--out", str(out), "--seeds", "0,1", "--methods", "genpi+12-epochs,genpi+kl", "--preset", "smoke"]
    assert mod.main(args) == 0
    table = capsys.readouterr().out
    result = json.loads((out / "compare.json").read_text())
    per = result["summary"]["mini-desk"]
    # the 12-epoch adapter is evaluated as "genpi" (its method): the table still names it by its method key
    assert list(per) == ["with_prompt", "no_prompt", "genpi+12-epochs", "genpi+kl"]
    assert json.loads((out / "mini-desk" / "seed0" / "report" / "report.json").read_text())["variants"].keys() >= {"genpi"}
    for v in per.values():
        assert v["seeds"] == [0, 1] and len(v["score"]) == 2 and set(v["checks"]) == {"greeting"}
        assert len(v["expectations_kept"]) == 2  # None for with_prompt, the teacher itself
    for seed in (0, 1):  # the KL method is genpi with the KL term, trained on that seed's one synthesis
        meta = json.loads((out / "mini-desk" / f"seed{seed}" / "adapters" / "genpi+kl" / "genpi.json").read_text())
        assert meta["method"] == "genpi" and meta["hyperparameters"]["kl"] == 1.0 and meta["hyperparameters"]["seed"] == seed
        assert "kl" in meta["final_loss"]
        long = json.loads((out / "mini-desk" / f"seed{seed}" / "adapters" / "genpi+12-epochs" / "genpi.json").read_text())
        assert long["hyperparameters"]["epochs"] == 12 and long["hyperparameters"]["kl"] == 0.0
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 4 and "| genpi+kl | 2 |" in rows[-1]
    assert (out / "compare-facts.png").is_file()  # the scenario has expectations: facts against KL
    assert (out / "compare.png").is_file() and (out / "compare.md").read_text().strip() == "\n".join(rows)
    # everything is stored: a second run redoes nothing and prints the same table
    assert mod.main(args + ["--summary-only"]) == 0
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")] == rows
    # another method on the same folder: trained alone, evaluated beside the adapters trained before, which
    # keep their figures (the report is not cut down to the methods of the latest run)
    assert mod.main([str(sc), "--out", str(out), "--seeds", "0", "--methods", "genpi+kl=0.5", "--preset", "smoke"]) == 0
    report = json.loads((out / "mini-desk" / "seed0" / "report" / "report.json").read_text())
    assert {Path(p).name for p in report["adapters"].values()} == {"genpi+12-epochs", "genpi+kl", "genpi+kl=0.5"}
    assert "genpi+kl=0.5" in report["variants"]
    both = mod.summarize(out, [str(sc)], [0], ["genpi+kl", "genpi+kl=0.5"])["mini-desk"]
    assert both["genpi+kl"]["score"] == per["genpi+kl"]["score"][:1] and both["genpi+kl=0.5"]["seeds"] == [0]


def test_bad_options_stop_with_one_line(tmp_path, capsys):
    mod = _script()
    with pytest.raises(SystemExit) as e:
        mod.main(["x.yaml", "--out", str(tmp_path), "--methods", "genpi,magic"])
    assert e.value.code == 2 and "unknown magic" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mod.main(["x.yaml", "--out", str(tmp_path), "--seeds", "a,b"])
    assert "give integers" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        mod.main(["x.yaml", "--out", str(tmp_path), "--methods", "genpi+kl=-1"])
    assert e.value.code == 2 and "unknown genpi+kl=-1" in capsys.readouterr().err


def test_facts_plot_only_where_there_are_facts(tmp_path):
    mod = _script()
    row = {"seeds": [0], "score": [0.5], "expectations": [None], "kl_to_teacher": [0.4]}
    assert mod.plot_facts({"agent": {"genpi": row}}, tmp_path / "f.png") is None and not (tmp_path / "f.png").exists()
    facts = {"with_prompt": {**row, "expectations": [0.2], "kl_to_teacher": [None]},
             "genpi+kl=0.3": {**row, "expectations": [0.1]}}
    assert mod.plot_facts({"agent": {"genpi": row}, "desk": facts}, tmp_path / "f.png") == tmp_path / "f.png"
    assert (tmp_path / "f.png").stat().st_size > 0


def test_variants_are_found_by_their_adapter_folder():
    mod = _script()
    report = {"adapters": {"genpi": "o/s/seed1/adapters/genpi", "genpi+kl": "o/s/seed1/adapters/genpi+kl=0.3"}}
    # evaluated in another order than asked for now, and named by method: found by folder all the same
    assert mod.variant_names(report, ["genpi+kl", "genpi+kl=0.3", "genpi"]) == {
        "genpi": "genpi", "genpi+kl=0.3": "genpi+kl"}


def test_a_kl_weight_is_a_method():
    mod = _script()
    assert mod.method_fields("genpi+kl=0.25") == {"method": "genpi", "kl": 0.25}
    assert mod.method_fields("genpi+kl=0") == {"method": "genpi", "kl": 0.0}
    assert mod.method_fields("genpi+kl") == mod.METHODS["genpi+kl"]
    for bad in ("genpi+kl=", "genpi+kl=x", "genpi+kl=-0.5", "genpi+kl=inf", "genpi+kl=nan", "sft+kl=0.5"):
        assert mod.method_fields(bad) is None, bad
    # a cited weight on top of any method
    assert mod.method_fields("genpi+kl=0.3+cited=4") == {"method": "genpi", "kl": 0.3, "cited_weight": 4.0}
    assert mod.method_fields("genpi+kl+cited=2.5") == {"method": "genpi", "kl": 1.0, "cited_weight": 2.5}
    for bad in ("genpi+kl+cited=0", "genpi+kl+cited=-1", "genpi+kl+cited=x", "genpi+kl+cited=nan",
                "nope+cited=2", "genpi+kl=-1+cited=2"):
        assert mod.method_fields(bad) is None, bad


def test_synthesis_options_are_passed_on(tmp_path, monkeypatch):
    from genpi.errors import GenpiError

    mod = _script()
    seen = []

    def run_one(*args):
        seen.append(args[-1])
        raise GenpiError("stop here")

    monkeypatch.setattr(mod, "run_one", run_one)
    with pytest.raises(SystemExit, match="stop here"):
        mod.main(["x.yaml", "--out", str(tmp_path), "--unit-questions", "--cite-units", "--coverage", "1",
                  "--num-inputs", "48"])
    assert seen == [{"cite_units": True, "unit_questions": True, "coverage": 1.0, "num_inputs": 48}]
