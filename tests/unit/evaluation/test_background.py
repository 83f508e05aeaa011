"""BackgroundJobs: the evaluation's scoring thread (jobs in order, errors surface, close drops the rest)."""

from __future__ import annotations

import threading
import time

import pytest

from minigpt4.evaluation.background import BackgroundJobs


def test_jobs_run_in_order_in_one_other_thread():
    done, threads = [], set()

    def job(i: int):
        def run():
            time.sleep(0.01 * (3 - i))  # later jobs are quicker: order must come from the queue
            threads.add(threading.current_thread().name)
            done.append(i)

        return run

    with BackgroundJobs() as jobs:
        for i in range(3):
            jobs.submit(job(i))
        jobs.wait()
    assert done == [0, 1, 2]
    assert len(threads) == 1 and threading.current_thread().name not in threads


def test_an_error_surfaces_at_the_next_submit_or_wait():
    def fail():
        raise RuntimeError("METEOR died")

    jobs = BackgroundJobs()
    jobs.submit(fail)
    time.sleep(0.2)
    with pytest.raises(RuntimeError, match="METEOR died"):
        jobs.submit(lambda: None)  # a broken scorer stops the work before more is generated
    jobs.close()

    with BackgroundJobs() as jobs, pytest.raises(RuntimeError, match="METEOR died"):
        jobs.submit(fail)
        jobs.wait()


def test_close_finishes_the_running_job_and_drops_the_rest():
    started, finished = threading.Event(), []

    def slow():
        started.set()
        time.sleep(0.3)
        finished.append("slow")

    jobs = BackgroundJobs()
    jobs.submit(slow)
    jobs.submit(lambda: finished.append("pending"))
    started.wait(5)
    jobs.close()  # as on Ctrl-C: the running result is kept, the queued one is never started
    assert finished == ["slow"]
    jobs.close()  # idempotent
