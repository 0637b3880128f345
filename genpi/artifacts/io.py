"""The low-level file I/O every artifact goes through: atomic JSON, append-only JSONL, file hashes.

One policy for JSONL everywhere: lines are appended whole (written, flushed and synced before the
call returns); a last line that a killed run left without its newline, or that is not valid JSON,
is a torn write and is cut off the file when it is next read; an invalid line anywhere else is an
error that names the line and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import GenpiError


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """Write `data` as JSON to `path` through a temporary file and a rename: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_json(path: str | Path, fix: str = "delete it or pass a new output folder") -> Any | None:
    """The JSON in `path`, or None when there is no such file; unreadable JSON is a GenpiError."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise GenpiError(f"{path} is not valid JSON: {fix}")


class JsonlAppender:
    """Append whole JSON lines to one file, each flushed and synced before `write` returns."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")

    def write(self, obj: Any) -> None:
        self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one whole line (see JsonlAppender for many)."""
    with JsonlAppender(path) as w:
        w.write(obj)


def read_jsonl(path: str | Path, keep: Callable[[Any], bool] | None = None,
               fix: str = "fix or delete that line, or pass a new output folder") -> list[Any]:
    """The lines of a JSONL file as objects ([] when there is no file).

    `keep(obj)` says whether a parsed line is valid. A torn last line (no newline after it, or not
    valid) is cut off the file; an invalid line before the last is a GenpiError naming it and `fix`.
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    out: list[Any] = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl == -1:  # no newline after it: written only in part
            break
        line = data[pos:nl]
        if line.strip():
            try:
                obj = json.loads(line)
                ok = keep is None or bool(keep(obj))
            except (ValueError, UnicodeDecodeError):
                ok = False
            if not ok:
                if data[nl + 1:].strip():
                    lineno = data.count(b"\n", 0, pos) + 1
                    raise GenpiError(f"{path}: line {lineno} is not valid: {fix}")
                break
            out.append(obj)
        pos = nl + 1
    if pos < len(data):
        with path.open("r+b") as f:
            f.truncate(pos)
    return out


def write_jsonl_atomic(path: str | Path, rows: list[Any]) -> Path:
    """Replace a JSONL file as a whole (for a store compacted to one run's rows)."""
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def rename_aside(path: str | Path, tag: str) -> Path:
    """Move `path` to NAME.<tag>.EXT beside it (NAME.<tag>.2.EXT, ... when taken): nothing is overwritten."""
    path = Path(path)
    n = 1
    while True:
        target = path.with_name(f"{path.stem}.{tag}{f'.{n}' if n > 1 else ''}{path.suffix}")
        if not target.exists():
            path.rename(target)
            return target
        n += 1


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def text_sha256(obj: Any) -> str:
    """Hex SHA-256 of a JSON-serialisable value (keys sorted): the key of hash-keyed stores."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
