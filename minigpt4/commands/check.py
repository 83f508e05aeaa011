"""``minigpt4-check``: the model config's files checked in seconds, without loading the weights; every
problem at once (file and fix), or a one-screen summary and exit status 0."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from minigpt4.config import load_model_config
from minigpt4.download.manifest import BUILTIN, load_manifest
from minigpt4.errors import run_command
from minigpt4.models.preflight import against_manifest, check_model, problems_error


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Check a config's weight, tokenizer and checkpoint files before loading them.")
    ap.add_argument("--cfg-path", required=True, help="a training or evaluation config (its model section is checked)")
    ap.add_argument("--hash", action="store_true", help="compare sizes and sha256 with the manifest's (reads each file once)")
    ap.add_argument(
        "--manifest", default=None, metavar="FILE", help="compare sizes with this manifest's (default with --hash: the built-in one)"
    )
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    cfg = load_model_config(args.cfg_path, args.options)
    report = check_model(cfg)
    listed = [] if args.manifest is None and not args.hash else load_manifest(args.manifest or BUILTIN)
    if problems := report.problems + against_manifest(cfg, listed, args.hash):
        raise problems_error(problems, args.cfg_path)
    for line in report.found:
        print(f"ok  {line}")
    print(f"{args.cfg_path}: model_type {cfg.model_type}, all files fine ({time.perf_counter() - start:.1f} s)")


def run(argv: Sequence[str] | None = None) -> int:
    return run_command(main, argv)
