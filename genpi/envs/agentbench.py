"""AgentBench v0.2 OS-interaction problems: load them, set one up in a sandbox, judge an answer.

The problem format is AgentBench's (described in our words here; the files are read from a path the
user gives, e.g. a checkout's data/os_interaction/data). One problem:
    description              the user's problem
    create.init              setup run before the agent starts, each script in a fresh process; a
                             shell string, {"code": ...}, {"file": ...} (relative to the script
                             folder), or a list of these. create.local / create.image name the Docker
                             image AgentBench would use: ignored here, every problem gets the same
                             sandbox. A `create` that is not a mapping (one problem has a list) means
                             no setup, as in AgentBench.
    start                    a command run in the agent's own shell before its first turn
    evaluation.match         the answer must equal this string (stripped), or {answer, strip, regex}
    evaluation.check         scripts run one after another on the answer (see judge())
    evaluation.example       what a right solution runs; a null check entry runs it
    labels, explanation      kept / ignored. A top-level `example` (a quirk of some files) is read as
                             evaluation.example when that is absent.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GenpiError
from .base import Judgement, Unrunnable
from .protocols import Action

LANGUAGES = {".sh": "bash", ".bash": "bash", ".py": "python"}
SETUP_TIMEOUT = 300.0   # seconds for one init script (some install packages)
# in an oracle's answer: "what my previous command printed" (see oracle_actions)
LAST_OUTPUT = "<the output of the previous command>"

_PROBLEM_KEYS = {"description", "create", "start", "evaluation", "labels", "explanation", "example"}
_CREATE_KEYS = {"init", "local", "image"}
_EVALUATION_KEYS = {"match", "check", "example"}
_MATCH_KEYS = {"answer", "strip", "regex"}
_NETWORK = re.compile(
    r"could not resolve|temporary failure (in name )?resolution|name or service not known|"
    r"network is unreachable|failed to fetch|could not connect|connection (refused|timed out)|"
    r"unable to locate package|failed to establish a new network connection|couldn't resolve host|"
    r"unable to resolve host|no route to host|unable to connect|is not available from any source",
    re.IGNORECASE)
# bash's "N: Bad file descriptor" for a redirection like `echo 1>/f` read as fd 123321 (4/Q09): Docker's
# open-files limit allows it, these machines' (20,000) do not
_FD_LIMIT = re.compile(r"\b\d{4,}: Bad file descriptor")


@dataclass
class Script:
    language: str   # "bash" | "python"
    code: str
    name: str = ""  # where it comes from (a file, or the problem's key), for reasons

    def argv(self, params: list[str] = ()) -> list[str]:
        """How AgentBench runs it: bash -c CODE -- p1 p2 ... (so $1 is p1), or python3 -c CODE p1 p2 ..."""
        if self.language == "python":
            return ["python3", "-c", self.code, *params]
        return ["bash", "-c", self.code, "--", *params]


@dataclass
class Problem:
    id: str                             # "<file path under the problem root, no .json>/<index>"
    description: str
    init: list[Script]
    start: Script | None
    match: dict | None                  # {"answer": str | None, "strip": bool, "regex": str | None}
    check: list[Script | None] | None   # None entries run `example`
    example: Script | None
    labels: list[str] = field(default_factory=list)
    source: str = ""                    # the problem file


# ---------------------------------------------------------------------------------------- loading

def load_problems(path: str | Path, scripts: str | Path | None = None) -> list[Problem]:
    """Problems from a file (a JSON list of problems, or one problem) or a folder of such files.

    A folder is searched recursively for *.json, in sorted order, skipping names ending in
    "-backup.json". `scripts` is the folder {"file": ...} references are relative to; by default it
    follows AgentBench's layout (configs/tasks/os.yaml): .../data/X/*.json -> .../scripts/X/, and a
    file directly in data/, .../data/dev.json -> .../scripts/dev/.
    """
    path = Path(path)
    if not path.exists():
        raise GenpiError(f"AgentBench problems: {path} does not exist; give a problem file or a folder of them")
    if path.is_dir():
        files = sorted(f for f in path.rglob("*.json") if not f.name.endswith("-backup.json"))
        if not files:
            raise GenpiError(f"AgentBench problems: no *.json file in {path}; point at AgentBench's "
                             "data/os_interaction/data or one of its files")
        root = path
    else:
        files, root = [path], path.parent
    problems = []
    for f in files:
        script_dir = Path(scripts) if scripts is not None else default_script_dir(f)
        prefix = f.relative_to(root).with_suffix("").as_posix()
        problems += _load_file(f, prefix, script_dir)
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise GenpiError(f"AgentBench problems in {path}: duplicate problem ids; rename the clashing files")
    return problems


def default_script_dir(problem_file: Path) -> Path | None:
    """AgentBench's layout: the nearest folder named "data" above the file becomes "scripts", and the
    sub-folder is the first one below "data" (data/4/N11.json -> scripts/4) or, for a file directly
    in data/, the file's stem (data/dev.json -> scripts/dev). Outside that layout, a folder named
    "scripts" beside the file; else None."""
    parts = problem_file.resolve().parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "data":
            below = parts[i + 1:]
            sub = below[0] if len(below) > 1 else Path(below[0]).stem
            return Path(*parts[:i], "scripts", sub)
    beside = problem_file.resolve().parent / "scripts"
    return beside if beside.is_dir() else None


def _load_file(f: Path, prefix: str, script_dir: Path | None) -> list[Problem]:
    try:
        raw = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise GenpiError(f"AgentBench problems: cannot read {f} ({e}); check the file") from None
    except json.JSONDecodeError as e:
        raise GenpiError(f"AgentBench problems: {f} is not valid JSON ({e}); fix the file") from None
    items = raw if isinstance(raw, list) else [raw]
    problems = []
    for i, item in enumerate(items):
        where = f"{f}, problem {i}"
        try:
            problems.append(_problem(item, f"{prefix}/{i}", script_dir, f))
        except _Bad as e:
            raise GenpiError(f"AgentBench problems: {where}: {e}") from None
    return problems


class _Bad(Exception):
    """A problem's defect; _load_file adds the file and the index."""


def _problem(item: Any, pid: str, script_dir: Path | None, f: Path) -> Problem:
    if not isinstance(item, dict):
        raise _Bad(f"is a {type(item).__name__}, not an object; each problem is a JSON object")
    _only(item, _PROBLEM_KEYS, "a problem")
    desc = item.get("description")
    if not isinstance(desc, str) or not desc.strip():
        raise _Bad("has no description; add a non-empty \"description\"")
    create = item.get("create") or {}
    init: list[Script] = []
    if isinstance(create, dict):
        _only(create, _CREATE_KEYS, "create")
        raw_init = create.get("init")
        raw_init = [] if raw_init is None else raw_init if isinstance(raw_init, list) else [raw_init]
        init = [_script(s, script_dir, f"create.init[{k}]") for k, s in enumerate(raw_init)]
        if any(s is None for s in init):
            raise _Bad("create.init has a null entry; remove it")
    start = _script(item.get("start"), script_dir, "start")

    ev = item.get("evaluation")
    if not isinstance(ev, dict):
        raise _Bad("has no \"evaluation\" object; add one with \"match\" or \"check\"")
    _only(ev, _EVALUATION_KEYS, "evaluation")
    example = _script(ev.get("example", item.get("example")), script_dir, "example")
    match = check = None
    if "match" in ev:   # AgentBench: match wins over check
        match = _match(ev["match"])
    elif "check" in ev:
        raw = ev["check"] if isinstance(ev["check"], list) else [ev["check"]]
        check = [_script(s, script_dir, f"check[{k}]") for k, s in enumerate(raw)]
        if not check:
            raise _Bad("evaluation.check is empty; give at least one script")
        if None in check and example is None:
            raise _Bad("evaluation.check has a null entry (run the example) but there is no "
                       "evaluation.example; add one")
    else:
        raise _Bad("evaluation has neither \"match\" nor \"check\"; add one")
    labels = item.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise _Bad("labels must be a list of strings")
    return Problem(pid, desc, init, start, match, check, example, labels, str(f))


def _only(d: dict, allowed: set[str], what: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise _Bad(f"{what} has unknown key(s) {', '.join(extra)}; the known keys are {', '.join(sorted(allowed))}")


def _match(m: Any) -> dict:
    if isinstance(m, str):
        return {"answer": m, "strip": True, "regex": None}
    if not isinstance(m, dict):
        raise _Bad("evaluation.match must be a string or an object {answer, strip, regex}")
    _only(m, _MATCH_KEYS, "evaluation.match")
    if m.get("answer") is None and m.get("regex") is None:
        raise _Bad("evaluation.match needs \"answer\" or \"regex\"")
    if m.get("regex") is not None:
        try:
            re.compile(m["regex"])
        except re.error as e:
            raise _Bad(f"evaluation.match.regex is not a valid regex ({e}); fix it") from None
    return {"answer": m.get("answer"), "strip": bool(m.get("strip", True)), "regex": m.get("regex")}


def _script(obj: Any, script_dir: Path | None, key: str) -> Script | None:
    """A script as AgentBench writes one: None, a bash string, or {language?, code | file}."""
    if obj is None:
        return None
    if isinstance(obj, str):
        return Script("bash", obj, key)
    if not isinstance(obj, dict):
        raise _Bad(f"{key} must be a string or an object with \"code\" or \"file\"")
    _only(obj, {"language", "code", "file"}, key)
    language = obj.get("language")
    if "code" in obj:
        code, name = obj["code"], key
    elif "file" in obj:
        if script_dir is None:
            raise _Bad(f"{key} refers to file {obj['file']!r} but there is no script folder; pass "
                       "the scripts folder (AgentBench's data/os_interaction/scripts/X)")
        target = script_dir / obj["file"]
        if not target.is_file():
            raise _Bad(f"{key} refers to {target}, which does not exist; check the scripts folder")
        code, name = target.read_text(encoding="utf-8"), obj["file"]
        language = language or LANGUAGES.get(target.suffix)
    else:
        raise _Bad(f"{key} has neither \"code\" nor \"file\"; give one")
    language = language or "bash"
    if language not in ("bash", "python") or not isinstance(code, str):
        raise _Bad(f"{key}: language must be bash or python and code a string (got {language!r})")
    return Script(language, code, name)


# ------------------------------------------------------------------------------- setup and judging

def setup(problem: Problem, sandbox, timeout: float | None = SETUP_TIMEOUT) -> None:
    """Run the init scripts in order, each in a fresh process (a failure raises Unrunnable, as it
    aborts the problem in AgentBench), then `start` inside the agent's shell so its jobs persist."""
    for script in problem.init:
        r = sandbox.run(script.argv(), timeout=timeout)
        if r.timed_out or r.exit_code != 0:
            lines = [ln.strip() for ln in (r.output or "").splitlines() if ln.strip()]
            last = lines[-1][:200] if lines else "no output"
            what = f"timed out after {timeout:g} s" if r.timed_out else f"exit {r.exit_code}"
            hint = ("; needs the network" if _NETWORK.search(r.output or "") else
                    "; needs a higher open-files limit (ulimit -n)" if _FD_LIMIT.search(r.output or "") else "")
            raise Unrunnable(f"{problem.id}: init failed ({what}){hint}: {last}")
    if problem.start is not None:
        sandbox.shell(_as_shell(problem.start), timeout=timeout)


def judge(problem: Problem, answer: str | None, sandbox, timeout: float | None = None) -> Judgement:
    """Did `answer` (None after `finish`) solve the problem? Checked in the episode's sandbox.

    match: the answer, stripped unless strip is false, must equal `answer`, or `regex` must be found
    in it. check: the parameters start as [answer] ("None" after finish); each script runs in a fresh
    process with them (bash -c CODE -- p1 p2 ..., python3 -c CODE p1 p2 ...), a null entry running
    the example instead; each one's output is appended to the parameters of the next. Any non-zero
    exit, or a timeout, is a failure; all passing is a success. `timeout`: the sandbox's default
    when None.
    """
    if problem.match is not None:
        m = problem.match
        if answer is None:
            return Judgement(False, "finished without an answer; an answer was expected")
        given = answer.strip() if m["strip"] else answer
        if m["answer"] is not None:
            ok = given == m["answer"]
            return Judgement(ok, "the answer matches" if ok else f"answer {given!r} != {m['answer']!r}")
        ok = re.search(m["regex"], given) is not None
        return Judgement(ok, f"the answer {'matches' if ok else 'does not match'} /{m['regex']}/")
    params = [str(answer)]
    for k, script in enumerate(problem.check):
        script = script if script is not None else problem.example
        label = f"check {k + 1}/{len(problem.check)} ({script.name})"
        r = sandbox.run(script.argv(params), timeout=timeout)
        if r.timed_out:
            return Judgement(False, f"{label} timed out")
        if r.exit_code != 0:
            return Judgement(False, f"{label} failed (exit {r.exit_code})")
        params.append(r.output)
    return Judgement(True, f"all {len(problem.check)} checks passed")


# -------------------------------------------------------------------------------------- the oracle

def oracle_actions(problem: Problem) -> list[Action]:
    """What an agent that knows the answer does, as protocol actions.

    A match problem with an answer string: answer it at once. Otherwise (check problems, or a match
    by regex only): run the example in the agent's shell, then answer with what it printed (the
    answer's content is LAST_OUTPUT: fill in the previous command's output, stripped). The answer is
    what a null check entry compares against; check scripts that look at the machine instead see
    what the example changed.
    """
    if problem.match is not None and problem.match["answer"] is not None:
        return [Action("answer", problem.match["answer"])]
    if problem.example is None:
        raise GenpiError(f"AgentBench problem {problem.id} has no example, so no known answer; add "
                         "evaluation.example")
    return [Action("command", _as_shell(problem.example)), Action("answer", LAST_OUTPUT)]


def run_oracle(problem: Problem, sandbox, timeout: float | None = None) -> str | None:
    """Play oracle_actions() in the sandbox's shell; return the oracle's answer (None after finish)."""
    last = ""
    for action in oracle_actions(problem):
        if action.kind == "command":
            last = sandbox.shell(action.content, timeout=timeout).output
        elif action.kind == "answer":
            return last.strip() if action.content == LAST_OUTPUT else action.content
        else:
            return None
    return None


def wrong_answer(problem: Problem) -> str:
    """An answer that must fail: not the match string, and no integer or path a check could accept."""
    right = (problem.match or {}).get("answer")
    return "wrong" if right != "wrong" else "not wrong"


def _as_shell(script: Script) -> str:
    """A script as one command line for the interactive shell."""
    return script.code if script.language == "bash" else f"python3 -c {shlex.quote(script.code)}"
