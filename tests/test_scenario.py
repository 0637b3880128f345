"""Scenario loading, strict validation and the teacher/student message builders."""

from __future__ import annotations

import pytest

from genpi.errors import GenpiError
from genpi.scenario import check_fits, load_scenario, student_messages, teacher_messages

TRANSCRIPT = """<USER>:
You are a shell agent. Answer as `Act: ...`.

Now, my problem is:

list files

<AGENT>:
Act: ls

<USER>:
Now, a new problem:
"""


def test_prompt_text_is_one_system_message(write):
    sc = load_scenario(write("s.yaml", "prompt: Always answer in French.\n"))
    assert [m.role for m in sc.prompt] == ["system"]
    assert sc.name == "s"
    msgs = teacher_messages(sc, "hello")
    assert msgs == [{"role": "system", "content": "Always answer in French."}, {"role": "user", "content": "hello"}]


def test_plain_text_prompt_file_is_a_scenario(write):
    sc = load_scenario(write("policy.txt", "Be brief.\nNever use emoji.\n"))
    assert sc.name == "policy" and sc.prompt[0].content == "Be brief.\nNever use emoji."
    assert sc.seed_inputs == [] and sc.eval.inputs == []


def test_transcript_file_ending_in_user_turn_gets_the_input_appended(write):
    write("p.txt", TRANSCRIPT)
    sc = load_scenario(write("s.yaml", "prompt: {file: p.txt}\ninput_template: 'Q: {input}'\n"))
    assert [m.role for m in sc.prompt] == ["user", "assistant", "user"]
    msgs = teacher_messages(sc, "count files")
    assert len(msgs) == 3 and msgs[-1]["role"] == "user"
    assert msgs[-1]["content"] == "Now, a new problem:\n\nQ: count files"
    assert msgs[0]["content"].startswith("You are a shell agent.")


def test_prompt_ending_in_assistant_turn_gets_a_new_user_turn(write):
    sc = load_scenario(write("s.yaml", """
prompt:
  - {role: system, content: You sell bikes.}
  - {role: user, content: Hi}
  - {role: assistant, content: "Hello! How can I help?"}
"""))
    msgs = teacher_messages(sc, "price?")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "price?"


def test_student_messages_use_the_student_template_and_no_prompt(write):
    sc = load_scenario(write("s.yaml", "prompt: SECRET RULES\nstudent_template: 'My problem is: {input}'\n"))
    msgs = student_messages(sc, "x")
    assert msgs == [{"role": "user", "content": "My problem is: x"}]
    assert "SECRET" not in str(msgs)


def test_turns_continue_both_sides_and_must_alternate(write):
    sc = load_scenario(write("s.yaml", "prompt: P\n"))
    turns = [{"role": "assistant", "content": "a1"}, {"role": "user", "content": "e1"}]
    assert teacher_messages(sc, "x", turns)[-2:] == turns
    assert student_messages(sc, "x", turns)[-2:] == turns
    with pytest.raises(ValueError, match="turn 0 should be 'assistant'"):
        teacher_messages(sc, "x", [{"role": "user", "content": "e1"}])


def test_seeds_and_eval_inputs_from_files(write):
    write("seeds.json", '["a", "b", " "]')
    write("held.txt", "q1\n\nq2\n")
    sc = load_scenario(write("s.yaml", """
prompt: P
seed_inputs: {file: seeds.json}
eval:
  inputs: {file: held.txt}
  checks: [{name: short, regex: '^.{1,20}$'}]
"""))
    assert sc.seed_inputs == ["a", "b"]
    assert [e.input for e in sc.eval.inputs] == ["q1", "q2"]


def test_eval_expectations_and_checks(write):
    sc = load_scenario(write("s.yaml", r"""
prompt: P
eval:
  inputs:
    - plain
    - {input: "hours?", expect: {contains_any: ["9am", "9 am"]}}
  checks:
    - {name: protocol, regex: '^Act: '}
    - {name: js, json: true}
"""))
    assert sc.eval.inputs[0].expect is None
    assert sc.eval.inputs[1].expect.contains_any == ["9am", "9 am"]
    protocol, js = sc.eval.checks
    assert protocol.passes("Act: ls") and not protocol.passes("I would run ls")
    assert js.passes('```json\n{"a": 1}\n```') and not js.passes("{a: 1}")


def test_scenario_hash_ignores_eval_but_not_prompt(write):
    a = load_scenario(write("a.yaml", "prompt: P\neval: {inputs: [x]}\n"))
    b = load_scenario(write("b.yaml", "prompt: P\neval: {inputs: [y]}\n"))
    c = load_scenario(write("c.yaml", "prompt: Q\n"))
    assert a.prompt_sha256 == b.prompt_sha256 != c.prompt_sha256


@pytest.mark.parametrize("name,content,needle", [
    ("empty.yaml", "prompt: ''\n", "prompt is empty"),
    ("blank.yaml", "prompt: '   '\n", "prompt is empty"),
    ("noprompt.yaml", "name: x\n", "has no 'prompt'"),
    ("bad.yaml", "prompt: [unclosed\n", "not valid YAML"),
    ("list.yaml", "- a\n- b\n", "must be a YAML mapping"),
    ("unknown.yaml", "prompt: P\npromt_extra: 1\n", "unknown key 'promt_extra'"),
    ("nested.yaml", "prompt: P\nenvironment: {roll: shell}\n", "unknown key 'environment.roll'"),
    ("regex.yaml", "prompt: P\neval: {checks: [{name: c, regex: '(unclosed'}]}\n", "bad regex"),
    ("exregex.yaml", "prompt: P\neval: {inputs: [{input: q, expect: {regex: '['}}]}\n", "bad regex"),
    ("tmpl.yaml", "prompt: P\ninput_template: 'no slot'\n", "must contain {input}"),
    ("check.yaml", "prompt: P\neval: {checks: [{name: c}]}\n", "exactly one of 'regex'"),
    ("dup.yaml", "prompt: P\neval: {checks: [{name: c, regex: a}, {name: c, regex: b}]}\n", "repeated: c"),
    ("expect.yaml", "prompt: P\neval: {inputs: [{input: q, expect: {}}]}\n", "at least one of"),
    ("role.yaml", "prompt: [{role: wizard, content: x}]\n", "prompt.0.role"),
    ("missingfile.yaml", "prompt: {file: nope.txt}\n", "'nope.txt' not found"),
    ("seedfile.yaml", "prompt: P\nseed_inputs: {file: nope.json}\n", "'nope.json' not found"),
])
def test_bad_scenarios_give_one_line_errors(write, name, content, needle):
    with pytest.raises(GenpiError) as e:
        load_scenario(write(name, content))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg


def test_missing_binary_and_non_utf8_files(write, tmp_path):
    with pytest.raises(GenpiError, match="not found"):
        load_scenario(tmp_path / "absent.yaml")
    with pytest.raises(GenpiError, match="binary"):
        load_scenario(write("p.bin", b"\x00\x01\x02PK\x00"))
    with pytest.raises(GenpiError, match="not UTF-8"):
        load_scenario(write("p.txt", "caf\xe9".encode("latin-1")))
    write("empty.txt", "\n\n")
    with pytest.raises(GenpiError, match="empty"):
        load_scenario(write("s.yaml", "prompt: {file: empty.txt}\n"))
    with pytest.raises(GenpiError, match="directory"):
        load_scenario(tmp_path)


class WordTokenizer:
    """A stand-in tokenizer: one token per word of every message, plus one per message for its header."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt  # genpi renders text, then tokenizes it
        return " ".join(f"<h> {m['content']}" for m in messages) + " <h>"  # + the reply's header

    def __call__(self, text, add_special_tokens):
        return {"input_ids": [0] * len(text.split())}


def test_prompt_that_does_not_fit_the_context(write):
    sc = load_scenario(write("s.yaml", "prompt: " + "word " * 400 + "\n"))
    n = check_fits(sc, WordTokenizer(), 4096)
    assert n == 400 + len(teacher_messages(sc, "")) + 1
    assert check_fits(sc, WordTokenizer(), n + 256) == n  # exactly the 256 reserved tokens left: fits
    with pytest.raises(GenpiError, match=f"is {n} tokens, which leaves under 256 of the model's {n + 255}-token"):
        check_fits(sc, WordTokenizer(), n + 255)
    assert check_fits(sc, WordTokenizer(), None) == n  # a model that does not say its context: no limit
