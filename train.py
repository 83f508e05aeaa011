"""Fine-tune MiniGPT-4's llama_proj from a config.

    python train.py --cfg-path train_configs/minigpt4_flickr_tiny.yaml [--options k=v ...] [--resume auto]
    torchrun --nproc-per-node 2 train.py --cfg-path train_configs/minigpt4_flickr_finetune.yaml

See docs/training.md.
"""
from minigpt4.runners.launch import main

if __name__ == "__main__":
    main()
