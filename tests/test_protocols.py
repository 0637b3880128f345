"""Action protocols: AgentBench's Think/Act parser and observation, regex protocols, build_protocol."""

from __future__ import annotations

import pytest

from genpi.envs.protocols import AGENTBENCH_OS, Action, RegexProtocol, build_protocol
from genpi.errors import GenpiError

MARKER = "[truncated because the output is too long]"


def parse(reply: str) -> Action:
    return AGENTBENCH_OS.parse(reply)


def test_think_act_bash_block():
    reply = "Think: count the files.\n\nAct: bash\n\n```bash\nls -1 /etc | wc -l\n```"
    assert parse(reply) == Action("command", "ls -1 /etc | wc -l")


def test_bash_blocks_are_joined_and_sh_blocks_ignored():
    reply = ("Think: two steps.\n\nAct: bash\n\n```bash\ncd /tmp\n```\n"
             "```sh\nrm -rf /\n```\n```bash\nls\nwc -l x\n```")
    assert parse(reply) == Action("command", "cd /tmp\n\nls\nwc -l x")
    # only an sh block: still a bash action (AgentBench picks the kind from the Act line), no command
    assert parse("Act: bash\n\n```sh\nls\n```") == Action("command", "")


def test_the_last_act_line_wins():
    assert parse("Act: bash\n```bash\nls\n```\nAct: answer(3)").kind == "answer"
    assert parse("Act: answer(3)\nThink: wait\nAct: finish") == Action("finish")
    assert parse("Act: finish\nAct: bash\n\n```bash\npwd\n```") == Action("command", "pwd")
    # a last Act line that does not parse falls back to the one before it
    assert parse("Act: answer(7)\nAct: answer 8") == Action("answer", "7")
    assert parse("Act: answer(7)\nAct: dance") == Action("answer", "7")


def test_answer_takes_first_open_to_last_close():
    assert parse("Think: done.\n\nAct: answer(4)") == Action("answer", "4")
    assert parse("Act: answer((a)b)") == Action("answer", "(a)b")
    assert parse("Act: answer(f(x) = y) and more)") == Action("answer", "f(x) = y) and more")
    assert parse("Act: answer()") == Action("answer", "")
    # the parentheses must be on the Act line itself
    assert parse("Act: answer(12\n34)").kind == "invalid"


def test_finish_and_case_insensitive():
    assert parse("Think: all set.\n\nAct: finish") == Action("finish")
    assert parse("ACT: Answer(x)") == Action("answer", "x")
    assert parse("act: FINISH") == Action("finish")
    assert parse("Act: BASH\n```bash\nls\n```") == Action("command", "ls")


@pytest.mark.parametrize("reply", [
    "", "I think the answer is 4.", "Think: hmm\n\n```bash\nls\n```", "Act: run(ls)",
    "Act: answer 4", "React: finish", "Act:", "answer(4)",
])
def test_nothing_parseable_is_invalid(reply):
    assert parse(reply) == Action("invalid")


def test_agentbench_observation():
    assert AGENTBENCH_OS.observation("220\n") == "The output of the OS:\n\n220\n"
    assert AGENTBENCH_OS.observation("") == "The output of the OS is empty."
    exactly = "x" * 800
    assert AGENTBENCH_OS.observation(exactly) == "The output of the OS:\n\n" + exactly
    long = "".join(str(i % 10) for i in range(801))
    shown = AGENTBENCH_OS.observation(long)
    assert shown == "The output of the OS:\n\n" + long[:780] + "\n" + MARKER


def test_agentbench_reply_round_trips():
    for action in [Action("command", "ls -l\necho hi"), Action("answer", "42"), Action("finish"),
                   Action("invalid")]:
        assert parse(AGENTBENCH_OS.reply(action)) == action


# the protocol of genpi's shipped shell scenario (scenarios/shell-agent.yaml), as a scenario declares it
SHELL_AGENT = {
    "command": r"(?s)```(?:sh|bash)?\n(?P<command>.*?)\n```",
    "answer": r"(?m)^Final:\s*(?P<answer>.+)$",
    "observation": "Output:\n{output}",
}


def test_regex_protocol_for_the_shell_scenario():
    p = build_protocol(SHELL_AGENT)
    assert isinstance(p, RegexProtocol)
    reply = ("Plan: List the .log files in /var/log and count them.\n```sh\n"
             "find /var/log -maxdepth 1 -type f -name '*.log' | wc -l\n```")
    assert p.parse(reply) == Action("command", "find /var/log -maxdepth 1 -type f -name '*.log' | wc -l")
    final = "Plan: The command printed the count, so I can answer.\nFinal: There are 7 .log files directly inside /var/log."
    assert p.parse(final) == Action("answer", "There are 7 .log files directly inside /var/log.")
    assert p.parse("Plan: I am not sure what to do.") == Action("invalid")
    assert p.parse("Plan: x\n```bash\nls\n```\nFinal: 3") == Action("answer", "3")   # the later one wins
    assert p.parse("Final: 3\n```\nls\n```") == Action("command", "ls")
    assert p.observation("7\n") == "Output:\n7\n"
    assert p.observation("") == "Output: (nothing)"


def test_regex_protocol_groups_finish_and_truncation():
    p = build_protocol({"command": r"RUN (.+)", "answer": r"ANSWER: (.*)", "finish": r"\bDONE\b",
                        "observation": "<{output}>", "empty_observation": "<>", "truncate": 100})
    assert p.parse("RUN ls -l") == Action("command", "ls -l")
    assert p.parse("ANSWER: 5") == Action("answer", "5")
    assert p.parse("RUN ls\nDONE") == Action("finish")
    assert p.observation("") == "<>"
    assert p.observation("y" * 100) == "<" + "y" * 100 + ">"
    cut = p.observation("y" * 101)
    assert cut == "<" + "y" * (100 - len(MARKER) - 1) + "\n" + MARKER + ">"
    assert len(cut) == 102
    # no group: the whole match
    assert build_protocol({"command": r"ls \S+"}).parse("please ls /tmp now") == Action("command", "ls /tmp")


@pytest.mark.parametrize("spec, words", [
    ({"command": "(unclosed"}, ["`command`", "regex"]),
    ({"command": "x", "answer": "[a-"}, ["`answer`", "regex"]),
    ({"answer": "x"}, ["`command`", "missing"]),
    ({"command": "x", "finsh": "y"}, ["unknown key", "`finsh`"]),
    ({"command": "x", "observation": "no slot"}, ["`observation`", "{output}"]),
])
def test_bad_regex_protocol_is_a_one_line_error(spec, words):
    with pytest.raises(GenpiError) as e:
        build_protocol(spec)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_build_protocol_names():
    assert build_protocol("agentbench-os") is AGENTBENCH_OS
    assert build_protocol(None) is AGENTBENCH_OS
    with pytest.raises(GenpiError, match="unknown protocol 'agentbench'.*agentbench-os"):
        build_protocol("agentbench")
    with pytest.raises(GenpiError, match="name .* or a mapping"):
        build_protocol(["command"])


@pytest.mark.parametrize("reply, kept", [
    # a command is whole once its fence has closed; what the model imagined after it is dropped
    ("Think: list it.\n\nAct: bash\n\n```bash\nls -l\ncd /tmp\n```\nThe output of the OS:\nfile.txt\nAct: answer(3)",
     "Think: list it.\n\nAct: bash\n\n```bash\nls -l\ncd /tmp\n```"),
    ("Think: done.\nAct: answer(4 (four))\nThink: more", "Think: done.\nAct: answer(4 (four))"),
    ("Act: finish\n\nAct: answer(1)", "Act: finish"),
    ("Act: bash\n```bash\nls", "Act: bash\n```bash\nls"),       # never whole: kept as it is
    ("Act: answer()\nAct: answer(5)\n", "Act: answer()\nAct: answer(5)"),  # an empty answer is not yet one
    ("no action at all\n\n", "no action at all\n\n"),
])
def test_first_action_cuts_after_the_first_whole_action(reply, kept):
    from genpi.envs.protocols import first_action

    assert first_action(AGENTBENCH_OS, reply) == kept


def test_first_action_with_a_regex_protocol():
    from genpi.envs.protocols import action_end, first_action

    p = build_protocol(SHELL_AGENT)
    reply = "I will look.\n```sh\nwc -l /etc/passwd\n```\nOutput:\n42\nFinal: 42\n"
    assert first_action(p, reply) == "I will look.\n```sh\nwc -l /etc/passwd\n```"
    assert first_action(p, "Final: 42\nmore") == "Final: 42"
    assert action_end(p, "```sh\nls") is None
