"""The files of a synthesis folder, written so that a killed run loses nothing and resumes cleanly.

  records.jsonl  one finished record per line, appended and flushed as each is complete
  inputs.jsonl   the pseudo-input pool, in the order kept ({"id", "input"}), plus lines
                 {"id", "rejected": why} for inputs that could not give a complete record
  meta.json      identity (scenario hash, models, settings), counts, filter drops, stage times;
                 rewritten atomically
A partial last line (a run killed mid-write) is cut off when the file is opened again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import GenpiError

RECORD_FIELDS = ("id", "input", "teacher_output", "student_output", "reason", "conversation")


def input_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def valid_record(r: object) -> bool:
    if not isinstance(r, dict) or set(RECORD_FIELDS) - set(r):
        return False
    if not all(isinstance(r[k], str) and r[k].strip() for k in RECORD_FIELDS[:5]):
        return False
    conv = r["conversation"]
    return (isinstance(conv, list) and bool(conv) and conv[0].get("content") == r["teacher_output"]
            and all(isinstance(t, dict) and t.get("role") == ("assistant" if i % 2 == 0 else "user")
                    and isinstance(t.get("content"), str) and t["content"].strip() for i, t in enumerate(conv)))


def read_jsonl(path: Path, keep=lambda obj: True) -> list[dict]:
    """Valid lines of a JSONL file; a partial or invalid last line is truncated away, an invalid line elsewhere is an error."""
    if not path.exists():
        return []
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl == -1:  # no newline after it: written only in part
            break
        line = data[pos:nl]
        if line.strip():
            try:
                obj = json.loads(line)
                ok = keep(obj)
            except ValueError:
                ok = False
            if not ok:
                if data[nl + 1:].strip():
                    lineno = data.count(b"\n", 0, pos) + 1
                    raise GenpiError(f"{path}: line {lineno} is not valid: fix or delete "
                                     "that line, or pass a new --out")
                break
            out.append(obj)
        pos = nl + 1
    good_end = pos
    if good_end < len(data):
        with path.open("r+b") as f:
            f.truncate(good_end)
    return out


class JsonlWriter:
    """Append whole lines, each flushed and synced before the call returns."""

    def __init__(self, path: Path):
        self.f = path.open("a", encoding="utf-8")

    def write(self, obj: dict) -> None:
        self.f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def read_meta(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise GenpiError(f"{path} is not valid JSON: delete it only if the records beside it came from this "
                         "same scenario and models, or pass a new --out")


def write_meta(path: Path, meta: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def check_same_run(old: dict | None, identity: dict, out_dir: Path) -> None:
    """Refuse to mix records of a different scenario, model or settings into one folder."""
    if not old:
        return
    for key, now in identity.items():
        before = old.get("identity", {}).get(key)
        if before != now:
            raise GenpiError(
                f"{out_dir} holds records made with a different {key.replace('_', ' ')} "
                f"({_short(before)} there, {_short(now)} now): rerun with the same scenario, models and "
                "settings to resume, or pass a new --out")


def _short(v) -> str:
    s = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return s if len(s) <= 40 else s[:37] + "..."
