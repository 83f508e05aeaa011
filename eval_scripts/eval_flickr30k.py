#!/usr/bin/env python
"""Caption a Flickr30k split with MiniGPT-4 checkpoints and score the captions (BLEU, METEOR, ROUGE-L, CIDEr).

    python eval_scripts/eval_flickr30k.py --cfg-path eval_configs/minigpt4_flickr_eval.yaml \
        --ckpt pretrained --ckpt output/RUN/checkpoint_0.pth --save-path output/RUN/eval [--limit N]
    torchrun --nproc-per-node 2 eval_scripts/eval_flickr30k.py ...   # same captions, sharded

Writes <save-path>/<name>/captions.json and metrics.json per checkpoint. See docs/evaluation.md.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from minigpt4.evaluation.caption_eval import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
