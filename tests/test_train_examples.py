"""Examples and masks: the supervised tokens of SFT and PG examples are exactly the intended spans."""

from __future__ import annotations

import copy
import json

import pytest
from templates import TURN

from genpi.errors import GenpiError
from genpi.scenario import Scenario, student_messages
from genpi.train.examples import (IGNORE, REASON_TAG, pg_example, pg_messages, prompt_sections, section_budget,
                                  sft_example)
from genpi.train.masking import assistant_spans, end_of_turn_id
from genpi.artifacts import DataDir, Record

PROMPT = [
    {"role": "system", "content": "You are a shell agent. Reply with a Think: line, then Act: bash and one fenced "
                                  "bash block, or Act: answer(X) when done.\n\nNever write Python."},
    {"role": "user", "content": "How many files are in /etc?"},
    {"role": "assistant", "content": "Think: count them.\n\nAct: bash\n\n```bash\nls /etc | wc -l\n```"},
]


def scenario(**kw) -> Scenario:
    return Scenario(name="t", prompt=PROMPT, student_template="New problem:\n{input}", **kw)


def record(i=0, turns=3, reason="It asks for Think/Act lines.") -> Record:
    conv = []
    for t in range(turns):
        conv.append({"role": "assistant" if t % 2 == 0 else "user",
                     "content": f"Think: step {t} of {i}.\n\nAct: bash" if t % 2 == 0 else f"output {t} here"})
    return Record(id=f"r{i}", input=f"Count the users in problem {i}.", teacher_output=conv[0]["content"],
                  student_output="Here is some Python.", reason=reason, conversation=tuple(conv))


def spans_of(labels) -> list[list[int]]:
    out, cur = [], []
    for x in labels:
        if x != IGNORE:
            cur.append(x)
        elif cur:
            out.append(cur)
            cur = []
    return out + ([cur] if cur else [])


# Tests taking `chat_tok` run once per chat template of tests/templates.py (ChatML, Llama 3, Mistral style).


def test_end_of_turn_comes_from_the_template(chat_tok):
    tok, _ = chat_tok
    eot = end_of_turn_id(tok)
    assert tok.convert_ids_to_tokens(eot) == "<|im_end|>"
    assert eot == tok.pad_token_id  # SmolLM2: pad == eos == end of turn, so masks cannot use ids != pad


def test_sft_supervises_exactly_the_agent_turns(chat_tok):
    tok, name = chat_tok
    sc, rec = scenario(), record(turns=3)
    ex = sft_example(tok, sc, rec, 512, 512).example
    decoded = [tok.decode(s) for s in spans_of(ex.labels)]
    agent = [t["content"] for t in rec.turns() if t["role"] == "assistant"]
    assert decoded == [TURN[name].format(a) for a in agent]  # each agent turn as rendered, with its end token
    full = tok.decode(ex.input_ids)
    assert "New problem:\nCount the users" in full and "output 1 here" in full  # context, not supervised
    assert "shell agent" not in full  # no prompt in the SFT input
    assert ex.input_ids[-1] == end_of_turn_id(tok)  # ends on the last agent turn's end token
    # the first agent turn follows exactly the tokens the model is prompted with at inference time
    prompted = tok.apply_chat_template(student_messages(sc, rec.input), tokenize=True, add_generation_prompt=True)
    prompted = list(prompted["input_ids"] if hasattr(prompted, "keys") else prompted)
    first = next(i for i, x in enumerate(ex.labels) if x != IGNORE)
    assert list(ex.input_ids[:first]) == prompted


def test_prompt_mix_half_keeps_the_prompt_and_same_targets(chat_tok):
    tok, _ = chat_tok
    sc, rec = scenario(), record(turns=3)
    plain = sft_example(tok, sc, rec, 512, 512).example
    mixed = sft_example(tok, sc, rec, 512, 512, with_prompt=True).example
    assert "shell agent" in tok.decode(mixed.input_ids)
    assert spans_of(mixed.labels) == spans_of(plain.labels)
    # the prompt's own demonstration turn is context, never a target
    assert len(spans_of(mixed.labels)) == 2


def test_teacher_twin_has_prompt_and_identical_targets(chat_tok):
    tok, _ = chat_tok
    b = sft_example(tok, scenario(), record(turns=3), 512, 512, want_teacher=True)
    assert "shell agent" in tok.decode(b.teacher.input_ids)
    assert [x for x in b.teacher.labels if x != IGNORE] == [x for x in b.example.labels if x != IGNORE]


def test_sft_keeps_whole_turns_within_max_target(chat_tok):
    tok, _ = chat_tok
    sc, rec = scenario(), record(turns=3)
    r = assistant_spans(tok, student_messages(sc, rec.input, rec.turns()), first=1)
    first_turn_to_end = r.spans[0][1] - r.source_len
    b = sft_example(tok, sc, rec, 512, first_turn_to_end + 3)  # room for turn 1 only
    assert b.truncated and len(spans_of(b.example.labels)) == 1
    assert b.example.input_ids[-1] == end_of_turn_id(tok)
    cut = sft_example(tok, sc, rec, 512, 4)  # first turn longer than the target budget: cut
    assert cut.example.n_supervised == 4 and cut.truncated
    assert sft_example(tok, sc, rec, 5, 512).skipped == "source too long"


def test_pg_target_is_prompt_then_reason(chat_tok):
    tok, name = chat_tok
    sc, rec = scenario(), record()
    ex = pg_example(tok, rec, sc.prompt_text, 1, 1, 512, 512)
    (target,) = spans_of(ex.labels)
    want = TURN[name].format(f"{sc.prompt_text}\n\n{REASON_TAG}\n{rec.reason}")
    assert tok.decode(target) == want
    context = tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab == IGNORE])
    for part in (rec.input, rec.student_output, rec.teacher_output):
        assert part in context
    assert "shell agent" not in context  # the prompt is only ever the target


def test_pg_shortens_outputs_to_fit_the_source_budget(chat_tok):
    tok, name = chat_tok
    rec = record()
    rec = Record(**{**rec.to_json(), "student_output": "word " * 300, "teacher_output": "other " * 300,
                    "conversation": [{"role": "assistant", "content": "other " * 300}]})
    ex = pg_example(tok, rec, "PROMPT", 1, 1, 200, 512)
    first = next(i for i, x in enumerate(ex.labels) if x != IGNORE)
    assert first <= 200
    assert tok.decode([x for x in ex.labels if x != IGNORE]) == TURN[name].format(f"PROMPT\n\n{REASON_TAG}\n{rec.reason}")
    assert pg_example(tok, rec, "PROMPT", 1, 1, 30, 512) is None  # not even the instruction fits


def test_long_prompt_is_split_into_sections_that_cover_it(tiny_tok):
    text = "\n\n".join(f"Rule {i}: " + "always check the file system before answering. " * 6 for i in range(12))
    budget = 120
    parts = prompt_sections(tiny_tok, text, budget)
    assert "".join(parts) == text and len(parts) >= 5
    sizes = [len(tiny_tok(p, add_special_tokens=False)["input_ids"]) for p in parts]
    assert max(sizes) <= budget + 4
    assert max(sizes) - min(sizes) < budget  # balanced, not one big and one tiny
    msgs = pg_messages(record(), parts[1], 2, len(parts))
    assert f"part 2 of {len(parts)}" in msgs[0]["content"]
    # one paragraph longer than the budget is cut at line, then token, boundaries
    one = "x" + " y" * 400
    chunks = prompt_sections(tiny_tok, one, 100)
    assert "".join(chunks) == one and len(chunks) >= 4


def test_section_budget_leaves_room_for_the_reason(tiny_tok):
    recs = [record(i, reason="short reason " * 10) for i in range(3)]
    b = section_budget(tiny_tok, recs, 512)
    assert 512 // 2 <= b < 512 - 20


def test_template_that_is_not_prefix_stable_is_refused(tiny_tok):
    tok = copy.deepcopy(tiny_tok)
    tok.chat_template = ("{{ messages|length }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
                         "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(GenpiError, match="prefix-stable"):
        sft_example(tok, scenario(), record(turns=3), 512, 512)


def test_template_without_end_token_is_refused(tiny_tok):
    tok = copy.deepcopy(tiny_tok)
    tok.chat_template = ("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    with pytest.raises(GenpiError, match="without a special token"):
        end_of_turn_id(tok)


def test_records_are_validated(tmp_path):
    good = {"id": "a", "input": "x", "teacher_output": "y", "student_output": "z", "reason": "r",
            "conversation": [{"role": "assistant", "content": "y"}, {"role": "user", "content": "env"}]}
    (tmp_path / "records.jsonl").write_text(json.dumps(good) + "\n" + '{"id": "b", "inp')  # torn last line
    (rec,) = DataDir(tmp_path).read_records()
    assert rec.turns() == [{"role": "assistant", "content": "y"}]  # trailing environment turn dropped
    bad = dict(good, conversation=[{"role": "user", "content": "env first"}])
    (tmp_path / "records.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(GenpiError, match="turn 0"):
        DataDir(tmp_path).read_records()
    (tmp_path / "records.jsonl").write_text("not json\n" + json.dumps(good) + "\n")
    with pytest.raises(GenpiError, match="line 1 is not valid"):
        DataDir(tmp_path).read_records()
    (tmp_path / "records.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(GenpiError, match="repeated"):
        DataDir(tmp_path).read_records()
    (tmp_path / "records.jsonl").write_text(json.dumps({"id": "a", "input": "x"}) + "\n")
    with pytest.raises(GenpiError, match="teacher_output"):
        DataDir(tmp_path).read_records()


def test_records_whose_teacher_uses_the_prompt_are_repeated(tiny_tok):
    from genpi.train import TrainConfig
    from genpi.train.examples import build_examples, grounded_records

    facts = [{"role": "system", "content": "Prices:\n- Tandem: 28 euros a day.\n- Deposit: 50 euros per bike.\n"
                                           "- Phone: 0451 220 330."}]
    sc = Scenario(name="t", prompt=facts, student_template="{input}")
    uses = Record(id="a", input="What about the tandem?", teacher_output="A tandem is 28 euros a day.",
                  student_output="No idea.", reason="", conversation=({"role": "assistant", "content": "A tandem is 28 euros a day."},))
    plain = Record(id="b", input="Hello?", teacher_output="Hello there!", student_output="Hi.", reason="",
                   conversation=({"role": "assistant", "content": "Hello there!"},))
    assert grounded_records(sc, [uses, plain]) == {"a"}
    cfg = dict(method="genpi", kl=1.0, max_source_tokens=256, max_target_tokens=256)
    once = build_examples(tiny_tok, sc, [uses, plain], TrainConfig.from_preset("smoke", **cfg), progress=False)
    thrice = build_examples(tiny_tok, sc, [uses, plain], TrainConfig.from_preset("smoke", grounded_repeats=3, **cfg),
                            progress=False)
    assert len(once.sft) == 2 and len(thrice.sft) == 4 and thrice.stats["sft_grounded_records"] == 1
    assert thrice.sft[:3] == [once.sft[0]] * 3 and thrice.sft[3] == once.sft[1]
    assert len(thrice.teacher) == 4 and len(thrice.pg_pool) == 2  # teacher twins follow; PG stays per record
    with pytest.raises(GenpiError):
        TrainConfig.from_preset("smoke", grounded_repeats=0)


def test_a_request_that_names_a_unit_gets_a_pg_example_writing_it_out(tiny_tok):
    from genpi.train import TrainConfig
    from genpi.train.examples import ASK_NEEDED, build_examples, needed_units

    facts = [{"role": "system", "content": "Prices:\n- Tandem: 28 euros a day.\n- Deposit: 50 euros per bike.\n"
                                           "- Phone: 0451 220 330."},
             {"role": "user", "content": "Is a tandem dear?"}, {"role": "assistant", "content": "28 euros a day."}]
    sc = Scenario(name="t", prompt=facts, student_template="{input}")
    # the teacher missed the fact: the PG example still binds the request to the unit it names
    asks = Record(id="a", input="How much are tandems?", teacher_output="They are cheap.", student_output="No idea.",
                  reason="It names a price.", conversation=({"role": "assistant", "content": "They are cheap."},))
    plain = Record(id="b", input="Hello?", teacher_output="Hello there!", student_output="Hi.", reason="",
                   conversation=({"role": "assistant", "content": "Hello there!"},))
    assert needed_units(sc, [asks, plain]) == {"a": "Tandem: 28 euros a day."}  # a plural names its singular
    cfg = dict(method="genpi", kl=1.0, max_source_tokens=256, max_target_tokens=256)
    off = build_examples(tiny_tok, sc, [asks, plain], TrainConfig.from_preset("smoke", **cfg), progress=False)
    on = build_examples(tiny_tok, sc, [asks, plain], TrainConfig.from_preset("smoke", pg_units=True, **cfg),
                        progress=False)
    assert off.pg_needed == [] and len(on.pg_needed) == 1 and len(on.pg) == len(off.pg) + 1
    assert on.stats["pg_needed_examples"] == 1 and on.pg_needed[0] not in sum(on.pg_pool, [])  # not a section's
    ex = on.pg[on.pg_needed[0]]
    source = tiny_tok.decode([t for t, y in zip(ex.input_ids, ex.labels) if y == -100])
    target = tiny_tok.decode([t for y in ex.labels if y != -100 for t in [y]])
    assert ASK_NEEDED in source and "How much are tandems?" in source and "They are cheap." in source
    assert target.startswith("Tandem: 28 euros a day.") and "It names a price" not in target  # no reason
    for bad in (dict(method="sft"), dict(method="genpi", lam=1.0)):
        with pytest.raises(GenpiError, match="--pg-units"):
            TrainConfig.from_preset("smoke", pg_units=True, **bad)


def test_cited_text_is_kept_out_of_the_kl_term_token_for_token(chat_tok):
    """A record's `cited` passage (put in by synthesis, not said by the teacher): its tokens, and only they,
    are listed in kl_skip, in the order of the supervised tokens; the teacher twin's targets are unchanged."""
    tok, _ = chat_tok
    cited = "Passwords must be at least 14 characters long."
    reply = f"Think: the policy says so. {cited} Act: answer(14)"
    rec = Record(id="c", input="How long must a password be?", teacher_output=reply, cited=(cited,))
    b = sft_example(tok, scenario(), rec, 512, 512, want_teacher=True)
    sup = [x for x in b.example.labels if x != IGNORE]
    skipped = [sup[j] for j in b.example.kl_skip]
    assert b.example.kl_skip == tuple(range(b.example.kl_skip[0], b.example.kl_skip[-1] + 1))  # one run
    assert tok.decode(skipped).strip() == cited
    kept_before = tok.decode(sup[:b.example.kl_skip[0]])
    assert kept_before.strip() == "Think: the policy says so."
    assert [x for x in b.teacher.labels if x != IGNORE] == sup and b.teacher.kl_skip == ()
    plain = sft_example(tok, scenario(), Record(id="p", input=rec.input, teacher_output=reply), 512, 512)
    assert plain.example.kl_skip == ()


def test_a_cited_text_must_be_part_of_the_reply(tmp_path):
    good = {"id": "a", "input": "x", "teacher_output": "Hi. Rule one. Bye.", "cited": ["Rule one."]}
    assert Record.model_validate(good).to_json()["cited"] == ["Rule one."]
    with pytest.raises(ValueError, match="cited"):
        Record.model_validate(dict(good, cited=["Rule two."]))
