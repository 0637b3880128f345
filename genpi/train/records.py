"""Read DATA_DIR/records.jsonl (written by `genpi synth`) into validated records."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import GenpiError

RECORDS_FILE = "records.jsonl"
META_FILE = "meta.json"


@dataclass(frozen=True)
class Record:
    id: str
    input: str
    teacher_output: str
    student_output: str
    reason: str
    conversation: tuple[dict, ...]  # agent first, then alternating environment / agent turns


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_records(data_dir: str | Path) -> list[Record]:
    """Parse and check every line; a bad line is an error naming the line and the fix."""
    path = Path(data_dir) / RECORDS_FILE
    if not path.is_file():
        raise GenpiError(f"'{data_dir}' holds no {RECORDS_FILE}: pass a folder written by 'genpi synth'")
    out, seen = [], set()
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            raw = json.loads(line)
        except ValueError:
            if n >= len(lines) - 1:  # a half-written last line from a killed synth run
                continue
            raise GenpiError(f"{where} is not valid JSON: rerun 'genpi synth' to repair the data folder")
        out.append(_record(raw, where))
        if out[-1].id in seen:
            raise GenpiError(f"{where}: record id '{out[-1].id}' is repeated: each record needs a unique id")
        seen.add(out[-1].id)
    if not out:
        raise GenpiError(f"{path} has no records: run 'genpi synth' first (or with a larger --num-inputs)")
    return out


def _record(raw, where: str) -> Record:
    if not isinstance(raw, dict):
        raise GenpiError(f"{where}: a record must be a JSON object")
    for key in ("id", "input", "teacher_output"):
        if not isinstance(raw.get(key), (str, int)) or not str(raw.get(key)).strip():
            raise GenpiError(f"{where}: record has no '{key}': every record needs id, input and teacher_output")
    conv = raw.get("conversation") or [{"role": "assistant", "content": raw["teacher_output"]}]
    if not isinstance(conv, list):
        raise GenpiError(f"{where}: 'conversation' must be a list of {{role, content}} turns")
    turns = []
    for i, t in enumerate(conv):
        want = "assistant" if i % 2 == 0 else "user"
        if not isinstance(t, dict) or t.get("role") != want or not isinstance(t.get("content"), str):
            raise GenpiError(f"{where}: conversation turn {i} must be {{\"role\": \"{want}\", \"content\": str}} "
                             "(the agent speaks first, then turns alternate)")
        turns.append({"role": want, "content": t["content"]})
    while turns and turns[-1]["role"] == "user":  # a trailing environment turn teaches nothing
        turns.pop()
    return Record(id=str(raw["id"]), input=str(raw["input"]), teacher_output=str(raw["teacher_output"]),
                  student_output=str(raw.get("student_output") or ""), reason=str(raw.get("reason") or "").strip(),
                  conversation=tuple(turns))


def load_meta(data_dir: str | Path) -> dict:
    p = Path(data_dir) / META_FILE
    if not p.is_file():
        return {}
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except ValueError:
        raise GenpiError(f"{p} is not valid JSON: rerun 'genpi synth' or delete it")
    return meta if isinstance(meta, dict) else {}
