"""AgentBench v0.2 OS problems: loading (the standard set from ../shared, and bad inputs), the judge's
rules on a stand-in sandbox, and setup + judging in the real sandbox on a sample of problems."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from genpi.envs import agentbench as ab
from genpi.envs.agentbench import Problem, Script, judge, load_problems, setup
from genpi.envs.base import Unrunnable
from genpi.errors import GenpiError

SHARED = Path(__file__).parents[1].parent / "shared"
ROOT = SHARED / "data" / "agentbench-os" / "agentbench-v0.2" / "data" / "os_interaction"
DATA = ROOT / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"the AgentBench problem set is not at {DATA}")


# ------------------------------------------------------------------------------------------ loading

@pytest.fixture(scope="module")
def standard():
    return load_problems(DATA)


@needs_data
def test_standard_set(standard):
    assert len(standard) == 144
    ids = [p.id for p in standard]
    assert len(set(ids)) == 144 and ids[0] == "1/stock/0" and "7/bootstrap/87" in ids
    assert not any("backup" in p.source for p in standard)
    assert sum(p.match is not None for p in standard) == 9
    assert sum(p.check is not None and None in p.check for p in standard) == 123
    assert sum(p.start is not None for p in standard) == 4
    for p in standard:  # every script the problems reference is read from the right folder
        folder = ROOT / "scripts" / Path(p.source).parent.name
        for s in p.init + (p.check or []) + [p.example, p.start]:
            if s is not None and "/" in s.name:
                assert (folder / s.name).read_text() == s.code
    stock = standard[0]
    assert stock.init[0].name == "init/stock-log.sh" and stock.init[0].language == "bash"
    assert stock.check[0] is None and stock.check[1].language == "python"
    assert stock.check[1].name == "check/integer-match.py" and stock.labels == ["log", "file"]
    by_id = {p.id: p for p in standard}
    assert by_id["5/new/7"].init == []                  # its `create` is a list: no setup (as in AgentBench)
    assert by_id["4/N41/2"].match == {"answer": "yes", "strip": True, "regex": None}
    assert [s.name for s in by_id["2/environment/4"].init] == ["init/nested_folders.sh", "create.init[1]"]
    assert by_id["6/new/0"].example.code.startswith("chmod 777")  # a top-level "example"


@needs_data
def test_single_file_and_folder():
    one = load_problems(DATA / "4" / "N11.json")          # a file holding one problem object
    assert [p.id for p in one] == ["N11/0"] and one[0].description.startswith("How many hidden files")
    four = load_problems(DATA / "4")
    assert len(four) == 19 and four[0].id == "N11/0"
    stock = load_problems(DATA / "1" / "stock.json")
    assert len(stock) == 7 and stock[6].id == "stock/6" and stock[0].init[0].code.startswith("#!/bin/bash")
    assert len(load_problems(DATA / "6-backup.json")) == 9   # skipped in folders only


def test_default_script_folder_follows_agentbench_layout(tmp_path):
    data = tmp_path / "os_interaction" / "data"
    (data / "3").mkdir(parents=True)
    scripts = tmp_path / "os_interaction" / "scripts"
    for sub in ("3", "dev"):
        (scripts / sub / "init").mkdir(parents=True)
        (scripts / sub / "init" / "a.sh").write_text(f"echo {sub}")
        (scripts / sub / "init" / "b.py").write_text("print(1)")
    problem = {"description": "d", "create": {"init": [{"file": "init/a.sh"}, {"file": "init/b.py"}]},
               "evaluation": {"match": " x "}}
    (data / "3" / "p.json").write_text(json.dumps([problem, problem]))
    (data / "dev.json").write_text(json.dumps(problem))
    (data / "old-backup.json").write_text("not json")
    assert ab.default_script_dir(data / "3" / "p.json") == scripts.resolve() / "3"
    assert ab.default_script_dir(data / "dev.json") == scripts.resolve() / "dev"
    assert ab.default_script_dir(tmp_path / "x.json") is None
    got = load_problems(data)
    assert [p.id for p in got] == ["3/p/0", "3/p/1", "dev/0"]
    assert [s.code for s in got[0].init] == ["echo 3", "print(1)"] and got[2].init[0].code == "echo dev"
    assert [s.language for s in got[0].init] == ["bash", "python"]
    assert got[0].match == {"answer": " x ", "strip": True, "regex": None}
    other = tmp_path / "mine"
    (other / "init").mkdir(parents=True)
    (other / "init" / "a.sh").write_text("echo mine")
    (other / "init" / "b.py").write_text("")
    assert load_problems(data / "dev.json", scripts=other)[0].init[0].code == "echo mine"


def _problem_file(tmp_path, problems, name="probs.json") -> Path:
    f = tmp_path / name
    f.write_text(problems if isinstance(problems, str) else json.dumps(problems))
    return f


GOOD = {"description": "d", "evaluation": {"match": "x"}}


@pytest.mark.parametrize("content, words", [
    ("[{", ["not valid JSON"]),
    ([GOOD, {"evaluation": {"match": "x"}}], ["problem 1", "no description"]),
    ([{"description": "d", "evaluation": {"check": [{"file": "check/nope.py"}]}}],
     ["problem 0", "check[0]", "nope.py", "does not exist"]),
    ([{"description": "d", "create": {"init": {"file": "init/x.sh"}}, "evaluation": {"match": "x"}}],
     ["create.init[0]", "no script folder"]),
    ([{"description": "d", "evaluation": {"check": [None]}}], ["null entry", "evaluation.example"]),
    ([{"description": "d", "evaluation": {}}], ["neither", "match", "check"]),
    ([{"description": "d", "evaluation": {"match": "x"}, "crate": {}}], ["unknown key", "crate"]),
    ([{"description": "d", "create": {"init": "true", "setup": "x"}, "evaluation": {"match": "x"}}],
     ["create", "unknown key", "setup"]),
    ([{"description": "d", "evaluation": {"check": [{"language": "ruby", "code": "1"}]}}], ["ruby"]),
    ([{"description": "d", "evaluation": {"match": {"strip": True}}}], ["answer", "regex"]),
    (["just a string"], ["problem 0", "not an object"]),
])
def test_bad_problem_files_are_one_line_errors(tmp_path, content, words):
    f = _problem_file(tmp_path, content)
    with pytest.raises(GenpiError) as e:
        load_problems(f, scripts=None if "no script folder" in words else tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and all(w in msg for w in words), msg


def test_missing_or_empty_paths(tmp_path):
    with pytest.raises(GenpiError, match="does not exist"):
        load_problems(tmp_path / "nowhere")
    with pytest.raises(GenpiError, match=r"no \*\.json file"):
        load_problems(tmp_path)


# ------------------------------------------------------------- the judge's rules, on a stand-in sandbox

class StandIn:
    """Runs commands on this machine in a temporary folder (run() and shell() alike, no state kept)."""

    def __init__(self, folder: Path):
        self.folder, self.ran = folder, []

    def run(self, argv, timeout=None, stdin=None):
        self.ran.append(argv)
        try:
            p = subprocess.run(argv, cwd=self.folder, input=stdin or "", capture_output=True, text=True,
                               timeout=timeout or 10, env={**os.environ, "HOME": str(self.folder)})
        except subprocess.TimeoutExpired:
            return _Result("", None, True)
        return _Result(p.stdout + p.stderr, p.returncode)

    def shell(self, command, timeout=None):
        return self.run(["bash", "-c", command], timeout)


class _Result:
    def __init__(self, output, exit_code, timed_out=False):
        self.output, self.exit_code, self.timed_out, self.truncated = output, exit_code, timed_out, False


def _p(**kw) -> Problem:
    base = dict(id="t/0", description="d", init=[], start=None, match=None, check=None, example=None)
    return Problem(**{**base, **kw})


def test_match_rules(tmp_path):
    sb = StandIn(tmp_path)
    p = _p(match={"answer": "yes", "strip": True, "regex": None})
    assert judge(p, "  yes\n", sb).success
    assert not judge(p, "Yes", sb).success and not judge(p, None, sb).success
    exact = _p(match={"answer": "yes", "strip": False, "regex": None})
    assert judge(exact, "yes", sb).success and not judge(exact, "yes ", sb).success
    rx = _p(match={"answer": None, "strip": True, "regex": r"^\d+$"})
    assert judge(rx, " 42 ", sb).success and not judge(rx, "4 2", sb).success


def test_check_chain_passes_parameters_in_order(tmp_path):
    sb = StandIn(tmp_path)
    log = tmp_path / "log"
    p = _p(check=[None,
                  Script("python", "import sys; print('py', *sys.argv[1:])", "second"),
                  Script("bash", f'printf "%s|" "$@" > {log}; [ "$1" = "ans" ]', "third")],
           example=Script("bash", 'echo "example saw $1"', "example"))
    assert judge(p, "ans", sb).success
    # params: [answer], + the example's output, + the python script's output
    assert log.read_text() == "ans|example saw ans\n|py ans example saw ans\n\n|"
    assert sb.ran[0][:2] == ["bash", "-c"] and sb.ran[0][3:] == ["--", "ans"]
    assert sb.ran[1][:2] == ["python3", "-c"] and sb.ran[1][3:] == ["ans", "example saw ans\n"]
    bad = judge(p, "other", sb)
    assert not bad.success and "check 3/3 (third)" in bad.reason and "exit 1" in bad.reason
    # after `finish` the first parameter is the string "None"
    finish = _p(check=[Script("bash", '[ "$1" = None ]', "is-none")])
    assert judge(finish, None, sb).success and not judge(finish, "x", sb).success


def test_check_failures_name_the_script(tmp_path):
    sb = StandIn(tmp_path)
    p = _p(check=[None, Script("python", "import sys; sys.exit(int(sys.argv[1]) != int(sys.argv[2]))",
                               "check/integer-match.py")],
           example=Script("bash", "exit 4", "example/0.sh"))
    j = judge(p, "4", sb)
    assert not j.success and "example/0.sh" in j.reason and "exit 4" in j.reason
    slow = _p(check=[Script("bash", "sleep 5", "check/slow.sh")])
    j = judge(slow, "x", sb, timeout=0.3)
    assert not j.success and "check/slow.sh" in j.reason and "timed out" in j.reason


def test_setup_failures_are_unrunnable(tmp_path):
    sb = StandIn(tmp_path)
    p = _p(match={"answer": "x", "strip": True, "regex": None},
           init=[Script("bash", "echo fine"), Script("bash", "echo one; echo 'last words' >&2; exit 3")])
    with pytest.raises(Unrunnable, match=r"init failed \(exit 3\): last words") as e:
        setup(p, sb)
    assert "network" not in str(e.value)
    net = _p(init=[Script("bash", "echo 'W: Failed to fetch http://archive.ubuntu.com/x  Temporary "
                                  "failure resolving archive.ubuntu.com'; exit 100")])
    with pytest.raises(Unrunnable, match="needs the network"):
        setup(net, sb)
    fds = _p(init=[Script("bash", "echo 'bash: line 1: 123321: Bad file descriptor'; exit 1")])
    with pytest.raises(Unrunnable, match=r"needs a higher open-files limit"):
        setup(fds, sb)


def test_oracle_and_wrong_answers():
    match = _p(match={"answer": "wrong", "strip": True, "regex": None})
    assert ab.oracle_actions(match) == [ab.Action("answer", "wrong")]
    assert ab.wrong_answer(match) != "wrong"
    check = _p(check=[None], example=Script("python", "print(1)", "example"))
    assert ab.oracle_actions(check) == [ab.Action("command", "python3 -c 'print(1)'"),
                                        ab.Action("answer", ab.LAST_OUTPUT)]
    with pytest.raises(GenpiError, match="no example"):
        ab.oracle_actions(_p(check=[Script("bash", "true")]))


# ------------------------------------------------------------------- the real sandbox, real problems

def _sandbox_or_skip():
    sandbox = pytest.importorskip("genpi.envs.sandbox")
    try:
        sandbox.check_sandbox()
    except GenpiError as e:
        pytest.skip(f"no sandbox here: {e}")
    return sandbox.Sandbox


# one or more of each kind: init file / string / list / none, start, match, check with and without
# the example (null), a check chain on the answer, example scripts from files, a `create` that is a list
SAMPLE = ["1/stock/0", "1/stock/5", "2/environment/4", "3/ac/2", "4/N41/2", "4/Q47/0", "4/Q49/0",
          "5/new/0", "5/new/7", "6/new/4", "7/bootstrap/2"]


@needs_data
@pytest.mark.parametrize("pid", SAMPLE)
def test_oracle_passes_and_a_wrong_answer_fails(standard, pid):
    Sandbox = _sandbox_or_skip()
    problem = next(p for p in standard if p.id == pid)
    with Sandbox() as sb:
        setup(problem, sb)
        answer = ab.run_oracle(problem, sb)
        verdict = judge(problem, answer, sb)
        assert verdict.success, (answer, verdict.reason)
    with Sandbox() as sb:
        setup(problem, sb)
        wrong = ab.wrong_answer(problem)
        assert wrong != answer
        verdict = judge(problem, wrong, sb)
        assert not verdict.success, verdict.reason


@needs_data
def test_start_runs_in_the_agents_shell(standard):
    Sandbox = _sandbox_or_skip()
    q49 = next(p for p in standard if p.id == "4/Q49/0")   # start: var=3.14
    with Sandbox() as sb:
        setup(q49, sb)
        assert sb.shell("echo $var").output.strip() == "3.14"
        assert sb.run(["bash", "-c", "echo \"[$var]\""]).output.strip() == "[]"


def test_setup_that_needs_the_network_is_unrunnable():
    Sandbox = _sandbox_or_skip()
    # like 6/new/5 (apt update && apt install sudo), whose apt waits ~16 s on name resolution here
    p = _p(match={"answer": "x", "strip": True, "regex": None},
           init=[Script("bash", "echo ok"),
                 Script("python", "import urllib.request; urllib.request.urlopen('http://archive.ubuntu.com')")])
    with Sandbox() as sb, pytest.raises(Unrunnable, match=r"init failed \(exit 1\); needs the network: "
                                                           r"urllib.error.URLError"):
        setup(p, sb)


def test_real_sandbox_check_timeout_and_finish():
    Sandbox = _sandbox_or_skip()
    p = _p(check=[Script("bash", '[ "$1" = None ] && sleep 5', "check/slow.sh")])
    with Sandbox() as sb:
        j = judge(p, None, sb, timeout=0.5)
        assert not j.success and "timed out" in j.reason and "check/slow.sh" in j.reason
        j = judge(p, "x", sb)
        assert not j.success and "exit 1" in j.reason
