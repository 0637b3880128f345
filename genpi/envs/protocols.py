"""Action protocols: how an agent's reply becomes an action, and how a command's output is shown back.

A protocol is data, not code in the episode loop: `parse(reply)` gives an Action (a command to run,
an answer, "finish", or "invalid"), and `observation(output)` writes the user turn that shows the
agent what its command printed.

    AGENTBENCH_OS   AgentBench v0.2's Think/Act protocol, built in ("agentbench-os")
    RegexProtocol   any other protocol, declared in a scenario with three regexes and a template
    build_protocol  a scenario's `protocol:` value (a name, or a mapping) -> a protocol
    first_action    a reply cut where its first complete action ends (agents stop generating there)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol as _TypingProtocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import GenpiError

Kind = Literal["command", "answer", "finish", "invalid"]


@dataclass
class Action:
    kind: Kind         # "command" | "answer" | "finish" | "invalid"
    content: str = ""  # the command, or the answer text


def cut(output: str, limit: int, keep: int, marker: str) -> str:
    """`output` longer than `limit` characters -> its first `keep` characters, a newline, the marker."""
    return output if len(output) <= limit else output[:keep] + "\n" + marker


class Protocol(_TypingProtocol):
    """What the episode loop needs from a protocol."""
    name: str
    def parse(self, reply: str) -> Action: ...
    def observation(self, output: str) -> str: ...


class AgentBenchOS:
    """AgentBench v0.2's OS-interaction protocol (in our words; the behaviour is theirs).

    Parsing: every `Act:` in the reply starts an action line (after any whitespace, even a line
    break, the rest of that line). They are tried from the last one back and the first that parses wins; the action's
    name is case-insensitive and only its start counts:
      - `bash...`    -> a command: every fenced block opening with a line "```bash" and closing with
                        "```", joined with blank lines (a block tagged "sh" is not one; no block -> "")
      - `finish...`  -> finish, no answer
      - `answer...`  -> the answer: the text between the first "(" and the last ")" of that line;
                        without both parentheses the line does not parse and the one before it is tried
    A reply where nothing parses is invalid.
    One deliberate difference: AgentBench's code finds the marker "Act:" case-sensitively, anywhere
    in a line; here the marker is case-insensitive too (as our README reads), so it must not follow a
    letter ("React:", "contact:" are no markers).

    Observation: "The output of the OS:" + blank line + the output, or "The output of the OS is
    empty." for no output; output longer than 800 characters is cut to its first 780, then a newline
    (as AgentBench does) and "[truncated because the output is too long]". The exit status is not shown.
    """

    name = "agentbench-os"
    LIMIT, KEEP = 800, 780
    MARKER = "[truncated because the output is too long]"
    _act = re.compile(r"(?<![A-Za-z])act:\s*(.+)", re.IGNORECASE)
    _bash_block = re.compile(r"```bash\n(.*?)\n```", re.DOTALL)

    def parse(self, reply: str) -> Action:
        for line in reversed(self._act.findall(reply)):
            verb = line.lower()
            if verb.startswith("bash"):
                return Action("command", "\n\n".join(self._bash_block.findall(reply)))
            if verb.startswith("finish"):
                return Action("finish")
            if verb.startswith("answer"):
                rest = line[len("answer"):]
                first, last = rest.find("("), rest.rfind(")")
                if first != -1 and last != -1:
                    return Action("answer", rest[first + 1:last])
        return Action("invalid")

    def observation(self, output: str) -> str:
        if not output:
            return "The output of the OS is empty."
        return "The output of the OS:\n\n" + cut(output, self.LIMIT, self.KEEP, self.MARKER)

    def reply(self, action: Action) -> str:
        """A reply in this protocol that parses back to `action` (for scripted agents in tests)."""
        if action.kind == "command":
            return f"Think: Run a command.\n\nAct: bash\n\n```bash\n{action.content}\n```"
        if action.kind == "answer":
            return f"Think: I know the answer.\n\nAct: answer({action.content})"
        if action.kind == "finish":
            return "Think: The task is done.\n\nAct: finish"
        return "I do not know what to do."


AGENTBENCH_OS = AgentBenchOS()
BUILT_IN = {AGENTBENCH_OS.name: AGENTBENCH_OS}


class RegexProtocol(BaseModel):
    """A protocol declared in a scenario: regexes for a command, an answer and "finish".

    Each regex is searched (re.search) in the whole reply; the command is the group named `command`
    (else group 1, else the whole match), the answer likewise with `answer`. Flags go inline, e.g.
    `(?s)` or `(?m)`. When several kinds match, the one whose match starts LAST in the reply wins (the
    agent's latest word, as in AgentBench); on a tie, command before answer before finish. A reply
    none matches is invalid. The output is shown through `observation` ("{output}" marks where), or
    `empty_observation` when there is none; output longer than `truncate` characters is cut to
    `truncate` minus the marker's length, then a newline and `marker`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "regex"
    command: str = Field(description="regex; the command is group `command` (or group 1)")
    answer: str | None = Field(default=None, description="regex; the answer is group `answer` (or group 1)")
    finish: str | None = Field(default=None, description="regex meaning: done, no answer")
    observation_template: str = Field(default="Output:\n{output}", alias="observation")
    empty_observation: str = "Output: (nothing)"
    truncate: int = Field(default=800, ge=50)
    marker: str = "[truncated because the output is too long]"

    KINDS: ClassVar[tuple[str, ...]] = ("command", "answer", "finish")

    @field_validator("command", "answer", "finish")
    @classmethod
    def _compiles(cls, v, info):
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a valid regex ({e})") from None
        return v

    @field_validator("observation_template")
    @classmethod
    def _has_slot(cls, v):
        if "{output}" not in v:
            raise ValueError("the template must contain {output}")
        return v

    def parse(self, reply: str) -> Action:
        best: tuple[int, int, Action] | None = None
        for rank, kind in enumerate(self.KINDS):
            pattern = getattr(self, kind)
            m = re.search(pattern, reply) if pattern is not None else None
            if m is None:
                continue
            action = Action("finish") if kind == "finish" else Action(kind, _group(m, kind))
            key = (m.start(), -rank)
            if best is None or key > best[:2]:
                best = (*key, action)
        return best[2] if best else Action("invalid")

    def observation(self, output: str) -> str:
        if not output:
            return self.empty_observation
        shown = cut(output, self.truncate, self.truncate - len(self.marker) - 1, self.marker)
        return self.observation_template.replace("{output}", shown)


def action_end(protocol: Protocol, reply: str) -> int | None:
    """Where a reply's first complete action ends: the first line break before which the reply parses
    as "finish", or as a command or an answer that is not empty; None when it never does."""
    nl = reply.find("\n")
    while nl != -1:
        a = protocol.parse(reply[:nl])
        if a.kind == "finish" or (a.kind in ("command", "answer") and a.content.strip()):
            return nl
        nl = reply.find("\n", nl + 1)
    return None


def first_action(protocol: Protocol, reply: str) -> str:
    """The reply up to the end of its first complete action (what an agent stopped there would say)."""
    end = action_end(protocol, reply)
    return reply if end is None else reply[:end].rstrip()


def _group(m: re.Match, name: str) -> str:
    if name in m.re.groupindex:
        return m.group(name) or ""
    return (m.group(1) or "") if m.re.groups else m.group(0)


def build_protocol(spec: str | dict | None) -> Protocol:
    """A scenario's `protocol:` -> a protocol. None or "agentbench-os": the built-in; a mapping: regexes."""
    if spec is None:
        return AGENTBENCH_OS
    if isinstance(spec, str):
        if spec in BUILT_IN:
            return BUILT_IN[spec]
        raise GenpiError(f"unknown protocol {spec!r}: use one of {', '.join(sorted(BUILT_IN))}, "
                         "or a mapping with regexes (command, answer, finish)")
    if isinstance(spec, RegexProtocol):
        return spec
    if isinstance(spec, dict):
        try:
            return RegexProtocol.model_validate(spec)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "protocol"
            if err["type"] == "extra_forbidden":
                raise GenpiError(f"protocol: unknown key `{where}`; the keys are command, answer, finish, "
                                 "observation, empty_observation, truncate, marker, name") from None
            if err["type"] == "missing":
                raise GenpiError(f"protocol: `{where}` is missing; give a regex whose group `{where}` "
                                 "(or group 1) is the command") from None
            msg = err["msg"].removeprefix("Value error, ")
            raise GenpiError(f"protocol: bad `{where}`: {msg}; fix that key of the protocol mapping") from None
    raise GenpiError(f"protocol must be a name ({', '.join(sorted(BUILT_IN))}) or a mapping of regexes, "
                     f"not {type(spec).__name__}")


