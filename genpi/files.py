"""Writing folders so that a killed run never leaves a half-written one behind."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable


def write_dir_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp)` on a fresh folder beside `target`, then swap it into place (replacing `target`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
