"""Scoring in the background: while every rank generates the captions of the next checkpoint, rank 0
scores the previous one and writes its files in one worker thread.

Scoring is mostly waiting on Java subprocesses (the PTB tokenizer, METEOR), so it overlaps generation
well: the METEOR start-up (several seconds) is no longer waited for before the second checkpoint is
generated, and on a GPU the scoring of every checkpoint but the last costs no time. Jobs run one at a
time, in the order submitted, so results are written in checkpoint order.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundJobs:
    """One worker thread that runs submitted jobs in order; errors surface in the caller's thread."""

    def __init__(self, name: str = "scoring") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._futures: list[Future] = []

    def submit(self, job: Callable[[], object]) -> None:
        """Queue ``job``; first re-raises the error of a job that already failed."""
        self.raise_errors()
        self._futures.append(self._pool.submit(job))

    def raise_errors(self) -> None:
        """Re-raise the error of the first finished job that failed (so a broken scorer stops the work early)."""
        for f in self._futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()

    def wait(self) -> None:
        """Wait for every queued job, in order; re-raises the first error."""
        while self._futures:
            self._futures[0].result()
            self._futures.pop(0)

    def close(self) -> None:
        """Drop the jobs not yet started and wait for the running one (its result is kept); idempotent.
        Call it on every way out, after ``wait()`` on success."""
        for f in self._futures:
            f.cancel()
        self._pool.shutdown(wait=True)
        self._futures.clear()

    def __enter__(self) -> BackgroundJobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
