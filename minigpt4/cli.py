"""The console commands (``[project.scripts]`` in pyproject.toml; ``train.py``, ``prepare_flickr30k.py``
and ``eval_scripts/eval_flickr30k.py`` are shims over the same functions). Without installing the
scripts: ``python -m minigpt4.cli COMMAND ARGS`` with a command of ``COMMANDS`` (also under ``torchrun -m``).

This module only dispatches: each command lives in ``minigpt4.commands.<module>``, imported when it runs,
so that a command (and the torchrun launcher, which starts the workers) loads only what it uses: not
matplotlib for training, nor torch for ``--help``.

A ``UserError`` (bad config, data, weights, command line or environment) is printed as ``error: ...``
on stderr with exit status 2, with no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from minigpt4.errors import EXIT_USER_ERROR

# command name -> module of minigpt4.commands (its ``run(argv)`` returns the exit status)
COMMANDS = {
    "train": "train",
    "eval": "evaluate",
    "caption": "caption",
    "prepare": "prepare",
    "summary": "summary",
    "cache": "cache",
    "export": "export",
    "torchrun": "torchrun",
    "random-stack": "random_stack",
    "shards": "shards",
    "chat": "chat",
    "demo": "demo",
    "check": "check",
    "download": "download",
}


def run(command: str, argv: Sequence[str] | None = None) -> int:
    """The exit status of ``command`` run with ``argv`` (default: ``sys.argv[1:]``)."""
    return importlib.import_module(f"minigpt4.commands.{COMMANDS[command]}").run(argv)


def train(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-train`` / ``train.py``: fine-tune as configured (one process or torchrun)."""
    return run("train", argv)


def evaluate(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-eval`` / ``evaluate.sh`` / ``eval_scripts/eval_flickr30k.py``: caption and score."""
    return run("eval", argv)


def caption(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-caption``: caption image files as the evaluation would (``path<TAB>caption`` on stdout);
    exit status 1 when an image could not be read (the others are captioned)."""
    return run("caption", argv)


def prepare(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-prepare`` / ``prepare_flickr30k.py``: write the per-split Flickr30k annotation files."""
    return run("prepare", argv)


def summarise(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-summary``: rewrite a run's eval/summary.{csv,md,png} from its metrics.json files."""
    return run("summary", argv)


def cache(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-cache``: fill run.feature_cache for a config's images ahead of time (resumable)."""
    return run("cache", argv)


def export(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-export``: a checkpoint as a merged Hugging Face LLM (LoRA folded in) + llama_proj.pth."""
    return run("export", argv)


def torchrun(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-torchrun``: torch's ``torchrun`` (same arguments); SIGINT or SIGTERM end it with status
    130 or 143 and one line instead of the launcher's traceback and status 1."""
    return run("torchrun", argv)


def random_stack(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-random-stack``: a random MiniGPT-4 stack at an official size, in the official file
    formats, to measure GPU memory and time before downloading the weights."""
    return run("random-stack", argv)


def chat(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-chat``: talk to a model about images in the terminal (one line per answer when piped)."""
    return run("chat", argv)


def demo(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-demo``: the web demo (gradio, 127.0.0.1): chat, and a run's checkpoints side by side."""
    return run("demo", argv)


def check(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-check``: a config's weight, tokenizer and checkpoint files checked without loading them."""
    return run("check", argv)


def download(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-download``: fetch and verify a variant's weights (and Flickr30k), resumably."""
    return run("download", argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minigpt4.cli COMMAND ARGS``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m minigpt4.cli {{{','.join(COMMANDS)}}} ARGS (--help for each)", file=sys.stderr)
        return EXIT_USER_ERROR
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())


def shards(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-shards``: write webdataset shards (img2dataset's layout) from a caption JSON or CSV."""
    return run("shards", argv)
