"""`genpi eval` end to end on the tiny model, with adapters built by plain PEFT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import one_line_error
from templates import TURN

from genpi.evaluate import EvalConfig, evaluate
from genpi.evaluate.kl import prefix_ids, reply_ids
from genpi.evaluate.runner import Variant, plan_variants, reply_kl, variant_key
from genpi.scenario import load_scenario

SCENARIO = """\
name: tiny-eval
prompt:
  - {role: system, content: "Answer every task with a Plan line and then a command."}
  - {role: user, content: "Task: count files in /etc"}
  - {role: assistant, content: "Plan: count them.\\n```sh\\nls /etc | wc -l\\n```"}
input_template: "Task: {input}"
seed_inputs: [count lines in /etc/hosts, list /tmp]
environment: {role: a shell, end_when: the agent writes Final, max_turns: 3}
eval:
  checks:
    - {name: protocol, regex: '\\APlan: '}
    - {name: anything, regex: '(?s).'}
  inputs:
    - how big is /var
    - {input: list /tmp, expect: {contains_any: ["ls", "/tmp"]}}
    - {input: who am i, expect: {regex: 'whoami'}}
"""


def make_adapter(ref, out: Path, method: str | None = None, seed: int = 1) -> Path:
    """A LoRA adapter with random (non-zero) weights, saved by plain PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model

    from genpi.models import load_model

    torch.manual_seed(seed)
    model = get_peft_model(load_model(ref), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                       init_lora_weights=False))
    model.save_pretrained(str(out), safe_serialization=True)
    if method:
        (out / "genpi.json").write_text(json.dumps({"method": method, "base_model": {"spec": "tiny"}}))
    return out


@pytest.fixture(scope="module")
def adapters(tiny_ref, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_ref, root / "a1", "genpi", 1), make_adapter(tiny_ref, root / "a2", None, 2)]


@pytest.fixture(scope="module")
def evaluated(tiny_ref, adapters, tmp_path_factory):
    scen = tmp_path_factory.mktemp("scen") / "s.yaml"
    scen.write_text(SCENARIO)
    out = tmp_path_factory.mktemp("report")
    report = evaluate(load_scenario(scen), tiny_ref, adapters, out, EvalConfig(max_new_tokens=6, batch_size=2))
    return scen, out, report


def test_report_json_schema(evaluated, adapters):
    _, out, report = evaluated
    saved = json.loads((out / "report.json").read_text())
    assert saved == report
    assert report["scenario"] == "tiny-eval" and report["n_inputs"] == 3 and report["model"]
    v = report["variants"]
    assert list(v) == ["with_prompt", "no_prompt", "genpi", "a2"]
    for name, var in v.items():
        assert set(var["checks"]) == {"protocol", "anything"}
        assert all(0.0 <= r <= 1.0 for r in var["checks"].values())
        assert 0.0 <= var["score"] <= 1.0
        assert var["expectations"] is None or 0.0 <= var["expectations"] <= 1.0
    assert "agreement" not in v["with_prompt"] and "retention" not in v["with_prompt"]
    for name in ("no_prompt", "genpi", "a2"):
        assert set(v[name]["agreement"]) == {"exact", "chrf"}
        # without the prompt the tiny model's next-token distributions move: the KL is clearly above 0
        assert 1e-3 < v[name]["kl_to_teacher"] < 20, (name, v[name]["kl_to_teacher"])
        assert "retention" in v[name] and "normalized" in v[name]
    # the random adapters change the model, so their KL to the teacher differs from the floor's
    assert v["genpi"]["kl_to_teacher"] != pytest.approx(v["no_prompt"]["kl_to_teacher"])
    assert report["adapters"] == {"genpi": str(adapters[0]), "a2": str(adapters[1])}
    assert report["settings"]["max_new_tokens"] == 6 and report["settings"]["decoding"] == "greedy"


def _independent_kl(model, tok, teacher_msgs, student_msgs, reply, max_new_tokens):
    """Mean over the reply's tokens of KL(teacher || student), over the full vocabulary, in plain torch."""
    import torch

    def context(msgs):
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return tok(text, add_special_tokens=False)["input_ids"]

    target = tok(reply, add_special_tokens=False)["input_ids"]
    if len(target) < max_new_tokens:  # the reply stopped by itself: its end-of-turn token is scored too
        target.append(tok.convert_tokens_to_ids("<|im_end|>"))

    def log_probs(ctx):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ctx + target])).logits[0]
        return torch.log_softmax(logits[len(ctx) - 1:len(ctx) - 1 + len(target)].double(), dim=-1)

    p, q = log_probs(context(teacher_msgs)), log_probs(context(student_msgs))
    return float((p.exp() * (p - q)).sum(-1).mean())


def test_kl_to_teacher_matches_a_direct_computation(evaluated, tiny_tok, tiny_model):
    scen, out, _ = evaluated
    rows = {(r["variant"], r["input"]): r for r in map(json.loads, (out / "outputs.jsonl").read_text().splitlines())}
    x = "how big is /var"
    teacher = [{"role": "system", "content": "Answer every task with a Plan line and then a command."},
               {"role": "user", "content": "Task: count files in /etc"},
               {"role": "assistant", "content": "Plan: count them.\n```sh\nls /etc | wc -l\n```"},
               {"role": "user", "content": f"Task: {x}"}]
    student = [{"role": "user", "content": x}]  # student_template defaults to "{input}"
    # the report's value for this input: no_prompt scored on the prompted model's stored reply
    # (genpi sums in float32, this in float64: they agree to ~2e-5 of the value; the direction of the KL
    # is pinned by hand in test_eval_scoring, on distributions far apart)
    want = _independent_kl(tiny_model, tiny_tok, teacher, student, rows[("with_prompt", x)]["output"], 6)
    assert want > 1e-3
    assert rows[("no_prompt", x)]["kl_to_teacher"] == pytest.approx(want, rel=1e-4)
    # a longer reply: scored whole with its end token (it stopped before the limit), or cut at the limit
    sc = load_scenario(scen)
    reply = "Plan: du -sh /var\n```sh\ndu -sh /var\n```"
    for limit in (64, 3):
        want = _independent_kl(tiny_model, tiny_tok, teacher, student, reply, limit)
        assert reply_kl(tiny_model, tiny_tok, sc, Variant("no_prompt"), x, reply, limit) == pytest.approx(want, rel=1e-4)
        # the prompted model against itself: the same context on both sides, nothing differs
        assert reply_kl(tiny_model, tiny_tok, sc, Variant("with_prompt", with_prompt=True), x, reply, limit) == 0.0


def test_reply_tokens_follow_the_prompted_context_on_every_template(chat_tok):
    tok, name = chat_tok
    msgs = [{"role": "system", "content": "Answer with a Plan line."}, {"role": "user", "content": "Task: list /tmp"}]
    reply = "Plan: list it.\n```sh\nls /tmp\n```"
    done = reply_ids(tok, msgs, reply, finished=True)
    assert tok.decode(done) == TURN[name].format(reply)  # the reply as rendered, with its end token
    assert reply_ids(tok, msgs, reply, finished=False) == done[:-1]  # cut at the limit: no end token
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert prefix_ids(tok, msgs) == tok(text, add_special_tokens=False)["input_ids"]  # what generation is given


# Canned first replies per variant for the three eval inputs of SCENARIO, and what they score by hand.
# Checks: protocol (starts with "Plan: "), anything (not empty); expectations: input 2 mentions ls or /tmp,
# input 3 matches 'whoami'. score = mean(protocol, anything, expectations).
CANNED = {
    "with_prompt": ["Plan: check /var", "Plan: ls /tmp", "Plan: id"],    # 3/3, 3/3, 1/2 -> 5/6
    "no_prompt": ["", "use ls", "hello"],                                 # 0/3, 2/3, 1/2 -> 7/18
    "genpi": ["Plan: du -sh /var", "Plan: list it", "whoami"],            # 2/3, 3/3, 1/2 -> 13/18
    "a2": ["Plan: du", "Plan: cd /tmp", "Plan: whoami"],                  # 3/3, 3/3, 2/2 -> 1
}
CANNED_KL = [0.1, 0.2, 0.6]


def _canned_run_variant(canned):
    def run_variant(model, tok, sc, v, inputs, *rest):
        return [{"variant": v.name, "key": "k", "input": x, "output": o, "conversation": [
            {"role": "assistant", "content": o}], "kl_to_teacher": None if v.with_prompt else kl}
            for x, o, kl in zip(inputs, canned[v.name], CANNED_KL)]
    return run_variant


def test_scores_retention_and_normalized_from_known_replies(tiny_ref, adapters, tmp_path, monkeypatch):
    import genpi.evaluate.evaluation as evaluation

    monkeypatch.setattr(evaluation, "run_variant", _canned_run_variant(CANNED))
    scen = tmp_path / "s.yaml"
    scen.write_text(SCENARIO)
    v = evaluate(load_scenario(scen), tiny_ref, adapters, tmp_path / "r", EvalConfig(max_new_tokens=6))["variants"]
    approx = pytest.approx
    assert v["with_prompt"]["score"] == approx(5 / 6) and v["with_prompt"]["checks"] == {"protocol": 1.0,
                                                                                         "anything": 1.0}
    assert v["with_prompt"]["expectations"] == 0.5
    assert v["no_prompt"]["score"] == approx(7 / 18) and v["genpi"]["score"] == approx(13 / 18)
    assert v["a2"]["score"] == 1.0 and v["a2"]["expectations"] == 1.0
    # retention = score / ceiling; normalized = (score - floor) / (ceiling - floor)
    assert v["genpi"]["retention"] == approx(13 / 15) and v["genpi"]["normalized"] == approx(0.75)
    assert v["no_prompt"]["retention"] == approx(7 / 15) and v["no_prompt"]["normalized"] == 0.0
    assert v["a2"]["retention"] == approx(1.2) and v["a2"]["normalized"] == approx(1.375)  # better than the prompt
    assert v["genpi"]["check_retention"] == {"protocol": approx(2 / 3), "anything": 1.0}
    assert v["no_prompt"]["check_retention"] == {"protocol": 0.0, "anything": approx(2 / 3)}
    assert v["genpi"]["kl_to_teacher"] == approx(0.3)  # the mean over the inputs
    # the teacher met input 2's expectation only: genpi ("list it") lost it, a2 and no_prompt kept it;
    # genpi's own hit on input 3 (the teacher's "id" missed it) is not a fact kept
    assert {n: v[n].get("expectations_kept") for n in v} == {"with_prompt": None, "no_prompt": 1.0, "genpi": 0.0,
                                                             "a2": 1.0}
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| expectations | facts kept |" in md and "| **genpi** | 0.72 | 0.67 | 1.00 | 0.50 | 0.00 |" in md
    assert "kl_to_teacher" not in v["with_prompt"] and "retention" not in v["with_prompt"]


def test_a_default_adapter_that_loses_the_facts_is_pointed_at_the_facts_preset(tiny_ref, adapters, tmp_path,
                                                                                 monkeypatch, capsys):
    import genpi.evaluate.evaluation as evaluation

    kl1 = tmp_path / "kl1"  # the same weights, trained (says its genpi.json) with the default's KL term
    shutil.copytree(adapters[0], kl1)
    meta = json.loads((kl1 / "genpi.json").read_text())
    (kl1 / "genpi.json").write_text(json.dumps({**meta, "hyperparameters": {"kl": 1.0}}))
    # the teacher meets 1 of the 2 expectations; both adapters meet none
    canned = {**CANNED, "genpi": ["Plan: du", "Plan: list it", "Plan: id"],
              "genpi+kl": ["Plan: du", "Plan: cd", "Plan: id"]}
    monkeypatch.setattr(evaluation, "run_variant", _canned_run_variant(canned))
    scen = tmp_path / "s.yaml"
    scen.write_text(SCENARIO)
    report = evaluate(load_scenario(scen), tiny_ref, [adapters[0], kl1], tmp_path / "r", EvalConfig(max_new_tokens=6))
    hints = [n for n in report["notes"] if "--preset facts" in n]
    # only the KL-trained adapter: the paper's loss (genpi, kl 0) is what the facts preset trains already
    assert len(hints) == 1 and hints[0].startswith("genpi+kl states the expected fact in 0 of 2 held-out answers, "
                                                   "the prompted model in 1:")
    assert "genpi eval: note: genpi+kl states" in capsys.readouterr().err
    assert hints[0] in (tmp_path / "r" / "report.md").read_text()
    # at the prompted model's facts, no hint
    monkeypatch.setattr(evaluation, "run_variant", _canned_run_variant({**canned, "genpi+kl": CANNED["a2"]}))
    report = evaluate(load_scenario(scen), tiny_ref, [adapters[0], kl1], tmp_path / "r2", EvalConfig(max_new_tokens=6))
    assert not [n for n in report["notes"] if "--preset facts" in n]


def test_a_ceiling_of_zero_leaves_retention_null(tiny_ref, tmp_path, monkeypatch):
    import genpi.evaluate.evaluation as evaluation

    canned = {"with_prompt": ["", "no", "no"], "no_prompt": ["Plan: x", "", ""]}  # protocol and expectations
    monkeypatch.setattr(evaluation, "run_variant", _canned_run_variant(canned))
    scen = tmp_path / "s.yaml"
    scen.write_text(SCENARIO.replace("    - {name: anything, regex: '(?s).'}\n", ""))
    report = evaluate(load_scenario(scen), tiny_ref, [], tmp_path / "r", EvalConfig(max_new_tokens=6))
    v = report["variants"]
    assert v["with_prompt"]["score"] == 0.0 and v["no_prompt"]["score"] == pytest.approx(1 / 6)
    assert v["no_prompt"]["retention"] is None  # score / 0 means nothing
    assert v["no_prompt"]["normalized"] == 0.0  # (1/6 - 1/6) / (0 - 1/6): the floor is the floor
    assert v["no_prompt"]["check_retention"] == {"protocol": None}
    assert any("with_prompt scored 0" in n for n in report["notes"])


def test_markdown_png_and_outputs(evaluated):
    _, out, report = evaluated
    md = (out / "report.md").read_text()
    assert "| **with_prompt** |" in md and "| **genpi** |" in md and "## Examples" in md
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(x) for x in (out / "outputs.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 3
    assert {r["variant"] for r in rows} == set(report["variants"])
    assert all(r["conversation"][0]["content"] == r["output"] for r in rows)


def test_rerun_reuses_stored_outputs(evaluated, tiny_ref, adapters, monkeypatch):
    scen, out, report = evaluated
    from genpi.generate import LocalBackend

    def boom(*a, **k):
        raise AssertionError("a stored reply was generated again")

    monkeypatch.setattr(LocalBackend, "chat", boom)
    again = evaluate(load_scenario(scen), tiny_ref, adapters, out, EvalConfig(max_new_tokens=6, batch_size=2))
    assert again["variants"] == report["variants"]


def test_replies_stored_under_the_older_model_fingerprint_are_reused(evaluated, tiny_ref, adapters, monkeypatch,
                                                                    tmp_path):
    scen, out, report = evaluated
    from genpi.generate import LocalBackend

    old = tmp_path / "old"
    shutil.copytree(out, old)
    sc, cfg = load_scenario(scen), EvalConfig(max_new_tokens=6, batch_size=2)
    legacy = {variant_key(v, sc, tiny_ref.fingerprint(), cfg): variant_key(v, sc, tiny_ref.legacy_fingerprint(), cfg)
              for v in plan_variants(adapters)}
    rows = [json.loads(x) for x in (old / "outputs.jsonl").read_text().splitlines()]
    assert {r["key"] for r in rows} == set(legacy) and not set(legacy) & set(legacy.values())
    # the report folder as an older genpi wrote it: the same replies under keys made with its fingerprint
    (old / "outputs.jsonl").write_text("".join(json.dumps({**r, "key": legacy[r["key"]]}) + "\n" for r in rows))

    def boom(*a, **k):
        raise AssertionError("a stored reply was generated again")

    monkeypatch.setattr(LocalBackend, "chat", boom)
    again = evaluate(sc, tiny_ref, adapters, old, cfg)
    assert again["variants"] == report["variants"]
    assert {json.loads(x)["key"] for x in (old / "outputs.jsonl").read_text().splitlines()} == set(legacy)


def test_seed_overlap_warns_but_runs(evaluated, capsys):
    _, _, report = evaluated
    assert any("'list /tmp'" in n and "seed input" in n for n in report["notes"])


def test_variant_names_are_unique(tmp_path, adapters):
    (tmp_path / "genpi").mkdir()
    names = [v.name for v in plan_variants([adapters[0], adapters[0], tmp_path / "genpi", adapters[0]])]
    folder = Path(adapters[0]).resolve().name  # a taken method name gives way to the folder's name, then a number
    assert names == ["with_prompt", "no_prompt", "genpi", folder, "genpi-2", "genpi-3"]


def test_multi_turn_reports_per_turn_rates(tiny_ref, tmp_path):
    scen = tmp_path / "s.yaml"
    scen.write_text(SCENARIO)
    report = evaluate(load_scenario(scen), tiny_ref, [], tmp_path / "r", EvalConfig(max_new_tokens=4, turns=2, batch_size=3))
    for v in report["variants"].values():
        turns = v["multi_turn"]
        assert turns[0]["turn"] == 1 and turns[0]["n"] == 3
        assert all(set(t["checks"]) == {"protocol", "anything"} for t in turns)
    rows = [json.loads(x) for x in (tmp_path / "r" / "outputs.jsonl").read_text().splitlines()]
    assert all(len(r["conversation"]) in (1, 3) for r in rows)
    assert "Pass rates per agent turn" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.usefixtures("materialized_models")
def test_cli_eval_missing_adapter_is_one_line(cli, write, tmp_path):
    scen = write("s.yaml", SCENARIO)
    res = cli("eval", str(scen), "--model", "tiny", "--adapter", str(tmp_path / "nope"), "--out", str(tmp_path / "R"))
    one_line_error(res, f"adapter folder '{tmp_path / 'nope'}' not found")


def test_cli_eval_writes_the_reports(cli, write, tmp_path, adapters):
    scen = write("s.yaml", SCENARIO)
    res = cli("eval", str(scen), "--model", "tiny", "--adapter", str(adapters[0]), "--out", str(tmp_path / "R"),
              "--preset", "smoke", "--max-new-tokens", "4")
    assert res.returncode == 0, res.stderr
    assert "with_prompt" in res.stdout and "genpi" in res.stdout
    report = json.loads((tmp_path / "R" / "report.json").read_text())
    assert set(report["variants"]) == {"no_prompt", "with_prompt", "genpi"}
    assert report["settings"]["max_new_tokens"] == 4
    assert (tmp_path / "R" / "report.md").is_file() and (tmp_path / "R" / "report.png").is_file()
    bad = cli("eval", str(scen), "--model", "tiny", "--out", str(tmp_path / "R2"), "--turns", "0")
    one_line_error(bad, "--turns must be at least 1")


def test_variants_are_named_by_method_and_distillation_terms():
    from genpi.artifacts import AdapterMeta
    from genpi.evaluate.runner import method_label

    def label(method, **hp):
        return method_label(AdapterMeta.model_validate({"method": method, "hyperparameters": hp}))

    assert label("genpi", kl=0.0, on_policy=0.0) == "genpi"
    assert label("genpi", kl=1.0, on_policy=0.0) == "genpi+kl"
    assert label("genpi", kl=1.0, on_policy=0.5) == "genpi+kl+on-policy"
    assert label("genpi", kl=0.3) == "genpi+kl=0.3" and label("genpi", kl=0.3, pg_units=True) == "genpi+kl=0.3+units"
    assert label("sft-kl", kl=0.0, on_policy=1.0) == "sft-kl+on-policy"
    assert label("sft") == "sft" and label(None) is None
    assert label("genpi", kl=1.0, grounded_repeats=3) == "genpi+kl+grounded"
    assert label("genpi", kl=1.0, grounded_repeats=1, pg_units=True) == "genpi+kl+units"
    assert label("genpi", kl=0.3, cited_weight=4.0) == "genpi+kl=0.3+cited=4"
    assert label("genpi", kl=1.0, cited_weight=1.0) == "genpi+kl"


def test_the_summary_line_gives_facts_where_inputs_expect_them():
    from genpi.commands.eval import summary_line

    v = {"with_prompt": {"score": 0.64, "expectations": 0.28},
         "no_prompt": {"score": 0.03, "retention": 0.05, "expectations": 0.06, "expectations_kept": 0.0},
         "genpi+kl": {"score": 0.55, "retention": 0.86, "expectations": 0.17, "expectations_kept": 0.4}}
    assert summary_line({"scenario": "s", "variants": v}).splitlines() == [
        "s: score with_prompt 0.64, no_prompt 0.03 (retention 0.05), genpi+kl 0.55 (retention 0.86)",
        "facts: with_prompt 0.28, no_prompt 0.06 (kept 0.00), genpi+kl 0.17 (kept 0.40)"]
    for x in v.values():
        x["expectations"] = None  # no input expects a fact: no facts line
    assert summary_line({"scenario": "s", "variants": v}).count("\n") == 0


def test_too_few_facts_compares_counts():
    from genpi.evaluate.evaluation import too_few_facts

    assert not too_few_facts(4 / 18, 5 / 18, 18)  # 4 of 18 is 0.8x of 5: the target, met
    assert too_few_facts(3 / 18, 5 / 18, 18)
    assert too_few_facts(3 / 20, 4 / 20, 20) and not too_few_facts(4 / 20, 4 / 20, 20)
