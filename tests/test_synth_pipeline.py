"""Stage wiring, resume and refusal of `synthesize`, with fake backends holding canned replies."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from genpi.errors import GenpiError
from genpi.generate import FakeBackend, LocalSpec, SameSpec
from genpi.scenario import load_scenario
from genpi.synth import format_summary, synthesize
from genpi.synth.interrupts import critical, graceful_interrupts
from genpi.artifacts import DataDir, Record, read_jsonl
from genpi.synth import SynthConfig

SCENARIO = """\
name: shell
prompt: |
  You are a shell agent. Answer with a line 'Think: ...' and then 'Act: bash' with a command.
student_template: "Problem: {input}"
seed_inputs:
  - How many users are on this machine?
  - Show the free disk space.
environment:
  role: a Linux shell
  instructions: Print only what the command would print.
  end_when: the agent gives its answer
  end_marker: "<<DONE>>"
  max_turns: 5
eval:
  checks:
    - {name: protocol, regex: '^Think:'}
"""

REQUESTS = [
    "Which kernel release is this machine running?", "List the ports that have a process listening on them.",
    "Print every cron job of the user alice.", "What is the largest file under /opt?",
    "How much swap space is in use right now?", "Count the Python files below /srv, recursively.",
    "Were there failed ssh logins yesterday?", "Which shell does root get at login?",
    "Show me the mounted filesystems and their types.", "Are any zombie processes around?",
    "Change the hostname to build-01.", "Set the timezone to Europe/Paris.",
    "Compress /var/log/app into one tar.gz archive.", "Who owns the folder /data/shared?",
    "Delete temporary files older than seven days in /tmp.", "Find the process using the most memory.",
    "Make the script deploy.sh executable for its owner only.", "Add a new group called auditors.",
    "Tell me the IPv4 address of eth0.", "Which packages were upgraded today?",
    "Replace tabs with four spaces in notes.txt.", "Is port 443 open on the firewall?",
    "Sort names.csv by its second column numerically.", "Report the uptime in whole hours.",
]

class Canned:
    """Route each conversation to a canned reply by what it asks for; count calls per stage."""

    def __init__(self, end_after: int = 1):
        self.n = {"inputs": 0, "reason": 0, "env": 0, "teacher": 0, "student": 0}
        self.end_after = end_after
        self.env_seen = []

    def __call__(self, conv):
        first = conv[0]["content"]
        if "new requests that a user could send" in first:
            self.n["inputs"] += 1
            k = self.n["inputs"]
            items = ["How many users are on this machine?",  # a seed again
                     "\u201cShow the free disk space\u201d",  # a seed, quoted
                     REQUESTS[(2 * k) % len(REQUESTS)],
                     REQUESTS[(2 * k) % len(REQUESTS)].lower(),  # duplicate
                     REQUESTS[(2 * k + 1) % len(REQUESTS)]]
            return "Here you go:\n" + "\n".join(f"{i}. {x}" for i, x in enumerate(items, 1))
        if "explain why the second answer differs" in first:
            self.n["reason"] += 1
            return "Explanation: The instructions require the Think/Act format, so the answer changed."
        if first.startswith("You are playing a Linux shell"):
            self.n["env"] += 1
            self.env_seen.append(conv)
            agent_turns = sum(m["role"] == "user" for m in conv)
            return "<<DONE>>" if agent_turns > self.end_after else "The output of the OS:\n42 <|im_end|>"
        if first.startswith("You are a shell agent"):
            self.n["teacher"] += 1
            return f"Think: step {sum(m['role'] == 'assistant' for m in conv)}.\n\nAct: bash\n\n```bash\nls\n```"
        assert first.startswith("Problem: "), first
        self.n["student"] += 1
        return "Sure! Here is some Python."


@pytest.fixture
def sc(write):
    return load_scenario(write("shell.yaml", SCENARIO))


def _run(sc, tiny_ref, out, canned, num_inputs=3, max_turns=3, continues=False, **kw):
    kw.setdefault("batch_size", 2)
    base = FakeBackend(canned, name="base", continues=continues)
    cfg = SynthConfig.from_preset("smoke", sc, num_inputs=num_inputs, max_turns=max_turns, **kw)
    return synthesize(sc, tiny_ref, None, out, cfg, base_backend=base, generator_backend=base, progress=False)


def _records(out):
    return [r.to_json() for r in DataDir(out).read_records()]


def test_stages_wire_into_records(sc, tiny_ref, tmp_path):
    canned = Canned(end_after=2)
    summary = _run(sc, tiny_ref, tmp_path / "D", canned, num_inputs=3, max_turns=3)
    recs = _records(tmp_path / "D")
    assert summary["records"] == 3 and len(recs) == 3
    assert len({r["id"] for r in recs}) == 3 and len({r["input"] for r in recs}) == 3
    seeds = {s.lower().rstrip("?.") for s in sc.seed_inputs}
    for r in recs:
        assert r["input"].lower().rstrip("?.") not in seeds
        assert r["teacher_output"].startswith("Think: step 0")
        assert r["student_output"] == "Sure! Here is some Python."
        assert r["reason"].startswith("The instructions require")  # label stripped
        conv = r["conversation"]
        assert conv[0] == {"role": "assistant", "content": r["teacher_output"]}
        # agent, env, agent, env, agent: the environment ended it after 2 agent turns... but max_turns 3 stops first
        assert [t["role"] for t in conv] == ["assistant", "user", "assistant", "user", "assistant"]
        assert conv[1]["content"] == "The output of the OS:\n42"  # family marker cut
        assert all("<<DONE>>" not in t["content"] for t in conv)
    # the environment saw the conversation with roles swapped, after its instructions
    env = canned.env_seen[0]
    assert env[0]["role"] == "system" and "Print only what the command would print." in env[0]["content"]
    assert [m["role"] for m in env[1:]] == ["user"]
    assert env[1]["content"].startswith("Think: step 0")
    meta = json.loads((tmp_path / "D" / "meta.json").read_text())
    assert meta["status"] == "done" and meta["counts"]["records"] == 3
    assert meta["filter_drops"]["seed"] >= 2 and meta["filter_drops"]["duplicate"] >= 1
    assert meta["teacher_checks"] == {"protocol": 3}
    assert meta["sampling"]["inputs"] == {"temperature": 1.0, "top_p": 0.9}
    assert "records" in format_summary(summary) and "seed" in format_summary(summary)


def test_a_backend_that_continues_gets_the_examples_as_the_start_of_its_list(sc, tiny_ref, tmp_path):
    seen = []

    def canned(conv):
        if "new requests that a user could send" in conv[0]["content"]:
            seen.append(conv)
            k = len(seen)
            return f" {REQUESTS[2 * k]}\n{conv[-1]['content'].count(chr(10)) + 2}. {REQUESTS[2 * k + 1]}"
        return Canned()(conv)

    _run(sc, tiny_ref, tmp_path / "D", canned, num_inputs=4, max_turns=1, continues=True, coverage=0.0)
    first = seen[0]
    assert [m["role"] for m in first] == ["user", "assistant"]
    assert first[1]["content"] in ("1. How many users are on this machine?\n2. Show the free disk space.\n3.",
                                   "1. Show the free disk space.\n2. How many users are on this machine?\n3.")
    inputs = {r["input"] for r in _records(tmp_path / "D")}
    assert inputs == {REQUESTS[i] for i in range(2, 6)}


def test_end_marker_stops_the_episode(sc, tiny_ref, tmp_path):
    _run(sc, tiny_ref, tmp_path / "D", Canned(end_after=1), num_inputs=2, max_turns=5)
    for r in _records(tmp_path / "D"):
        # agent, env, agent; then the environment wrote only the marker: that closing turn is dropped
        assert [t["role"] for t in r["conversation"]] == ["assistant", "user", "assistant"]


def test_max_turns_one_means_no_roleplay(sc, tiny_ref, tmp_path):
    canned = Canned()
    _run(sc, tiny_ref, tmp_path / "D", canned, num_inputs=2, max_turns=1)
    assert canned.n["env"] == 0
    assert all(len(r["conversation"]) == 1 for r in _records(tmp_path / "D"))


class Interrupting(Canned):
    """Raise KeyboardInterrupt at the n-th reason call (as SIGINT would, mid-batch)."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def __call__(self, conv):
        if "explain why the second answer differs" in conv[0]["content"] and self.n["reason"] + 1 == self.at:
            raise KeyboardInterrupt
        return super().__call__(conv)


def test_interrupt_then_resume_and_top_up(sc, tiny_ref, tmp_path, capsys):
    out = tmp_path / "D"
    with pytest.raises(KeyboardInterrupt):
        _run(sc, tiny_ref, out, Interrupting(at=3), num_inputs=4)  # batch 2: the 2nd batch is cut
    assert "Rerun the same command to resume" in capsys.readouterr().err
    first = _records(out)
    assert len(first) == 2
    assert json.loads((out / "meta.json").read_text())["status"] == "interrupted"
    pool = [o["input"] for o in read_jsonl(out / "inputs.jsonl")]
    # a killed writer may leave half a line: it is cut off on resume
    with (out / "records.jsonl").open("a") as f:
        f.write('{"id": "half", "inp')
    canned = Canned()
    _run(sc, tiny_ref, out, canned, num_inputs=7)
    recs = _records(out)
    assert len(recs) == 7 and len({r["id"] for r in recs}) == 7 and len({r["input"] for r in recs}) == 7
    assert recs[:2] == first  # kept as they were
    assert [o["input"] for o in read_jsonl(out / "inputs.jsonl")][:len(pool)] == pool  # pool not regenerated
    assert all(line.strip() for line in (out / "records.jsonl").read_text().splitlines())
    # nothing left to do: a rerun generates nothing
    again = Canned()
    _run(sc, tiny_ref, out, again, num_inputs=7)
    assert sum(again.n.values()) == 0 and len(_records(out)) == 7


def test_resume_refuses_another_scenario_or_model(sc, tiny_ref, tmp_path, write):
    out = tmp_path / "D"
    _run(sc, tiny_ref, out, Canned(), num_inputs=2, max_turns=2)
    before = (out / "records.jsonl").read_bytes()
    other = load_scenario(write("other.yaml", SCENARIO.replace("shell agent", "bash agent")))
    with pytest.raises(GenpiError, match="different scenario sha256.*new --out"):
        _run(other, tiny_ref, out, Canned(), num_inputs=2, max_turns=3)  # other settings too: still refused
    fake = FakeBackend(Canned(), name="gen")
    with pytest.raises(GenpiError, match="different generator.*new --out"):
        synthesize(sc, tiny_ref, LocalSpec(tiny_ref), out, SynthConfig.from_preset("smoke", sc, num_inputs=2,
                   max_turns=3), base_backend=fake, generator_backend=fake, progress=False)
    assert (out / "records.jsonl").read_bytes() == before and sorted(p.name for p in out.glob("records*")) == [
        "records.jsonl"]


def test_resume_reads_an_older_genpi_model_fingerprint_as_todays(sc, tiny_ref, tmp_path):
    out = tmp_path / "D"
    _run(sc, tiny_ref, out, Canned(), num_inputs=2, max_turns=2)
    meta, now, legacy = out / "meta.json", tiny_ref.fingerprint(), tiny_ref.legacy_fingerprint()
    assert now in meta.read_text() and legacy not in meta.read_text()
    meta.write_text(meta.read_text().replace(now, legacy))  # as the genpi before 2026-12-06 wrote it
    again = Canned()
    _run(sc, tiny_ref, out, again, num_inputs=2, max_turns=2)
    assert sum(again.n.values()) == 0 and len(_records(out)) == 2
    assert now in meta.read_text() and legacy not in meta.read_text()  # written anew with today's
    meta.write_text(meta.read_text().replace(now, "0123456789abcdef"))  # another model's is still refused
    with pytest.raises(GenpiError, match="different base model.*new --out"):
        _run(sc, tiny_ref, out, Canned(), num_inputs=2, max_turns=2)


def test_other_turns_keep_the_old_records_aside_and_reuse_every_call(sc, tiny_ref, tmp_path, capsys):
    out = tmp_path / "D"
    _run(sc, tiny_ref, out, Canned(end_after=9), num_inputs=3, max_turns=2)
    old, old_bytes = _records(out), (out / "records.jsonl").read_bytes()
    capsys.readouterr()
    canned = Canned(end_after=9)
    _run(sc, tiny_ref, out, canned, num_inputs=3, max_turns=3)
    err = capsys.readouterr().err.strip()
    # only the new turn was generated: one environment and one agent reply per record
    assert canned.n == {"inputs": 0, "reason": 0, "env": 3, "teacher": 3, "student": 0}
    aside = [p for p in out.glob("records.*.jsonl")]
    assert len(aside) == 1 and aside[0].read_bytes() == old_bytes
    assert "\n" not in err and "max_turns 2 -> 3" in err and aside[0].name in err
    new = _records(out)
    assert [r["id"] for r in new] == [r["id"] for r in old]
    for o, n in zip(old, new):
        assert {k: n[k] for k in o if k != "conversation"} == {k: o[k] for k in o if k != "conversation"}
        assert len(o["conversation"]) == 3 and n["conversation"][:3] == o["conversation"]
        assert [t["role"] for t in n["conversation"]] == ["assistant", "user", "assistant", "user", "assistant"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["identity"]["settings"]["max_turns"] == 3 and meta["status"] == "done"
    assert meta["set_aside"] == [{"file": aside[0].name, "settings": {"max_turns": 2, "max_new_tokens": 16,
                                                                      "reason_tokens": 16}}]
    # back to 2 turns: every call is answered from calls.jsonl, and no records file is overwritten
    again = Canned(end_after=9)
    _run(sc, tiny_ref, out, again, num_inputs=3, max_turns=2)
    assert sum(again.n.values()) == 0 and _records(out) == old
    _run(sc, tiny_ref, out, again, num_inputs=3, max_turns=3)
    assert sum(again.n.values()) == 0 and _records(out) == new
    assert len(list(out.glob("records.*.jsonl"))) == 3
    assert len(json.loads((out / "meta.json").read_text())["set_aside"]) == 3


def test_records_without_meta_are_refused(sc, tiny_ref, tmp_path):
    out = tmp_path / "D"
    out.mkdir()
    (out / "records.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(GenpiError, match="no meta.json"):
        _run(sc, tiny_ref, out, Canned())


def test_too_few_inputs_stops_with_a_clear_message(sc, tiny_ref, tmp_path):
    only_seeds = lambda conv: ("1. How many users are on this machine?\n2. Show the free disk space."  # noqa: E731
                               if "new requests" in conv[0]["content"] else "x")
    with pytest.raises(GenpiError, match=r"only 0 of 3 pseudo inputs survived .* rounds .*seed"):
        _run(sc, tiny_ref, tmp_path / "D", only_seeds, num_inputs=3, max_rounds=2)
    meta = json.loads((tmp_path / "D" / "meta.json").read_text())
    assert meta["status"] == "short" and meta["counts"]["rounds"] == 2
    assert meta["filter_drops"]["seed"] == meta["counts"]["candidates"] >= 2 * 2 * 2  # every candidate was a seed


def test_empty_greedy_replies_are_retried_sampled(sc, tiny_ref, tmp_path):
    canned = Canned()

    class FirstTeacherEmpty(FakeBackend):
        def chat(self, conversations, **kw):
            replies = super().chat(conversations, **kw)
            if kw.get("temperature", 0) == 0:
                replies = ["" if r.startswith("Think") else r for r in replies]
            return replies

    base = FirstTeacherEmpty(canned)
    synthesize(sc, tiny_ref, None, tmp_path / "D", SynthConfig.from_preset("smoke", sc, num_inputs=2, max_turns=1),
               base_backend=base, generator_backend=base, progress=False)
    recs = _records(tmp_path / "D")
    assert len(recs) == 2 and all(r["teacher_output"].startswith("Think") for r in recs)
    assert json.loads((tmp_path / "D" / "meta.json").read_text())["counts"]["sampled_retries"] == 2


def test_critical_sections_hold_signals():
    hit = []
    with graceful_interrupts():
        with pytest.raises(KeyboardInterrupt):
            with critical():
                signal.raise_signal(signal.SIGTERM)  # its handler has run when this returns
                hit.append("finished the block")
    assert hit == ["finished the block"]


class TermAt(Canned):
    """Send SIGTERM to this very process at the n-th role-play call: in the middle of a record, after its
    teacher and student outputs and its reason, before it is written."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def __call__(self, conv):
        if conv[0]["content"].startswith("You are playing a Linux shell") and self.n["env"] + 1 == self.at:
            signal.raise_signal(signal.SIGTERM)  # the handler runs before this returns
        return super().__call__(conv)


class Unhandled(Exception):
    pass


def _unhandled(signum, frame):
    raise Unhandled("SIGTERM reached the test's own handler: synthesize did not install one")


def test_sigterm_stops_between_records(sc, tiny_ref, tmp_path, capsys):
    out = tmp_path / "D"
    old = signal.signal(signal.SIGTERM, _unhandled)  # without genpi's handler, SIGTERM would end pytest
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(sc, tiny_ref, out, TermAt(3), num_inputs=5, max_turns=2, batch_size=1, coverage=0.0)
        assert signal.getsignal(signal.SIGTERM) is _unhandled  # genpi's handler is gone again
    finally:
        signal.signal(signal.SIGTERM, old)
    assert "Rerun the same command to resume" in capsys.readouterr().err
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(Record.model_validate(json.loads(x)) for x in lines)  # records 1 and 2, whole
    assert json.loads((out / "meta.json").read_text())["status"] == "interrupted"
    canned = Canned()
    _run(sc, tiny_ref, out, canned, num_inputs=5, max_turns=2, batch_size=1, coverage=0.0)  # no aimed resampling
    recs = _records(out)
    assert len(recs) == 5 and len({r["input"] for r in recs}) == 5
    # only the three missing records were made (first turn + one more each), and record 3's first turn,
    # generated before the stop, came from the call cache
    assert canned.n["teacher"] == 3 * 2 - 1


def test_config_from_preset(sc):
    from genpi.synth import SynthConfig

    cfg = SynthConfig.from_preset("quick", sc)
    assert cfg.num_inputs == 24 and cfg.max_new_tokens == 64 and cfg.input_tokens == 128
    assert cfg.max_turns == 2  # the smaller of the preset's 2 and the scenario's 5
    assert SynthConfig.from_preset("paper", sc).max_turns == 5
    assert SynthConfig.from_preset("paper", sc, max_turns=9).max_turns == 9  # an explicit flag wins
    with pytest.raises(GenpiError, match="batch-size"):
        SynthConfig.from_preset("smoke", sc, batch_size=0)


def test_the_facts_preset_is_quick_asking_about_every_fact(sc):
    from genpi.cli import build_parser
    from genpi.config import overrides_from
    from genpi.presets import PRESET_USES, PRESETS
    from genpi.synth import SynthConfig
    from genpi.train import TrainConfig

    facts, quick = SynthConfig.from_preset("facts", sc), SynthConfig.from_preset("quick", sc)
    assert (facts.num_inputs, facts.coverage, facts.unit_questions, facts.cite_units) == (72, 1.0, True, True)
    assert {k for k, v in facts.to_dict().items() if quick.to_dict()[k] != v} == {
        "num_inputs", "coverage", "unit_questions", "cite_units"}
    assert TrainConfig.from_preset("facts").kl == 0.0 and TrainConfig.from_preset("quick").kl == 1.0
    assert PRESETS["facts"]["eval"] == PRESETS["quick"]["eval"] and PRESETS["facts"]["model"] == "default"
    assert set(PRESET_USES) == set(PRESETS)  # --preset's help names each
    # a preset's switch is turned off on the command line, and on where the preset leaves it off
    args = build_parser().parse_args(["synth", "s.yaml", "--out", "d", "--preset", "facts", "--no-cite-units"])
    assert SynthConfig.from_preset("facts", sc, **overrides_from(args, SynthConfig)).cite_units is False
    args = build_parser().parse_args(["run", "s.yaml", "--out", "d", "--unit-questions"])
    assert overrides_from(args, SynthConfig) == {"unit_questions": True}


def test_teacher_replies_that_break_a_check_are_sampled_again(sc, tiny_ref, tmp_path):
    """A greedy teacher reply failing the scenario's check is replaced by the first sample that passes."""
    canned = Canned()
    tries: dict[str, int] = {}
    first_input: list[str] = []

    def teacher_or_other(conv):
        first = conv[0]["content"]
        if not first.startswith("You are a shell agent") or len(conv) > 2:
            return canned(conv)
        x = conv[-1]["content"]
        first_input[:] = first_input or [x]  # the first input's teacher never obeys
        tries[x] = tries.get(x, 0) + 1
        if tries[x] < 3 or x == first_input[0]:
            return "Sure, I can help with that."           # breaks the check '^Think:'
        return f"Think: try {tries[x]}.\n\nAct: bash\n\n```bash\nls\n```"

    _run(sc, tiny_ref, tmp_path / "D", teacher_or_other, num_inputs=3, max_turns=1, teacher_samples=4)
    recs = {r["input"]: r for r in _records(tmp_path / "D")}
    meta = json.loads((tmp_path / "D" / "meta.json").read_text())
    never = [x for x in recs if "Problem: " + x == first_input[0] or x == first_input[0]]
    assert len(never) == 1
    for x, r in recs.items():
        if x in never:  # no sample passed: the greedy reply stays, after 1 + 4 tries
            assert r["teacher_output"] == "Sure, I can help with that." and tries[x] == 5
        else:           # greedy, one failed sample, then the third try passes
            assert r["teacher_output"].startswith("Think: try 3.") and tries[x] == 3
    assert meta["counts"]["teacher_broke_checks"] == 3
    assert meta["counts"]["teacher_resampled"] == 3 - len(never)
    assert meta["teacher_checks"] == {"protocol": 3 - len(never)}

    tries.clear()
    _run(sc, tiny_ref, tmp_path / "E", teacher_or_other, num_inputs=3, max_turns=1, teacher_samples=0)
    assert all(r["teacher_output"] == "Sure, I can help with that." for r in _records(tmp_path / "E"))


def test_env_auto_uses_a_real_shell_where_the_scenario_has_one(sc, monkeypatch):
    from genpi.envs import sandbox

    assert SynthConfig.from_preset("smoke", sc).env == "auto"
    assert SynthConfig.from_preset("smoke", sc).resolved(sc).env == "simulated"  # no eval.environment
    shell_sc = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "shell-agent.yaml")
    monkeypatch.setattr(sandbox, "check_sandbox", lambda: None)
    assert SynthConfig.from_preset("smoke", shell_sc).resolved(shell_sc).env == "shell"
    assert SynthConfig.from_preset("smoke", shell_sc, env="simulated").resolved(shell_sc).env == "simulated"

    def refuse():
        raise sandbox.SandboxError("no root")

    monkeypatch.setattr(sandbox, "check_sandbox", refuse)
    assert SynthConfig.from_preset("smoke", shell_sc).resolved(shell_sc).env == "simulated"


AGENT_EVAL = """\
  environment:
    kind: shell
    protocol:
      command: '```sh\\n(?P<command>(?s:.*?))\\n```'
      answer: '(?m)^Final: (?P<answer>.*)$'
    problems: {file: problems.json}
"""


def _agent(write, first: tuple[str, str], later: tuple[str, str]):
    """An agent scenario (AGENT_EVAL's protocol) and a fake base model whose agent replies are (greedy, sampled)
    `first` for the first turn and `later` after it; every other role gets Canned()'s texts."""
    write("problems.json", "[]")
    sc = load_scenario(write("agent.yaml", SCENARIO.replace("eval:\n", "eval:\n" + AGENT_EVAL)))
    canned = Canned()

    class Backend(FakeBackend):
        def chat(self, conversations, *, max_new_tokens, temperature=0.0, top_p=1.0, seed=None):
            return [canned(conv) if not conv[0]["content"].startswith("You are a shell agent") else
                    (first if len(conv) <= 2 else later)[temperature != 0] for conv in conversations]

    return sc, Backend(name="base")


def test_agent_replies_hold_one_valid_action_of_the_protocol(write, tiny_ref, tmp_path):
    """In an agent scenario, a teacher or role-play reply with no valid action (here a block not tagged sh)
    is sampled again like one that breaks a check, and every kept reply ends at its first action; the
    scenario's checks hold the first reply only."""
    # the first reply: an untagged block when greedy, a sample runs on; a later turn: no action when greedy, a
    # sample answers (no Think line: the checks are for first replies)
    sc, base = _agent(write, ("Think: look.\n```\nls\n```", "Think: look.\n```sh\nls\n```\nOutput:\n42\nFinal: 42"),
                      ("It is 42.", "Final: 42\nBye."))
    cfg = SynthConfig.from_preset("smoke", sc, num_inputs=3, max_turns=2, batch_size=2, env="simulated")
    synthesize(sc, tiny_ref, None, tmp_path / "D", cfg, base_backend=base, generator_backend=base, progress=False)
    recs = _records(tmp_path / "D")
    assert len(recs) == 3
    for r in recs:
        agent = [m["content"] for m in r["conversation"] if m["role"] == "assistant"]
        assert r["teacher_output"] == agent[0] == "Think: look.\n```sh\nls\n```"
        assert agent[1:] == ["Final: 42"]
    meta = json.loads((tmp_path / "D" / "meta.json").read_text())
    assert meta["counts"]["teacher_broke_checks"] == meta["counts"]["teacher_resampled"] == 3
    assert meta["counts"]["agent_broke_checks"] == meta["counts"]["agent_resampled"] == 3
    assert meta["teacher_checks"] == {"protocol": 3, "valid action": 3}
    assert meta["identity"]["settings"]["agent_replies"] == "valid actions, cut after the first"
    assert "role-play agent turns that broke a check" in format_summary(
        synthesize(sc, tiny_ref, None, tmp_path / "D", cfg, base_backend=base, generator_backend=base,
                   progress=False))


def test_act_first_samples_again_a_first_reply_that_answers_without_acting(write, tiny_ref, tmp_path):
    """With act_first, a greedy first reply that answers at once is sampled again for one that runs a command;
    without it the answer stays. Either way later turns are not touched."""
    # greedy: an answer with no command; sampled: a command
    sc, base = _agent(write, ("Think: I know.\nFinal: 7", "Think: look.\n```sh\nls\n```"), ("Final: 42", "Final: 42"))
    for act_first, first in ((False, "Think: I know.\nFinal: 7"), (True, "Think: look.\n```sh\nls\n```")):
        out = tmp_path / f"D{act_first}"
        cfg = SynthConfig.from_preset("smoke", sc, num_inputs=3, max_turns=2, batch_size=2, env="simulated",
                                      act_first=act_first)
        summary = synthesize(sc, tiny_ref, None, out, cfg, base_backend=base, generator_backend=base, progress=False)
        recs = _records(out)
        assert len(recs) == 3 and all(r["teacher_output"] == first for r in recs)
        counts = json.loads((out / "meta.json").read_text())["counts"]
        assert counts["teacher_answered_at_once"] == (3 if act_first else 0)
        assert counts["teacher_act_resampled"] == (3 if act_first else 0)
        assert ("answered without acting: 3" in format_summary(summary)) == act_first


def test_a_role_play_turn_repeating_the_last_one_is_sampled_again_or_ends_the_conversation(write, tiny_ref, tmp_path):
    """With avoid_repeats, an agent turn that says again, word for word, what the agent said last is sampled
    again for one that does not; if no sample does, the conversation ends before it; without it the turn
    stays, and the records' count says so."""
    cmd = "Think: look.\n```sh\nls\n```"
    cases = {"mended": ((cmd, "Final: 42"), True, [cmd, "Final: 42"], (3, 3, 0, 0)),
             "dropped": ((cmd, cmd), True, [cmd], (3, 0, 3, 0)),
             "kept": ((cmd, "Final: 42"), False, [cmd, cmd], (0, 0, 0, 3))}
    for name, (later, avoid, turns, (repeated, resampled, dropped, in_records)) in cases.items():
        sc, base = _agent(write, (cmd, cmd), later)
        out = tmp_path / name
        cfg = SynthConfig.from_preset("smoke", sc, num_inputs=3, max_turns=2, batch_size=2, env="simulated",
                                      avoid_repeats=avoid)
        summary = synthesize(sc, tiny_ref, None, out, cfg, base_backend=base, generator_backend=base, progress=False)
        recs = _records(out)
        assert len(recs) == 3, name
        assert all([m["content"] for m in r["conversation"] if m["role"] == "assistant"] == turns for r in recs), name
        c = json.loads((out / "meta.json").read_text())["counts"]
        got = (c["agent_repeated"], c["agent_repeat_resampled"], c["agent_repeat_dropped"], c["repeated_turns_kept"])
        assert got == (repeated, resampled, dropped, in_records), name
        assert f"previous reply, in the records: {in_records}" in format_summary(summary), name


def test_cite_units_says_it_leaves_an_agent_scenarios_replies_alone(write, tiny_ref, tmp_path, capsys):
    cmd = "Think: look.\n```sh\nls\n```"
    sc, base = _agent(write, (cmd, cmd), (cmd, "Final: 42"))
    cfg = SynthConfig.from_preset("smoke", sc, num_inputs=2, max_turns=1, batch_size=2, env="simulated",
                                  cite_units=True)
    summary = synthesize(sc, tiny_ref, None, tmp_path / "D", cfg, base_backend=base, generator_backend=base,
                         progress=False)
    assert "--cite-units leaves an agent scenario's replies as they are" in capsys.readouterr().err
    assert summary["counts"]["teacher_cited"] == 0 and all(not r.cited for r in DataDir(tmp_path / "D").read_records())
