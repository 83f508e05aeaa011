#!/usr/bin/env python
"""Prepare Flickr30k caption files (the same as the ``minigpt4-prepare`` command):
``python prepare_flickr30k.py --root DIR [--out-dir DIR] [--check-images] [--strict]
[--caption-mode separate|concat] [--karpathy-json PATH]``. See docs/data.md.
"""

from minigpt4.cli import prepare

if __name__ == "__main__":
    raise SystemExit(prepare())
