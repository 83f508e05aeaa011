"""The process layout of a SLURM job step (``srun python train.py ...``), read from SLURM's variables.

``srun`` starts one task per process and tells each its place: ``SLURM_PROCID`` (global rank),
``SLURM_NTASKS`` (world size), ``SLURM_LOCALID`` (rank on its node). The rendezvous address is not
given, so ``MASTER_ADDR`` defaults to the first host of the step's node list (task 0 runs there)
and ``MASTER_PORT`` to :func:`default_master_port` of the job id. Pure functions of an environment
mapping; :func:`minigpt4.utils.dist.init_distributed` applies them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from minigpt4.errors import UserError

BASE_PORT = 29500  # torchrun's default port
PORT_SPAN = 1000  # MASTER_PORT default: BASE_PORT + SLURM_JOB_ID % PORT_SPAN
NODELIST_VARS = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")  # the first one set is used
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


class LaunchEnvError(UserError, ValueError):
    """A malformed launcher variable (torchrun's or SLURM's); the message names it."""


@dataclass(frozen=True)
class SlurmLayout:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


def env_int(env: Mapping[str, str], name: str, default: int | None = None, minimum: int = 0) -> int:
    """``env[name]`` as an integer ``>= minimum`` (``default`` when unset or empty)."""
    value = env.get(name, "")
    if value.strip() == "":
        if default is None:
            raise LaunchEnvError(f"environment variable {name} is not set")
        return default
    try:
        number = int(value)
    except ValueError:
        raise LaunchEnvError(f"environment variable {name}={value!r}: expected an integer") from None
    if number < minimum:
        raise LaunchEnvError(f"environment variable {name}={value!r}: expected an integer >= {minimum}")
    return number


def _split_top_level(spec: str, var: str) -> list[str]:
    """``a[1-2,4],b`` -> ``["a[1-2,4]", "b"]``: commas outside brackets separate host expressions."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(spec):
        if ch == "[":
            depth += 1
            if depth > 1:
                raise LaunchEnvError(f"{var}={spec!r}: nested '[' at position {i}")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise LaunchEnvError(f"{var}={spec!r}: ']' without '[' at position {i}")
        elif ch == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    if depth:
        raise LaunchEnvError(f"{var}={spec!r}: '[' without ']'")
    parts.append(spec[start:])
    return parts


def _expand_ranges(body: str, spec: str, var: str) -> list[str]:
    """``01-03,07`` -> ``["01", "02", "03", "07"]`` (zero padding kept, as Slurm does)."""
    out = []
    for item in body.split(","):
        m = _RANGE.match(item.strip())
        if not m:
            raise LaunchEnvError(f"{var}={spec!r}: bad range {item!r} in [{body}] (expected N or N-M)")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if int(hi) < int(lo):
            raise LaunchEnvError(f"{var}={spec!r}: range {item!r} ends before it starts")
        width = len(lo)
        out.extend(str(n).zfill(width) for n in range(int(lo), int(hi) + 1))
    return out


def _expand_host(expr: str, spec: str, var: str) -> list[str]:
    """One host expression, possibly with several bracket groups: ``r[1-2]n[1,3]`` -> 4 hosts."""
    if "[" not in expr:
        if "]" in expr or not expr:
            raise LaunchEnvError(f"{var}={spec!r}: bad host name {expr!r}")
        return [expr]
    prefix, _, rest = expr.partition("[")
    body, _, suffix = rest.partition("]")
    tails = _expand_host(suffix, spec, var) if suffix else [""]
    return [prefix + n + t for n in _expand_ranges(body, spec, var) for t in tails]


def expand_nodelist(spec: str, var: str = "SLURM_JOB_NODELIST") -> list[str]:
    """Slurm's compressed host list as host names: ``node[01-03,07]`` -> node01 node02 node03 node07,
    ``gpu-a[1,3],login`` -> gpu-a1 gpu-a3 login. A malformed list is a ``LaunchEnvError`` naming ``var``."""
    spec = spec.strip()
    if not spec:
        raise LaunchEnvError(f"environment variable {var} is empty")
    return [h for expr in _split_top_level(spec, var) for h in _expand_host(expr.strip(), spec, var)]


def first_host(spec: str, var: str = "SLURM_JOB_NODELIST") -> str:
    """The first host of a node list; ``scontrol show hostnames`` decides forms this parser rejects."""
    try:
        return expand_nodelist(spec, var)[0]
    except LaunchEnvError:
        scontrol = shutil.which("scontrol")
        if scontrol is None:
            raise
        try:
            proc = subprocess.run([scontrol, "show", "hostnames", spec], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            proc = None
        hosts = proc.stdout.split() if proc is not None and proc.returncode == 0 else []
        if not hosts:
            raise
        return hosts[0]


def default_master_port(job_id: int | None) -> int:
    """``29500 + SLURM_JOB_ID % 1000`` (29500 without a job id): two jobs sharing a node rarely collide."""
    return BASE_PORT if job_id is None else BASE_PORT + job_id % PORT_SPAN


def in_slurm_step(env: Mapping[str, str]) -> bool:
    """True when SLURM's task variables are there (``SLURM_PROCID`` and ``SLURM_NTASKS``)."""
    return all(env.get(k, "").strip() for k in ("SLURM_PROCID", "SLURM_NTASKS"))


def slurm_layout(env: Mapping[str, str], gpus_per_node: int = 1) -> SlurmLayout:
    """Rank, world size, local rank and rendezvous address of this task of a SLURM step.

    ``SLURM_LOCALID`` missing: ``rank % gpus_per_node`` (what the official MiniGPT-4/LAVIS code uses).
    ``MASTER_ADDR``/``MASTER_PORT`` already set win over the defaults."""
    world_size = env_int(env, "SLURM_NTASKS", minimum=1)
    rank = env_int(env, "SLURM_PROCID")
    if rank >= world_size:
        raise LaunchEnvError(f"environment variable SLURM_PROCID={rank} is not below SLURM_NTASKS={world_size}")
    local_rank = env_int(env, "SLURM_LOCALID", default=rank % max(1, gpus_per_node))
    addr = env.get("MASTER_ADDR", "").strip()
    if not addr:
        var = next((v for v in NODELIST_VARS if env.get(v, "").strip()), None)
        if var is None:
            if world_size > 1:
                raise LaunchEnvError(
                    f"SLURM_NTASKS={world_size} but neither MASTER_ADDR nor {' / '.join(NODELIST_VARS)} "
                    "is set: cannot tell where task 0 runs"
                )
            addr = "127.0.0.1"
        else:
            addr = first_host(env[var], var)
    if env.get("MASTER_PORT", "").strip():
        port = env_int(env, "MASTER_PORT", minimum=1)
    else:
        job_id = env_int(env, "SLURM_JOB_ID", default=-1)
        port = default_master_port(None if job_id < 0 else job_id)
    if port > 65535:
        raise LaunchEnvError(f"environment variable MASTER_PORT={port}: not a TCP port (1-65535)")
    return SlurmLayout(rank, world_size, local_rank, addr, port)
