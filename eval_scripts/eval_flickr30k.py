#!/usr/bin/env python
"""Caption a Flickr30k split with MiniGPT-4 checkpoints and score the captions (BLEU, METEOR, ROUGE-L, CIDEr);
the same as ``minigpt4-eval`` without a run folder.

    python eval_scripts/eval_flickr30k.py --cfg-path eval_configs/minigpt4_flickr_eval.yaml \
        --ckpt pretrained --ckpt output/RUN/checkpoint_0.pth --save-path output/RUN/eval [--limit N]
    torchrun --nproc-per-node 2 eval_scripts/eval_flickr30k.py ...   # same captions, sharded

Writes <save-path>/<name>/captions.json and metrics.json per checkpoint. See docs/evaluation.md.
"""

from minigpt4.cli import evaluate

if __name__ == "__main__":
    raise SystemExit(evaluate())
