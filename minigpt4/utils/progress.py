"""Progress bars that suit where the output goes: a live ``tqdm`` bar on a terminal; in a log file or
pipe (``bash quickstart.sh > log``) one plain line every ``LOG_EVERY_S`` seconds instead of the
carriage-return updates a bar would write there.

Use ``progress(...)`` wherever ``tqdm(...)`` would be used; it takes the same arguments.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

LOG_EVERY_S = 10.0  # seconds between two progress lines when the output is not a terminal


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes and closed streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ProgressLines(tqdm):
    """A ``tqdm`` that writes whole lines: at the start, at most every ``LOG_EVERY_S`` seconds, and at
    the end (``epoch 0: 40/40 (100%) [00:05<00:00, 7.9it/s, loss=0.71]``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_line = -float("inf")
        kwargs["leave"] = True  # the last line says how it ended
        kwargs.pop("dynamic_ncols", None)
        super().__init__(*args, **kwargs)

    def line(self) -> str:
        d = self.format_dict
        total, n = d["total"], d["n"]
        elapsed = self.format_interval(d["elapsed"])
        rate = d["rate"] or (n / d["elapsed"] if d["elapsed"] else None)
        unit = d["unit"] or "it"
        rate_txt = f"{rate:.1f} {unit}/s" if rate else f"? {unit}/s"
        if total:
            left = self.format_interval((total - n) / rate) if rate else "?"
            where = f"{n}/{total} ({100 * n / total:.0f}%) [{elapsed}<{left}, {rate_txt}"
        else:
            where = f"{n} [{elapsed}, {rate_txt}"
        postfix = f", {d['postfix']}" if d.get("postfix") else ""
        return f"{d['prefix'] or 'progress'}: {where}{postfix}]"

    def clear(self, nolock: bool = False) -> None:
        """Nothing to clear: ``tqdm.write`` (the log handler) would otherwise write carriage returns."""

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm asks to clear the bar: nothing to clear in a log
            return True
        now = time.monotonic()
        closing = self.disable  # close() sets it before the final display
        if closing or now - self._last_line >= LOG_EVERY_S:
            self._last_line = now
            self.fp.write(self.line() + ("" if closing else "\n"))  # close() adds the final newline
            self.fp.flush()
        return True


def progress(*args: Any, **kwargs: Any) -> tqdm:
    """``tqdm(*args, **kwargs)`` on a terminal, ``ProgressLines(*args, **kwargs)`` otherwise (the stream
    is ``kwargs["file"]``, default stderr)."""
    stream = kwargs.get("file") or sys.stderr
    return (tqdm if is_terminal(stream) else ProgressLines)(*args, **kwargs)


def quiet_library_bars() -> None:
    """Off a terminal, turn off the progress bars of transformers and huggingface_hub (loading and
    saving weights): our own log lines say what was loaded."""
    if is_terminal(sys.stderr):
        return
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    disable_progress_bars()
