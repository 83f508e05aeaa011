#!/usr/bin/env python
"""Prepare Flickr30k caption files: ``python prepare_flickr30k.py --root DIR [--out-dir DIR]
[--check-images] [--strict] [--caption-mode separate|concat] [--karpathy-json PATH]``.

See ``minigpt4/datasets/flickr30k_prepare.py`` and docs/data.md.
"""
from minigpt4.datasets.flickr30k_prepare import main

if __name__ == "__main__":
    raise SystemExit(main())
