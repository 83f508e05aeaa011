"""SIGINT (Ctrl-C) and SIGTERM (what schedulers send before they kill a job) as one exception.

``with stop_signals():`` turns either signal into ``Interrupted`` (a ``KeyboardInterrupt``), raised at
once, except inside ``with deferred():`` where it is only recorded (``requested()``), so that the
training loop can stop every rank at the same step boundary. A second signal while one is pending
raises at once. Only the process that installed the handlers reacts (forked DataLoader workers
ignore both signals and are shut down by their parent).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``exit_code`` is the shell's 128 + signal number (130, 143)."""

    def __init__(self, signum: int, where: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + self.signum
        self.where = where  # e.g. "epoch 1 step 3", set by whoever stopped


_state = {"pid": None, "deferring": False, "pending": None}


def _handler(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _state["pid"]:
        return  # a forked worker: its parent handles the signal
    if _state["deferring"] and _state["pending"] is None:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Handle SIGINT and SIGTERM as ``Interrupted`` in this block (restores the old handlers after)."""
    old = {s: signal.getsignal(s) for s in HANDLED}
    _state.update(pid=os.getpid(), deferring=False, pending=None)
    for s in HANDLED:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _state.update(pid=None, deferring=False, pending=None)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Record (do not raise) the first signal in this block; check it with ``requested()``."""
    previous = _state["deferring"]
    _state["deferring"] = True
    try:
        yield
    finally:
        _state["deferring"] = previous


def requested() -> int | None:
    """The signal number received inside ``deferred()`` and not yet acted on, else None."""
    return _state["pending"]
