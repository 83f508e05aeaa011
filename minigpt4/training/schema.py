"""Schema of the ``run`` section: training loop, schedule, outputs, evaluation settings."""

from __future__ import annotations

from minigpt4.config.schema import Key, at_least, ignored_key, only

_FROM_LAUNCHER = "the official code overwrites it from the launcher's environment, and here torchrun or SLURM set it"


RUN_SCHEMA: dict[str, Key] = {
    "task": Key(
        "Registered task that builds datasets and runs train/eval steps (captioning; the official name image_text_pretrain is an alias).",
        str,
        "captioning",
    ),
    "runner": Key("Registered runner (epoch_runner; the official name runner_iter is an alias).", str, "epoch_runner"),
    "job_name": Key("Run folder name under output_dir (output_dir/job_name/YYYYmmddHHMMSS).", str, "minigpt4_flickr"),
    "output_dir": Key("Root folder for run folders.", str, "output"),
    "device": Key("Device: auto (cuda when available), cuda or cpu.", str, "auto", choices=("auto", "cuda", "cpu")),
    "seed": Key(
        "Base random seed: the model is built under seed, then rank r reseeds with seed + r; "
        "the data order comes from DistributedSampler(seed=seed) reshuffled every data pass.",
        int,
        42,
    ),
    "max_epoch": Key("Number of epochs (also the length of the lr schedule).", int, 5, check=at_least(1)),
    "stop_after_epoch": Key(
        "Stop after this epoch (0-based) is saved, even if max_epoch is larger; the lr schedule still "
        "spans max_epoch. For time-limited jobs: --resume auto later trains on to max_epoch (a run "
        "resumed past this epoch ignores it). null = run to max_epoch.",
        int,
        None,
        nullable=True,
    ),
    "save_every_steps": Key(
        "Also write a step checkpoint (checkpoint_<epoch>_step_<k>.pth, atomic, resumable with --resume auto to the "
        "same next batch) every N optimizer steps; null = only after each epoch. A stop signal (SIGTERM, SIGINT) "
        "always writes one where the run stops.",
        int,
        None,
        nullable=True,
        check=at_least(1),
    ),
    "keep_step_checkpoints": Key("How many of the newest step checkpoints to keep (older ones are deleted).", int, 2, check=at_least(1)),
    "iters_per_epoch": Key("Optimizer steps per epoch (an endless, per-epoch reshuffled data iterator).", int, 500, check=at_least(1)),
    "batch_size_train": Key("Samples per process per forward pass.", int, 12, check=at_least(1)),
    "batch_size_eval": Key(
        "Images per process per generate call during evaluation; null = 64 on CUDA, 8 on CPU.", int, None, nullable=True, check=at_least(1)
    ),
    "accum_grad_iters": Key("Forward/backward passes accumulated per optimizer step.", int, 1, check=at_least(1)),
    "num_workers": Key("DataLoader worker processes per rank.", int, 4, check=at_least(0)),
    "lr_sched": Key("Registered learning-rate schedule.", str, "linear_warmup_cosine_lr"),
    "init_lr": Key("Peak learning rate (after warmup).", float, 3e-5),
    "min_lr": Key("Final learning rate of the cosine schedule.", float, 1e-5),
    "warmup_lr": Key("Learning rate at step 0 of the warmup.", float, 1e-6),
    "warmup_steps": Key("Linear warmup length in optimizer steps.", int, 200, check=at_least(0)),
    "weight_decay": Key("AdamW weight decay (not applied to biases and 1-D parameters).", float, 0.05),
    "beta1": Key("AdamW beta1.", float, 0.9),
    "beta2": Key("AdamW beta2.", float, 0.999),
    "grad_clip": Key("Clip the gradient norm to this value; null disables clipping.", float, None, nullable=True),
    "amp": Key("Mixed precision on CUDA (bf16 autocast unless amp_dtype says fp16).", bool, True),
    "amp_dtype": Key("Autocast dtype when amp is on: bf16, or fp16 with a GradScaler.", str, "bf16", choices=("bf16", "fp16")),
    "strict_data": Key("Fail on a missing or corrupt image instead of skipping and counting it.", bool, False),
    "resume_ckpt_path": Key(
        "Resume from this training checkpoint (exact step, data order and RNG) into a new run folder; "
        "train.py --resume auto sets it to the newest checkpoint of the job and continues in its folder.",
        str,
        None,
        nullable=True,
        path="file",
    ),
    "tensorboard": Key("Also write TensorBoard scalars to the run folder (needs the tensorboard package).", bool, False),
    "wandb_log": Key(
        "Also log the same scalars and the whole config to Weights & Biases (needs the wandb package), "
        "from rank 0, files under RUN/wandb/.",
        bool,
        False,
    ),
    "wandb_project": Key("Weights & Biases project.", str, "minigpt4"),
    "wandb_name": Key("Weights & Biases run name; null = <job_name>/<run folder name>.", str, None, nullable=True),
    "wandb_mode": Key(
        "Weights & Biases mode: offline needs no network or account (wandb sync uploads later); "
        "null = the WANDB_MODE environment variable, else online.",
        str,
        None,
        nullable=True,
        choices=("online", "offline", "disabled"),
    ),
    "log_freq": Key("Console log line every N optimizer steps (and at the last step of an epoch).", int, 50, check=at_least(1)),
    "dist_backend": Key("torch.distributed backend; auto = nccl on CUDA, gloo on CPU.", str, "auto", choices=("auto", "nccl", "gloo")),
    "feature_cache": Key(
        "Folder of the frozen vision stack's cached output (the Q-Former's [32, 768] per image, about 48 KiB in "
        "16-bit), shared by training runs, evaluations and ranks (on a shared file system for several machines). "
        "Filled on first use, keyed by the image bytes, the image processor, the frozen weights, the query count and "
        "dtype, so nothing stale is served; python -m minigpt4.cli cache fills it ahead of time. Relative to the "
        "working directory; null = run the ViT on every image every time (needed for random crops).",
        str,
        "cache/features",
        nullable=True,
    ),
    "feature_cache_dtype": Key("Dtype the cached features are stored (and then used) in.", str, "fp16", choices=("fp16", "bf16", "fp32")),
    "group_by_length": Key(
        "Training batches of similar caption lengths (less padding in the LLM): windows of 50 global batches sorted "
        "by length, batch order shuffled; seeded and resumable like the plain order.",
        bool,
        True,
    ),
    "peak_tflops": Key(
        "Peak TFLOP/s of one device for the MFU in the logs; null = the dense bf16 peak of a known GPU (by name), no MFU on CPU.",
        float,
        None,
        nullable=True,
    ),
    "max_new_tokens": Key("Evaluation: new tokens generated per caption.", int, 30),
    "num_beams": Key("Evaluation: beam size (1 = greedy).", int, 1),
    # keys of the official configs that have no effect here
    "evaluate": ignored_key(
        "train.py never evaluates during training (evaluate.sh scores every checkpoint afterwards); only false is accepted",
        bool,
        only(False),
    ),
    "train_splits": ignored_key("training uses each datasets entry's train split; only [train] is accepted", list, only(["train"])),
    "world_size": ignored_key(_FROM_LAUNCHER, int),
    "distributed": ignored_key(_FROM_LAUNCHER, bool),
    "dist_url": ignored_key("processes meet through the launcher's environment; only env:// is accepted", str, only("env://")),
    "eval_instruction": Key(
        "Evaluation: the one instruction (containing <ImageHere>) given for every image, so captions do not "
        "depend on sharding; null = the first line of model.prompt_path.",
        str,
        None,
        nullable=True,
    ),
}
