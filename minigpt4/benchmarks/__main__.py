"""``python -m minigpt4.benchmarks {cpu,full,memory,stream} ...``: see ``minigpt4.benchmarks``."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from minigpt4.errors import run_command

from . import cpu, full, memory, stream


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m minigpt4.benchmarks", description="Training and evaluation throughput through the real commands."
    )
    sub = ap.add_subparsers(dest="benchmark", required=True)
    cpu.add_arguments(sub.add_parser("cpu", help="stand-in size on the CPU: feature cache, length grouping, evaluation of k checkpoints"))
    full.add_arguments(
        sub.add_parser("full", help="official sizes with random weights (a GPU): samples/s, peak memory, MFU, evaluation images/s")
    )
    memory.add_arguments(
        sub.add_parser(
            "memory",
            help="official sizes on a CPU: the GPU memory of a training step, "
            "projection only vs LoRA (weights exact, activations measured)",
        )
    )
    stream.add_arguments(
        sub.add_parser("stream", help="the stage-1 streaming loader's images/s per worker and the cost of a step checkpoint")
    )
    return ap


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    command = shlex.join(["python", "-m", "minigpt4.benchmarks", *argv])
    {"cpu": cpu, "full": full, "memory": memory, "stream": stream}[args.benchmark].main(args, command)


if __name__ == "__main__":
    raise SystemExit(run_command(main))
