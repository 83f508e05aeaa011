"""Fine-tune MiniGPT-4's llama_proj from a config (the same as the ``minigpt4-train`` command).

    python train.py --cfg-path train_configs/minigpt4_flickr_tiny.yaml [--options k=v ...] [--resume auto]
    torchrun --nproc-per-node 2 train.py --cfg-path train_configs/minigpt4_flickr_finetune.yaml

See docs/training.md.
"""

from minigpt4.cli import train

if __name__ == "__main__":
    raise SystemExit(train())
