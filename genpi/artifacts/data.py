"""A synthesis folder (DATA_DIR), written by `genpi synth` and read by `genpi train` and `genpi eval`.

  records.jsonl  one finished `Record` per line, appended as each is complete
  inputs.jsonl   the pseudo-input pool in the order kept ({"id", "input"}, and "units": the ids of the
                 prompt units its generation call aimed at, if any), plus {"id", "rejected": why}
                 for inputs that could not give a complete record
  calls.jsonl    the generation-call cache ({"key", "reply"}), so a rerun pays for no call twice
  meta.json      `SynthMeta`: identity (scenario hash, models, settings), counts, filter drops, times
  teacher_logprobs/  with `genpi synth --teacher-logprobs K`: one safetensors file per record (named by a hash
                 of its id) holding the prompted teacher's rendering of the conversation (`input_ids`), the
                 positions of its agent-turn tokens (`positions`), and at each the teacher's top-K token ids
                 and log-probabilities (`top_ids`, -1 where fewer were listed; `top_logprobs`); its metadata
                 names the record, K and the source
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import GenpiError
from .io import JsonlAppender, file_sha256, read_json, read_jsonl, rename_aside, write_json_atomic

RECORDS, INPUTS, CALLS, META = "records.jsonl", "inputs.jsonl", "calls.jsonl", "meta.json"
TEACHER_LOGPROBS = "teacher_logprobs"
TEACHER_TENSORS = ("input_ids", "positions", "top_ids", "top_logprobs")


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["assistant", "user"]
    content: str


class Record(BaseModel):
    """One pseudo input and what the models made of it.

    `conversation` starts with the agent's first reply (= teacher_output), then environment and agent
    turns alternate; a trailing environment turn teaches nothing and is dropped on load.
    `student_output` and `reason` may be empty in data a user writes by hand (then the PG target is
    the prompt alone); `genpi synth` always fills them.
    `cited`: texts of the prompt that synthesis put into teacher_output because the prompted reply left
    out what the request asked about (`genpi synth --cite-units`); training keeps them out of the KL term,
    as the teacher's own distribution did not say them.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    input: str
    teacher_output: str
    student_output: str = ""
    reason: str = ""
    conversation: tuple[Turn, ...] = ()
    cited: tuple[str, ...] = ()

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _shape(self) -> "Record":
        for name in ("id", "input", "teacher_output"):
            if not getattr(self, name).strip():
                raise ValueError(f"'{name}' is empty: every record needs id, input and teacher_output")
        turns = list(self.conversation) or [Turn(role="assistant", content=self.teacher_output)]
        for i, t in enumerate(turns):
            want = "assistant" if i % 2 == 0 else "user"
            if t.role != want or not t.content.strip():
                raise ValueError(f"conversation turn {i} must be a non-empty '{want}' turn "
                                 "(the agent speaks first, then turns alternate)")
        if turns[0].content != self.teacher_output:
            raise ValueError("the conversation must start with teacher_output")
        if any(not c.strip() or c not in self.teacher_output for c in self.cited):
            raise ValueError("every 'cited' text must be a non-empty part of teacher_output")
        while turns[-1].role == "user":
            turns.pop()
        object.__setattr__(self, "conversation", tuple(turns))
        return self

    def turns(self) -> list[dict]:
        """The conversation as plain chat messages."""
        return [{"role": t.role, "content": t.content} for t in self.conversation]

    def to_json(self) -> dict:
        out = self.model_dump(mode="json")
        if not out["cited"]:  # records without citations stay as they were written before the field
            del out["cited"]
        return out


def input_id(text: str) -> str:
    """The id of a pseudo input (and of its record): a short hash of its text."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class SynthMeta(BaseModel):
    """DATA_DIR/meta.json. `identity` decides whether a rerun may resume into the folder."""

    model_config = ConfigDict(extra="allow")

    genpi_version: str = ""
    status: str = ""
    scenario: str = ""
    identity: dict = Field(default_factory=dict)
    models: dict = Field(default_factory=dict)
    sampling: dict = Field(default_factory=dict)
    settings: dict = Field(default_factory=dict)
    counts: dict = Field(default_factory=dict)
    filter_drops: dict = Field(default_factory=dict)
    teacher_checks: dict = Field(default_factory=dict)
    stage_seconds: dict = Field(default_factory=dict)
    stage_seconds_total: dict = Field(default_factory=dict)
    coverage: dict = Field(default_factory=dict)  # synth.coverage.coverage(): the prompt's units in the data
    endpoints: dict = Field(default_factory=dict)  # role -> the local model or the endpoint that wrote its text
    teacher_logprobs: dict = Field(default_factory=dict)  # K, source, records scored, tokens matched (if stored)
    updated: str = ""


class DataDir:
    """The files of one synthesis folder; the only code that opens them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records_path = self.path / RECORDS
        self.inputs_path = self.path / INPUTS
        self.calls_path = self.path / CALLS
        self.meta_path = self.path / META
        self.teacher_logprobs_dir = self.path / TEACHER_LOGPROBS

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r})"

    # -- checks ---------------------------------------------------------------------------
    def has_records(self) -> bool:
        return self.records_path.is_file() and self.records_path.stat().st_size > 0

    def require(self, flag: str = "--data") -> "DataDir":
        """Raise a one-line error unless this folder holds records.jsonl."""
        if not self.records_path.is_file():
            raise GenpiError(f"{flag} '{self.path}' holds no {RECORDS}: pass a folder written by 'genpi synth'")
        return self

    # -- records --------------------------------------------------------------------------
    def read_records(self, *, require: bool = False) -> list[Record]:
        """Every record, in file order; a repeated id is an error. With `require`, none is an error too."""
        fix = "rerun 'genpi synth' to repair the data folder, or fix that line"
        if require:
            self.require()
        out = read_jsonl(self.records_path, Record.model_validate, fix=fix)
        seen: set[str] = set()
        for r in out:
            if r.id in seen:
                raise GenpiError(f"{self.records_path}: record id '{r.id}' is repeated: each record needs a unique id")
            seen.add(r.id)
        if require and not out:
            raise GenpiError(f"{self.records_path} has no records: run 'genpi synth' first (or with a larger "
                             "--num-inputs)")
        return out

    def record_writer(self) -> JsonlAppender:
        return JsonlAppender(self.records_path)

    def records_sha256(self) -> str:
        return file_sha256(self.records_path)

    def set_records_aside(self, tag: str) -> Path | None:
        """Rename records.jsonl to records.TAG.jsonl (generated data is never overwritten); return the new path."""
        return rename_aside(self.records_path, tag) if self.has_records() else None

    # -- the input pool ----------------------------------------------------------------------
    def read_inputs(self) -> tuple[list[str], set[str]]:
        """(kept inputs in order, ids of inputs rejected after generation)."""
        def parse(o):
            if not isinstance(o, dict) or not isinstance(o.get("id"), str):
                raise ValueError("each line needs an 'id'")
            return o

        lines = read_jsonl(self.inputs_path, parse)
        return ([o["input"] for o in lines if isinstance(o.get("input"), str)],
                {o["id"] for o in lines if "rejected" in o})

    def read_heldout(self) -> list[str]:
        """Pseudo inputs set aside for evaluation (lines {"id", "heldout": true}), in the order they were set
        aside; synthesis never makes a record of them."""
        lines = read_jsonl(self.inputs_path, lambda o: o if isinstance(o, dict) else {})
        text = {o["id"]: o["input"] for o in lines if isinstance(o.get("input"), str) and "id" in o}
        out = []
        for o in lines:
            if o.get("heldout") is True and o.get("id") in text and text[o["id"]] not in out:
                out.append(text[o["id"]])
        return out

    def read_input_units(self) -> dict[str, list[str]]:
        """Input id -> the prompt units its generation call aimed at (inputs aimed at none are left out)."""
        lines = read_jsonl(self.inputs_path, lambda o: o if isinstance(o, dict) else {})
        return {o["id"]: list(o["units"]) for o in lines if isinstance(o.get("units"), list) and "id" in o}

    def input_writer(self) -> JsonlAppender:
        return JsonlAppender(self.inputs_path)

    # -- meta -----------------------------------------------------------------------------
    def resumable_meta(self) -> SynthMeta | None:
        """meta.json when there is one; None for a fresh folder; an error for records without their meta.json."""
        meta = self.read_meta()
        if meta is None and self.has_records():
            raise GenpiError(f"{self.path} holds {RECORDS} but no {META}, so it cannot be resumed safely: "
                             "pass a new --out")
        return meta

    def read_meta(self) -> SynthMeta | None:
        raw = read_json(self.meta_path, fix="delete it only if the records beside it came from this same "
                                            "scenario and models, or pass a new --out")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise GenpiError(f"{self.meta_path} is not a JSON object: pass a new --out")
        return SynthMeta.model_validate(raw)

    def write_meta(self, meta: SynthMeta) -> None:
        write_json_atomic(self.meta_path, meta.model_dump(mode="json"))

    # -- the teacher's top-K log-probabilities ------------------------------------------------
    def _teacher_file(self, record_id: str) -> Path:
        return self.teacher_logprobs_dir / (hashlib.sha256(record_id.encode()).hexdigest()[:16] + ".safetensors")

    def write_teacher_logprobs(self, record_id: str, tensors: dict, meta: dict) -> None:
        """Store one record's teacher log-probabilities (tensors named as TEACHER_TENSORS), atomically."""
        from safetensors.torch import save_file

        missing = [k for k in TEACHER_TENSORS if k not in tensors]
        if missing:
            raise ValueError(f"teacher log-probabilities need {', '.join(missing)}")
        self.teacher_logprobs_dir.mkdir(parents=True, exist_ok=True)
        path = self._teacher_file(record_id)
        tmp = path.with_suffix(".tmp")
        save_file({k: tensors[k].contiguous() for k in TEACHER_TENSORS}, str(tmp),
                  metadata={"record": record_id, **{k: str(v) for k, v in meta.items()}})
        tmp.replace(path)

    def read_teacher_logprobs(self, record_id: str, tensors: bool = True) -> tuple[dict, dict] | None:
        """(tensors, metadata) of one record (tensors {} unless asked for), or None when none were stored; a
        damaged file is an error."""
        from safetensors import SafetensorError, safe_open

        path = self._teacher_file(record_id)
        if not path.is_file():
            return None
        want = TEACHER_TENSORS if tensors else ()
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in want}
        except (SafetensorError, OSError, KeyError) as e:
            raise GenpiError(f"{path} is damaged ({str(e).splitlines()[0]}): delete it and rerun 'genpi synth' "
                             "with --teacher-logprobs to store it again") from None
        if meta.get("record") != record_id:
            raise GenpiError(f"{path} belongs to record '{meta.get('record')}', not '{record_id}': delete it "
                             "and rerun 'genpi synth' with --teacher-logprobs")
        return tensors, meta

    def has_teacher_logprobs(self, record_id: str) -> bool:
        return self._teacher_file(record_id).is_file()
