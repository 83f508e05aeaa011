"""``minigpt4-torchrun``: torch's ``torchrun`` (same arguments), except that SIGINT or SIGTERM ends it with
status 130 or 143 and one line instead of the launcher's traceback and status 1. The workers get the
signal from it, as under torchrun, and report what they kept."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence


def run(argv: Sequence[str] | None = None) -> int:
    """Run torchrun with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torch_run

    try:
        torch_run(list(sys.argv[1:] if argv is None else argv))
    except SignalException as e:
        print(f"torchrun: stopped by {signal.Signals(e.sigval).name}; see the ranks' last lines above for what was kept", file=sys.stderr)
        return 128 + int(e.sigval)
    return 0


main = run
