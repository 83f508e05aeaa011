#!/usr/bin/env python
"""Prepare Flickr30k caption files (the same as the ``minigpt4-prepare`` command):
``python prepare_flickr30k.py --root DIR [--out-dir DIR] [--check-images] [--strict]
[--caption-mode separate|concat] [--karpathy-json PATH]``. See docs/data.md.
"""

from minigpt4.datasets.flickr30k_prepare import main
from minigpt4.errors import run_command

if __name__ == "__main__":  # as minigpt4.cli.prepare, without importing the other commands
    raise SystemExit(run_command(main))
