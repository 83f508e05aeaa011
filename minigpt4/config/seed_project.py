"""Configs of the seed project (the MiniGPT-4 Flickr30k course project this framework replaces:
``train_configs/minigpt4_flickr_finetune.yaml``, ``eval_configs/minigpt4_flickr_eval.yaml``).

Their dataset entries and a few keys are written differently here, and their data means something
else (one text of 5 glued captions per image, every image of Flickr30k, no split), so nothing is
mapped silently: each such key becomes a problem that names the file, the key and exactly what to
write instead. ``problems`` is called once per config source by ``load_config``; it removes the keys
it reports so that the generic checks do not report them a second time.
"""

from __future__ import annotations

import posixpath
from typing import Any

from minigpt4.registry import DATASETS, RUNNERS

TRAIN_ENTRY = "flickr30k_grounded_detail"  # their training builder (also in their eval config, unused there)
EVAL_ENTRY = "flickr30k"  # their evaluation entry, read by their eval_scripts/eval_flickr30k.py
PREPARE = "python prepare_flickr30k.py --root {root}"

TRAIN_DIFFERS = (
    "What differs: their flickr30k_grounded_detail.json glued the 5 captions of an image into one text and "
    "held every Flickr30k image (train, val and test alike), each asked for with a MiniGPT-v2 '[grounding] ...' "
    "instruction; flickr30k_train.json keeps the 5 captions separate (caption_sampling: all = one sample per "
    "caption; concat reproduces the glued text, for comparison only), holds only the 29,000 images of the "
    "Karpathy train split, so that val and test stay unseen, and the instructions come from prompt_path"
)
EVAL_DIFFERS = (
    "What differs: their evaluation scored an unseeded random 5% of every Flickr30k image (training images "
    "included) against the glued captions re-split at periods, asking 'Describe the content of this image in "
    "detail.'; flickr30k_eval scores every image of the Karpathy test split (1,000 images, none trained on) "
    "against its 5 original captions, with run.eval_instruction (default: the first line of model.prompt_path)"
)
# key of their evaluation entry -> (our key, what it means here)
EVAL_KEYS: dict[str, tuple[str, str]] = {
    "img_path": ("evaluation_datasets.flickr30k_eval.build_info.image_path", "the image folder, same meaning"),
    "max_new_tokens": ("run.max_new_tokens", "new tokens generated per caption, same meaning"),
    "batch_size": ("run.batch_size_eval", "images per generate call and process, same meaning"),
}
RUN_KEYS: dict[str, tuple[str, str]] = {
    "name": (
        "run.job_name",
        "the run folder's name, output_dir/job_name/<time>; an evaluation writes into RUN_DIR/eval/ and does not read it",
    ),
}
LORA_KEYS = {"lora_r": "r", "lora_alpha": "alpha"}


def _yaml(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _root(ann_path: Any) -> str:
    """The folder of their annotation file: where ``prepare_flickr30k.py --root`` writes our split files
    (it holds ``flickr_annotations_30k.csv``, as their ``prepare_flickr30k.py`` required); DIR when unknown."""
    if not isinstance(ann_path, str) or not ann_path:
        return "DIR"
    return posixpath.dirname(ann_path) or "."


def _is_seed_entry(section: dict, name: str) -> bool:
    entry = section.get(name)
    return isinstance(entry, dict) and not entry.get("builder") and name not in DATASETS


def _train_entry(entry: dict, where: str) -> str:
    info = entry.get("build_info") if isinstance(entry.get("build_info"), dict) else {}
    root = _root(info.get("ann_path"))
    images = info.get("image_path") or f"{root}/flickr30k-images"
    ours = DATASETS.get("flickr30k_caption").SCHEMA
    kept = [k for k in entry if k in ours and k != "build_info"]
    dropped = [k for k in entry if k not in ours]
    where_dir = f"where {root} is the folder of flickr_annotations_30k.csv and flickr30k-images/ and" if root == "DIR" else root
    return (
        f"datasets.{TRAIN_ENTRY} in {where}: the seed project's training set; write datasets.flickr30k_caption "
        f"instead, with build_info.ann_path: {root} and build_info.image_path: {images} ({where_dir} holds "
        f"flickr30k_train.json once `{PREPARE.format(root=root)}` has written it)"
        + (f"; its {', '.join(kept)} stay as they are" if kept else "")
        + (f"; drop {', '.join(dropped)} (no equivalent)" if dropped else "")
        + f". {TRAIN_DIFFERS}"
    )


def _eval_entry(entry: dict, where: str) -> list[str]:
    prefix = f"evaluation_datasets.{EVAL_ENTRY}"
    out = [
        f"{prefix} in {where}: the seed project's evaluation entry; write evaluation_datasets.flickr30k_eval "
        f"(split: test) instead, with the keys below. {EVAL_DIFFERS}"
    ]
    for key, value in entry.items():
        if key == "eval_file_path":
            root = _root(value)
            out.append(
                f"{prefix}.eval_file_path in {where}: write evaluation_datasets.flickr30k_eval.build_info.ann_path: "
                f"{root} (the folder holding flickr30k_test.json, written by `{PREPARE.format(root=root)}` from "
                "flickr_annotations_30k.csv; not their flickr30k_grounded_detail.json, whose captions are glued)"
            )
        elif key in EVAL_KEYS:
            ours, meaning = EVAL_KEYS[key]
            out.append(f"{prefix}.{key} in {where}: write {ours}: {_yaml(value)} ({meaning})")
        else:
            out.append(f"{prefix}.{key} in {where}: not a key of the seed project's evaluation entry; no equivalent here")
    return out


def _lora(model: dict, where: str) -> list[str]:
    out = []
    for key, ours in LORA_KEYS.items():
        if key in model:
            out.append(
                f"model.{key} in {where}: remove it. The seed project's arch minigpt4 never passed {key} to the LLM, "
                f"so its runs had no LoRA adapters and the key changed nothing; LoRA adapters here are model.lora.{ours} "
                f"(model.lora: {{{ours}: {_yaml(model.pop(key))}}} in a training config; an evaluation takes model.lora "
                "from the training run's config.yaml)"
            )
    return out


def problems(cfg: dict, where: str) -> list[str]:
    """The seed project's keys in one config source ``cfg`` (a YAML file's mapping or the ``--options``),
    each with its replacement; the reported keys are removed from ``cfg``."""
    out: list[str] = []
    datasets, evals, run, model = (cfg.get(s) for s in ("datasets", "evaluation_datasets", "run", "model"))
    seed_file = False
    if isinstance(datasets, dict) and _is_seed_entry(datasets, TRAIN_ENTRY):
        out.append(_train_entry(datasets.pop(TRAIN_ENTRY), where))
        seed_file = True
    if isinstance(evals, dict) and _is_seed_entry(evals, EVAL_ENTRY):
        out += _eval_entry(evals.pop(EVAL_ENTRY), where)
        seed_file = True
    if isinstance(run, dict):
        runner = run.get("runner") or "runner_iter"
        schema = RUNNERS.get(runner).SCHEMA if isinstance(runner, str) and runner in RUNNERS else {}
        for key, (ours, meaning) in RUN_KEYS.items():
            if key in run and key not in schema:
                out.append(f"run.{key} in {where}: the seed project's name of {ours}; write {ours}: {_yaml(run.pop(key))} ({meaning})")
    if seed_file and isinstance(model, dict):
        out += _lora(model, where)
    return out
