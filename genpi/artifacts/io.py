"""The low-level file I/O every artifact goes through: atomic JSON, append-only JSONL, file hashes.

One policy for JSONL everywhere: lines are appended whole (written, flushed and synced before the
call returns), so only the bytes after the last newline can be a torn write (a run killed while
writing). Readers ignore those bytes; a writer cuts them off before it appends. Every complete
line must be valid: an invalid one is an error that names the file, the line and the fix.
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
        _cut_torn_tail(self.path)
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


def read_jsonl(path: str | Path, parse: Callable[[Any], Any] | None = None,
               fix: str = "fix or delete that line, or pass a new output folder") -> list[Any]:
    """The complete lines of a JSONL file, each through `parse` ([] when there is no file).

    `parse(obj)` returns the value to keep or raises ValueError (a pydantic ValidationError is one)
    when the line is not valid. Bytes after the last newline (a torn write) are ignored, not removed:
    a reader must not cut a file that another process may be appending to.
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    out: list[Any] = []
    end = data.rfind(b"\n") + 1
    for lineno, line in enumerate(data[:end].split(b"\n")[:-1], 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out.append(parse(obj) if parse else obj)
        except (ValueError, UnicodeDecodeError) as e:
            why = _first_line(e)
            raise GenpiError(f"{path}: line {lineno} is not valid ({why}): {fix}")
    return out


def _first_line(e: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        err = e.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "record"
        return f"{where}: {err.get('msg', 'invalid')}"
    text = " ".join(str(e).split())
    return text[:160] or type(e).__name__


def _cut_torn_tail(path: Path) -> None:
    """Remove the bytes after the last newline (left by a killed writer) before appending."""
    if not path.is_file():
        return
    with path.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if not size:
            return
        back = min(size, 1 << 20)
        while True:
            f.seek(size - back)
            chunk = f.read(back)
            nl = chunk.rfind(b"\n")
            if nl != -1:
                keep = size - back + nl + 1
                break
            if back == size:
                keep = 0
                break
            back = min(size, back * 4)
        if keep < size:
            f.truncate(keep)


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
