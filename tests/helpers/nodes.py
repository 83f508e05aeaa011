"""Two "nodes" on localhost: free ports, each node's environment and working directory, torchrun
``--nnodes 2`` commands, and running them together."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from minigpt4.utils import dist
from tests.helpers.paths import REPO
from tests.helpers.training import train_env

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def free_ports(n: int) -> list[int]:
    """``n`` different ports that were free a moment ago (all bound at once, so never the same twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def node_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in train_env().items() if not k.startswith("SLURM_") and k not in (*LAUNCH_VARS, dist.IGNORE_SLURM_ENV)}
    return {**env, "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep), **(extra or {})}


def run_nodes(phase: str, commands: list[tuple[list, dict, Path, int]], timeout: int = 300) -> list[str]:
    """Start every (command, env, cwd, umask) at once; wait for all; their outputs (stdout+stderr),
    also kept in ``<cwd>.<phase>.log`` beside each working directory."""
    procs = []
    for cmd, env, cwd, umask in commands:
        cwd.mkdir(parents=True, exist_ok=True)
        log = open(cwd.parent / f"{cwd.name}.{phase}.log", "w+")  # closed below
        procs.append((subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, umask=umask), log))
    outputs = []
    try:
        for proc, _ in procs:
            proc.wait(timeout=timeout)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.seek(0)
            outputs.append(log.read())
            log.close()
    for (cmd, *_), (proc, _), out in zip(commands, procs, outputs):
        assert proc.returncode == 0, f"{cmd[:6]} exited {proc.returncode}:\n{out[-5000:]}"
    return outputs


def torchrun_nodes(args: list, tmp: Path, port: int, launcher: tuple = ("torch.distributed.run",)) -> list[tuple[list, dict, Path, int]]:
    """Node 0 and node 1 of ``--nnodes 2`` (one process each); node 1 writes with umask 077."""
    return [
        (
            [
                sys.executable,
                "-m",
                *launcher,
                "--nnodes",
                "2",
                "--node-rank",
                str(node),
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "static",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                *args,
            ],
            node_env(),
            tmp / f"node{node}",
            0o022 if node == 0 else 0o077,
        )
        for node in (0, 1)
    ]
