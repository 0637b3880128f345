"""Whether a synthesis folder may be resumed by this run: its meta.json identity must match.

The folder's files themselves are read and written through genpi.artifacts.DataDir.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import GenpiError


def check_same_run(old, identity: dict, out_dir: Path, aliases: dict[str, str] | None = None) -> None:
    """Refuse to mix records of a different scenario, model or settings into one folder (old: SynthMeta or None).

    aliases: {a value the folder may hold: the value it stands for today}, e.g. a model fingerprint as an older
    genpi computed it (genpi.models.fingerprint_aliases)."""
    if old is None:
        return
    for key, now in identity.items():
        before = _read_through(old.identity.get(key), aliases or {})
        if before != now:
            raise GenpiError(
                f"{out_dir} holds records made with a different {key.replace('_', ' ')} "
                f"({_short(before)} there, {_short(now)} now): rerun with the same scenario, models and "
                "settings to resume, or pass a new --out")


def _read_through(v, aliases: dict[str, str]):
    if isinstance(v, str):
        return aliases.get(v, v)
    if isinstance(v, dict):
        return {k: _read_through(x, aliases) for k, x in v.items()}
    if isinstance(v, list):
        return [_read_through(x, aliases) for x in v]
    return v


def _short(v) -> str:
    s = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return s if len(s) <= 40 else s[:37] + "..."
