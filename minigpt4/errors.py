"""One family of errors for problems the user can fix: a bad config, data file, weight file,
command line or environment. Every command prints such an error as one ``error: ...`` line and
exits with status 2 (``minigpt4.cli``); anything else is a bug and keeps its traceback.

The classes also derive from the built-in type they replaced (``ValueError``, ``RuntimeError``),
so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Base: the message says what is wrong, where (file, line, key) and what was expected."""


class ConfigError(UserError, ValueError):
    """One or more problems in a config, each naming key, origin and what is allowed."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            super().__init__(f"invalid config: {self.problems[0]}")
        else:
            super().__init__(f"invalid config ({len(self.problems)} problems):\n  - " + "\n  - ".join(self.problems))


class DataError(UserError, ValueError):
    """Bad annotation, prompt or image data; the message names the file and item/line."""


class ImageLoadError(DataError):
    """A missing or undecodable image met while ``strict`` is on."""


class WeightsError(UserError, ValueError):
    """A weight or checkpoint file that does not match the model (missing/unexpected keys, shapes)."""


class EvalError(UserError, ValueError):
    """Evaluation cannot run as asked (missing checkpoint, empty split, unreadable image, ...)."""


class ScoringSetupError(UserError, RuntimeError):
    """Java or pycocoevalcap is not usable; raised before any caption is generated."""


class TrainingError(UserError, RuntimeError):
    """Training stopped on a condition the user must look at."""


class StorageError(UserError, OSError):
    """A file could not be written (the disk is full); the message names it and the space it needs."""


class ChatError(UserError, ValueError):
    """A chat request that cannot be served (bad setting, image, command, or a context too long)."""


class NonFiniteLossError(TrainingError, FloatingPointError):
    """The loss became NaN or inf; the message names the epoch, step and last good checkpoint."""


def run_command(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """``main(argv)`` with user errors reported as one ``error:`` message and exit status 2 (here, not in
    ``minigpt4.cli``, so that a light command need not import every other one)."""
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
