"""The console commands (``[project.scripts]`` in pyproject.toml; ``train.py``, ``prepare_flickr30k.py``
and ``eval_scripts/eval_flickr30k.py`` are shims over the same functions). Without installing the
scripts: ``python -m minigpt4.cli {train,eval,caption,prepare,summary,cache,export,torchrun} ARGS`` (also under
``torchrun -m``).

A ``UserError`` (bad config, data, weights, command line or environment) is printed as ``error: ...``
on stderr with exit status 2, with no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from minigpt4.errors import EXIT_USER_ERROR, run_command

# Each command imports its module when it runs, so that a command (and the torchrun launcher, which
# starts the workers) loads only what it uses: not matplotlib for training, nor torch for `--help`.


def train(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-train`` / ``train.py``: fine-tune as configured (one process or torchrun)."""
    from minigpt4.training import launch

    return run_command(launch.main, argv)


def evaluate(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-eval`` / ``evaluate.sh`` / ``eval_scripts/eval_flickr30k.py``: caption and score."""
    from minigpt4.evaluation import job

    return run_command(job.main, argv)


def caption(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-caption``: caption image files as the evaluation would (``path<TAB>caption`` on stdout);
    exit status 1 when an image could not be read (the others are captioned)."""
    from minigpt4.evaluation import caption_images

    status: list[int] = []
    return run_command(lambda a: status.append(caption_images.main(a)), argv) or status[0]


def prepare(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-prepare`` / ``prepare_flickr30k.py``: write the per-split Flickr30k annotation files."""
    from minigpt4.datasets import flickr30k_prepare

    return run_command(flickr30k_prepare.main, argv)


def summarise(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-summary``: rewrite a run's eval/summary.{csv,md,png} from its metrics.json files."""
    from minigpt4.evaluation import summary

    return run_command(summary.main, argv)


def cache(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-cache``: fill run.feature_cache for a config's images ahead of time (resumable)."""
    from minigpt4.training import fill_cache

    return run_command(fill_cache.main, argv)


def export(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-export``: a checkpoint as a merged Hugging Face LLM (LoRA folded in) + llama_proj.pth."""
    from minigpt4.models import export as export_job

    return run_command(export_job.main, argv)


def torchrun(argv: Sequence[str] | None = None) -> int:
    """``minigpt4-torchrun``: torch's ``torchrun`` (same arguments), except that SIGINT or SIGTERM ends
    it with status 130 or 143 and one line instead of the launcher's traceback and status 1. The
    workers get the signal from it, as under torchrun, and report what they kept."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torch_run

    try:
        torch_run(list(sys.argv[1:] if argv is None else argv))
    except SignalException as e:
        print(f"torchrun: stopped by {signal.Signals(e.sigval).name}; see the ranks' last lines above for what was kept", file=sys.stderr)
        return 128 + int(e.sigval)
    return 0


COMMANDS = {
    "train": train,
    "eval": evaluate,
    "caption": caption,
    "prepare": prepare,
    "summary": summarise,
    "cache": cache,
    "export": export,
    "torchrun": torchrun,
}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minigpt4.cli COMMAND ARGS``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m minigpt4.cli {{{','.join(COMMANDS)}}} ARGS (--help for each)", file=sys.stderr)
        return EXIT_USER_ERROR
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
