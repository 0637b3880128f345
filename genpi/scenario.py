"""Scenarios: the prompt to internalize, how inputs join it, seeds, environment, eval set.

A scenario is a YAML file (schema in the README) or a plain-text prompt file. This module
loads and validates it, and owns the only two functions that turn (scenario, input) into
chat messages: `teacher_messages` (with the prompt) and `student_messages` (without it).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import GenpiError

Role = Literal["system", "user", "assistant"]
INPUT_SLOT = "{input}"
_TURN_MARKER = re.compile(r"^<(SYSTEM|USER|AGENT|ASSISTANT)>:[ \t]*$", re.MULTILINE)
_MARKER_ROLE = {"SYSTEM": "system", "USER": "user", "AGENT": "assistant", "ASSISTANT": "assistant"}


# how a prompt is quoted to a model that reads it as text (the generator, the simulated environment)
RULE_BOOK_OPEN, RULE_BOOK_CLOSE = "=== RULE BOOK ===", "=== END OF RULE BOOK ==="

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    role: Role
    content: str


class Expectation(_Strict):
    """What one held-out answer must contain. All given conditions must hold."""

    contains: list[str] = Field(default_factory=list, description="every string must appear")
    contains_any: list[str] = Field(default_factory=list, description="at least one must appear")
    regex: str | None = Field(default=None, description="must match somewhere (re.search)")
    case_sensitive: bool = False

    @field_validator("contains", "contains_any", mode="before")
    @classmethod
    def _listify(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v):
        if v is not None:
            _compile(v)
        return v

    @model_validator(mode="after")
    def _not_empty(self):
        if not (self.contains or self.contains_any or self.regex):
            raise ValueError("an expectation needs at least one of contains, contains_any, regex")
        return self


class EvalInput(_Strict):
    input: str
    expect: Expectation | None = None

    @field_validator("input")
    @classmethod
    def _nonempty(cls, v):
        if not v.strip():
            raise ValueError("an eval input is empty")
        return v


class Check(_Strict):
    """A test applied to every first-turn output: a regex that must match, or valid JSON."""

    name: str
    regex: str | None = None
    json_: bool = Field(default=False, alias="json")
    flags: str = Field(default="", description="regex flags: any of 'i', 's', 'm'")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v):
        if v is not None:
            _compile(v)
        return v

    @model_validator(mode="after")
    def _one_kind(self):
        if bool(self.regex) == bool(self.json_):
            raise ValueError(f"check '{self.name}' needs exactly one of 'regex' or 'json: true'")
        if set(self.flags) - set("ism"):
            raise ValueError(f"check '{self.name}': flags may only hold i, s, m")
        return self

    def passes(self, text: str) -> bool:
        if self.json_:
            try:
                json.loads(_strip_fence(text))
                return True
            except ValueError:
                return False
        fl = 0
        for ch, f in (("i", re.I), ("s", re.S), ("m", re.M)):
            if ch in self.flags:
                fl |= f
        return re.search(self.regex, text.strip(), fl) is not None


class Environment(_Strict):
    """Who the agent talks to after its first reply, played by the generator in role-play."""

    role: str = "the user or environment that the prompt implies"
    instructions: str = ""
    end_when: str = "the task is done or the agent gives its final answer"
    end_marker: str = "[END]"
    max_turns: int = Field(default=3, ge=1, le=50)


class EvalEnvironment(_Strict):
    """Where `genpi eval` runs the agent for whole episodes and judges it by task success.

    kind shell: each problem in a fresh sandboxed Linux system (genpi.envs.shell); kind simulated: the
    model role-plays the environment (today's multi-turn checks, no task success).
    """

    kind: Literal["shell", "simulated"] = "shell"
    protocol: str | dict = Field("agentbench-os", description="'agentbench-os' or a mapping of regexes "
                                 "(command, answer, finish) and an observation template")
    problems: str | None = Field(None, description="an AgentBench-format problem file or folder")
    scripts: str | None = Field(None, description="the script folder; default: AgentBench's layout")
    round_limit: int = Field(8, ge=1, le=100)
    command_timeout_s: float = Field(10.0, gt=0, le=600)
    memory_mb: int = Field(1024, ge=64)
    pids: int = Field(256, ge=16)
    stop_at_action: bool = Field(True, description="end each agent reply at the line where it first holds "
                                 "a complete action (AgentBench itself keeps generating; the last action wins)")

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, v):
        from .envs.protocols import build_protocol

        try:
            build_protocol(v)
        except GenpiError as e:
            raise ValueError(str(e)) from None
        return v

    @model_validator(mode="after")
    def _needs_problems(self):
        if self.kind == "shell" and not self.problems:
            raise ValueError("eval.environment of kind shell needs problems: {file: PATH}")
        return self


class EvalSpec(_Strict):
    inputs: list[EvalInput] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    environment: EvalEnvironment | None = None

    @field_validator("inputs", mode="before")
    @classmethod
    def _wrap(cls, v):
        return [{"input": x} if isinstance(x, str) else x for x in (v or [])]

    @model_validator(mode="after")
    def _unique_names(self):
        names = [c.name for c in self.checks]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"check names must be unique; repeated: {', '.join(sorted(dup))}")
        return self


class Scenario(_Strict):
    name: str
    prompt: list[Message]
    input_template: str = INPUT_SLOT
    student_template: str = INPUT_SLOT
    seed_inputs: list[str] = Field(default_factory=list)
    environment: Environment = Field(default_factory=Environment)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    description: str = ""
    source: str = Field(default="", description="the file this scenario was loaded from")

    @field_validator("input_template", "student_template")
    @classmethod
    def _has_slot(cls, v):
        if INPUT_SLOT not in v:
            raise ValueError(f"template {v!r} must contain {INPUT_SLOT}")
        return v

    @field_validator("seed_inputs")
    @classmethod
    def _seeds(cls, v):
        return [s for s in (x.strip() for x in v) if s]

    @model_validator(mode="after")
    def _prompt_ok(self):
        if not self.prompt or not any(m.content.strip() for m in self.prompt):
            raise ValueError("the prompt is empty")
        return self

    # -- identity -------------------------------------------------------------------
    @property
    def prompt_text(self) -> str:
        """The prompt as one text (the target of prompt generation)."""
        if len(self.prompt) == 1:
            return self.prompt[0].content
        tag = {"system": "<SYSTEM>:", "user": "<USER>:", "assistant": "<AGENT>:"}
        return "\n\n".join(f"{tag[m.role]}\n{m.content}" for m in self.prompt)

    @property
    def prompt_sha256(self) -> str:
        payload = json.dumps([m.model_dump() for m in self.prompt], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def require_eval_inputs(self, verb: str) -> "Scenario":
        """Raise a one-line error when there are no held-out inputs to `verb` on."""
        env = self.eval.environment
        if not self.eval.inputs and not (env is not None and env.problems):
            raise GenpiError(f"scenario '{self.source or self.name}' has no eval.inputs, so genpi cannot {verb}: "
                             "add held-out inputs under eval: inputs: (or problems under eval: environment:)")
        return self

    def sha256(self) -> str:
        """Hash of everything that shapes synthesized data (not the eval section)."""
        d = self.model_dump(mode="json", exclude={"eval", "source", "description"})
        return hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# -- the two message builders (the only place prompts and inputs are joined) --------


def teacher_messages(sc: Scenario, x: str, turns: list[dict] | None = None) -> list[dict]:
    """Chat messages for the base model *with* the prompt, answering input `x`.

    `turns` continues the conversation: alternating assistant / user messages after the
    first user turn (the agent's replies and the environment's answers).
    """
    msgs = [m.model_dump() for m in sc.prompt]
    text = sc.input_template.replace(INPUT_SLOT, x)
    if msgs[-1]["role"] == "user":
        head = msgs[-1]["content"].rstrip()
        msgs[-1] = {"role": "user", "content": f"{head}\n\n{text}" if head else text}
    else:
        msgs.append({"role": "user", "content": text})
    return msgs + _check_turns(turns)


def student_messages(sc: Scenario, x: str, turns: list[dict] | None = None) -> list[dict]:
    """Chat messages for the base model (or adapter) *without* the prompt."""
    return [{"role": "user", "content": sc.student_template.replace(INPUT_SLOT, x)}] + _check_turns(turns)


def _check_turns(turns: list[dict] | None) -> list[dict]:
    turns = list(turns or [])
    for i, t in enumerate(turns):
        want = "assistant" if i % 2 == 0 else "user"
        if t.get("role") != want:
            raise ValueError(f"conversation turn {i} should be {want!r}, got {t.get('role')!r}")
    return [{"role": t["role"], "content": t["content"]} for t in turns]


# -- loading ---------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Load a YAML scenario or a plain-text prompt file; raise GenpiError on any problem."""
    p = Path(path)
    if not p.exists():
        raise GenpiError(f"scenario file '{p}' not found: pass a YAML scenario or a text prompt file")
    if p.is_dir():
        raise GenpiError(f"scenario '{p}' is a directory: pass a YAML scenario or a text prompt file")
    text = _read_text(p, "scenario")
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f" at line {where.line + 1}" if where else ""
            raise GenpiError(f"scenario '{p}' is not valid YAML{at}: fix the syntax ({getattr(e, 'problem', e)})")
        if not isinstance(raw, dict):
            raise GenpiError(f"scenario '{p}' must be a YAML mapping with at least a 'prompt' key")
        return _from_dict(raw, p)
    return _from_dict({"name": p.stem, "prompt": text}, p)


def _from_dict(raw: dict[str, Any], path: Path) -> Scenario:
    base = path.parent
    raw = dict(raw)
    raw.setdefault("name", path.stem)
    if "prompt" not in raw:
        raise GenpiError(f"scenario '{path}' has no 'prompt': add the prompt text, a message list or {{file: path}}")
    raw["prompt"] = _prompt_messages(raw["prompt"], base, path)
    if isinstance(raw.get("seed_inputs"), dict):
        raw["seed_inputs"] = _list_from_file(raw["seed_inputs"], base, path, "seed_inputs")
    ev = raw.get("eval")
    if isinstance(ev, dict) and isinstance(ev.get("inputs"), dict):
        raw["eval"] = ev = {**ev, "inputs": _list_from_file(ev["inputs"], base, path, "eval.inputs")}
    if isinstance(ev, dict) and isinstance(ev.get("environment"), dict):
        raw["eval"] = {**ev, "environment": _environment_paths(ev["environment"], base, path)}
    raw["source"] = str(path)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as e:
        raise GenpiError(f"scenario '{path}': {_one_line(e)}")


def _prompt_messages(v: Any, base: Path, path: Path) -> list[dict]:
    if isinstance(v, dict):
        if set(v) != {"file"}:
            raise GenpiError(f"scenario '{path}': prompt as a mapping takes only 'file' (got {sorted(v)})")
        f = _resolve(v["file"], base, path, "prompt")
        return _messages_from_text(_read_text(f, "prompt"), f)
    if isinstance(v, str):
        if not v.strip():
            raise GenpiError(f"scenario '{path}': the prompt is empty; put the text to internalize in it")
        return [{"role": "system", "content": v.strip("\n")}]
    if isinstance(v, list):
        return v  # validated as Message objects by pydantic
    raise GenpiError(f"scenario '{path}': prompt must be text, a list of {{role, content}} or {{file: path}}")


def _messages_from_text(text: str, f: Path) -> list[dict]:
    """A prompt file: either plain text (one system message) or a <USER>:/<AGENT>: transcript."""
    if not text.strip():
        raise GenpiError(f"prompt file '{f}' is empty; put the text to internalize in it")
    parts = _TURN_MARKER.split(text)
    if len(parts) == 1:
        return [{"role": "system", "content": text.strip("\n")}]
    if parts[0].strip():
        raise GenpiError(f"prompt file '{f}' has text before its first <USER>:/<AGENT>: marker; start it with a marker")
    msgs = []
    for tag, body in zip(parts[1::2], parts[2::2]):
        msgs.append({"role": _MARKER_ROLE[tag], "content": body.strip("\n")})
    return msgs


def _list_from_file(v: dict, base: Path, path: Path, what: str) -> list:
    if set(v) != {"file"}:
        raise GenpiError(f"scenario '{path}': {what} as a mapping takes only 'file'")
    f = _resolve(v["file"], base, path, what)
    text = _read_text(f, what)
    if f.suffix.lower() == ".json" or f.suffix.lower() in (".yaml", ".yml"):
        try:
            data = json.loads(text) if f.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as e:
            raise GenpiError(f"{what} file '{f}' is not valid {f.suffix[1:].upper()}: {str(e).splitlines()[0]}")
        if not isinstance(data, list):
            raise GenpiError(f"{what} file '{f}' must hold a list")
        return data
    if f.suffix.lower() == ".jsonl":
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as e:
            raise GenpiError(f"{what} file '{f}' has a line that is not JSON: {e}")
    return [line for line in text.splitlines() if line.strip()]


def _environment_paths(env: dict, base: Path, path: Path) -> dict:
    """eval.environment's problems ({file: P} or P) and scripts, made absolute (relative to the scenario).
    Their existence is checked when an evaluation needs them, so synthesis runs without the problem set."""
    env = dict(env)
    for key in ("problems", "scripts"):
        v = env.get(key)
        if isinstance(v, dict):
            if set(v) != {"file"}:
                raise GenpiError(f"scenario '{path}': eval.environment.{key} as a mapping takes only 'file'")
            v = v["file"]
        if v is not None:
            if not isinstance(v, str) or not v:
                raise GenpiError(f"scenario '{path}': eval.environment.{key} must be a path")
            env[key] = str((base / v).expanduser().resolve())
    return env


def _resolve(name: Any, base: Path, path: Path, what: str) -> Path:
    if not isinstance(name, str) or not name:
        raise GenpiError(f"scenario '{path}': {what}.file must be a path")
    f = (base / name).expanduser()
    if not f.is_file():
        raise GenpiError(f"scenario '{path}': {what} file '{name}' not found (paths are relative to the scenario file)")
    return f


def _read_text(p: Path, what: str) -> str:
    data = p.read_bytes()
    if b"\x00" in data:
        raise GenpiError(f"{what} file '{p}' is binary, not text: pass a UTF-8 text or YAML file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise GenpiError(f"{what} file '{p}' is not UTF-8 text (byte {e.start}): re-save it as UTF-8")


def _compile(rx: str):
    try:
        return re.compile(rx)
    except re.error as e:
        raise ValueError(f"bad regex {rx!r}: {e}")


def _strip_fence(text: str) -> str:
    t = text.strip()
    m = re.match(r"^```[a-zA-Z]*\n(.*)\n```$", t, re.S)
    return m.group(1) if m else t


def _one_line(e: ValidationError) -> str:
    out = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            out.append(f"unknown key '{loc}' (check its spelling; see the scenario schema in the README)")
        elif err["type"] == "missing":
            out.append(f"missing key '{loc}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            out.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(out)


def check_fits(sc: Scenario, tokenizer, max_positions: int | None, reserve: int = 256) -> int:
    """Count the teacher prompt's tokens; raise if it leaves less than `reserve` tokens of context."""
    from .models import encode_chat

    n = len(encode_chat(tokenizer, teacher_messages(sc, "")))
    if max_positions and n + reserve > max_positions:
        raise GenpiError(
            f"the prompt of '{sc.name}' is {n} tokens, which leaves under {reserve} of the model's "
            f"{max_positions}-token context: shorten the prompt or use a model with a longer context"
        )
    return n
