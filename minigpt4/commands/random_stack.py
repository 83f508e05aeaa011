"""``minigpt4-random-stack``: a random MiniGPT-4 stack in the official file formats at an official size, to
measure GPU memory and time before downloading the real weights; prints the ``model.*`` options to use it.

    minigpt4-random-stack --size vicuna-7b --device cuda --out weights/random-vicuna-7b \\
        --captions data/flickr30k/flickr30k_train.json

``python -m minigpt4.testing.stacks`` is the same command with the tests' tiny sizes (its default).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from minigpt4.datasets import read_caption_json
from minigpt4.errors import DataError, run_command
from minigpt4.models.sizes import SIZE_ALIASES, SIZES, canonical_size

DEFAULT_SIZE = "vicuna-7b"


def size_argument(text: str) -> str:
    """``--size``: a size of ``SIZES``; an earlier name is accepted with a note on stderr."""
    if text in SIZE_ALIASES:
        print(f"note: --size {text} is now called {canonical_size(text)}", file=sys.stderr)
    return canonical_size(text)


def read_captions(ann_path: str) -> list[str]:
    """Every caption of a prepared annotation file (``flickr30k_train.json`` layout)."""
    try:
        return [c for record in read_caption_json(ann_path) for c in record.captions]
    except DataError as e:
        raise DataError(f"--captions {ann_path}: expected a prepared annotation file (as prepare_flickr30k.py writes): {e}") from None


def parse_args(argv: Sequence[str] | None = None, default_size: str = DEFAULT_SIZE, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description="Write a random MiniGPT-4 stack in the official file formats.")
    parser.add_argument("--out", required=True, help="output folder")
    tiny = [s for s in SIZES if s.startswith("tiny")]
    parser.add_argument(
        "--size",
        type=size_argument,
        choices=sorted(SIZES),
        default=default_size,
        help=(f"{' / '.join(tiny)} (tests), or " if tiny else "")
        + "the official sizes to measure a GPU: vicuna-7b (= vicuna0, ~16 GB of files), vicuna-13b (~28 GB), "
        f"llama2-7b (~15 GB, no Q-Former); default {default_size}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", help="text file (one sentence per line) to train the tokenizer on")
    parser.add_argument(
        "--captions",
        help="prepared annotation file whose captions train the tokenizer, so captions take about as many tokens as with the real one",
    )
    parser.add_argument("--device", default="cpu", help="where the LLM is created (cuda is much faster)")
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> dict[str, str]:
    """Build the stack of the parsed command line; prints ``model.KEY=PATH`` per file; returns those paths."""
    corpus = Path(args.corpus).read_text().splitlines() if args.corpus else []
    corpus += read_captions(args.captions) if args.captions else []
    if args.size != "tiny" and not corpus:
        print("note: no --captions: the tokenizer is trained on a few sentences, so captions take more tokens than with the real one")
    from minigpt4.models.random_stack import build_random_stack  # transformers: not needed for --help

    paths = build_random_stack(args.out, args.size, args.seed, corpus, args.device)
    for key, path in paths.items():
        print(f"model.{key}={path}")
    return paths


def main(argv: Sequence[str] | None = None) -> dict[str, str]:
    """The command: ``build(parse_args(argv))``."""
    return build(parse_args(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """The exit status of ``main(argv)``."""
    return run_command(main, argv)
