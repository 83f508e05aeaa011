"""Subprocesses of the tests: run one to success, or interrupt one when its output says so."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.paths import REPO


def subprocess_env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}


def torchrun(nproc: int, *args) -> list:
    """The command line running ``args`` (a script or ``-m module``, then its arguments) under
    ``torchrun --standalone`` with ``nproc`` CPU processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]


def run_ok(cmd: list[str], cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def interrupt_when(
    cmd: list, log_path: Path, pattern: str, sig: int, env: dict, to_group: bool = False, timeout: float = 180
) -> tuple[int, str, float]:
    """Run ``cmd`` (output to ``log_path``), send ``sig`` once ``pattern`` appears in its output (to
    its whole process group with ``to_group``); returns (exit status, output, seconds it took to stop).

    SIGINT is reset to its default in the child: a shell that started the test suite in the
    background ignores it, and Python would then never see it."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.time() + timeout
            while not re.search(pattern, log_path.read_text()):
                assert proc.poll() is None, f"{cmd[:4]} ended early:\n{log_path.read_text()[-3000:]}"
                assert time.time() < deadline, f"{pattern!r} never appeared:\n{log_path.read_text()[-3000:]}"
                time.sleep(0.02)
            os.killpg(proc.pid, sig) if to_group else proc.send_signal(sig)
            sent = time.time()
            rc = proc.wait(timeout=90)
            return rc, log_path.read_text(), time.time() - sent
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
