"""SIGINT / SIGTERM during synthesis: stop between writes, never in the middle of one.

`graceful_interrupts()` makes SIGTERM raise KeyboardInterrupt like SIGINT does; inside a
`critical()` block either signal is held until the block ends, so a record is written whole.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class _State:
    depth = 0
    pending = False


def _handler(signum, frame):
    if _State.depth:
        _State.pending = True
        return
    raise KeyboardInterrupt


@contextmanager
def graceful_interrupts():
    """Install the handlers for the duration of a run (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _State.depth, _State.pending = 0, False


@contextmanager
def critical():
    """Hold interrupts until the block is done; raise KeyboardInterrupt after it if one arrived."""
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
    if not _State.depth and _State.pending:
        _State.pending = False
        raise KeyboardInterrupt
