"""The captioning task (``run.task: captioning``; the official ``image_text_pretrain`` is an alias):
what a sample is, how a batch is trained on, which split is evaluated and how its captions are generated and scored.

Training samples are ``{"image", "instruction_input", "answer", "image_id"}`` from the ``train``
split of every ``datasets`` entry; the loss is the model's token-mean cross-entropy over the answer.
Evaluation samples are ``{"image", "image_id", "captions", "image_path"}`` of the one
``evaluation_datasets`` entry; each image gets one caption from the same instruction and is scored
against its reference captions with the COCO caption metrics.

The frozen vision stack's output goes through ``ImageFeatures`` (the ``run.feature_cache``): training
reads it for every image seen before, evaluation encodes the split once for all its checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import nn
from torch.utils.data import Dataset

from minigpt4.datasets.protocol import TokenCounting
from minigpt4.errors import ConfigError, EvalError
from minigpt4.models.flops import qformer_flops, train_flops_per_sample, vit_flops
from minigpt4.registry import DATASETS, TASKS
from minigpt4.tasks.captioning.generation import EncodedSplit, batch_size_eval, encode_split, generate_captions
from minigpt4.tasks.captioning.scoring import CaptionScorer
from minigpt4.utils.prompt import PromptTemplate, load_instructions

from .image_features import ImageFeatures

log = logging.getLogger(__name__)


def check_unique_ids(items: list[tuple[str, str]], source: str) -> None:
    """Scoring pairs each caption with its image's references by ``image_id``: ids must be unique."""
    first: dict[str, int] = {}
    for i, (image_id, image) in enumerate(items):
        if image_id in first:
            j = first[image_id]
            raise EvalError(
                f"{source}: image_id {image_id!r} appears twice (items {j} and {i}: {items[j][1]!r}, {image!r}); "
                "scoring needs one record per image with all its reference captions (group a file with one "
                "record per caption by image, captions as a list)"
            )
        first[image_id] = i


@TASKS.register("captioning", aliases=["image_text_pretrain"])
class CaptioningTask:
    """Image-caption training and evaluation over the config's dataset entries (a ``TrainingTask``)."""

    count_names = ("feature_hits", "feature_encoded")  # cached images used, images run through the frozen stack

    def __init__(self, strict_data: bool = False, feature_cache: str | None = None, feature_cache_dtype: str = "fp16") -> None:
        self.strict_data = strict_data
        self.features = ImageFeatures(feature_cache, feature_cache_dtype)
        self.reads_features = self.features.enabled  # prepare_training: whether a training dataset reads the cache

    @classmethod
    def from_config(cls, run_cfg: Any) -> CaptioningTask:
        return cls(
            strict_data=bool(run_cfg.get("strict_data", False)),
            feature_cache=run_cfg.get("feature_cache"),
            feature_cache_dtype=run_cfg.get("feature_cache_dtype", "fp16"),
        )

    # ---- training -----------------------------------------------------------------------
    def build_datasets(self, datasets_cfg: Any) -> dict[str, Dataset]:
        """The ``train`` split of each entry (built by its registered builder), by entry name in config order."""
        if not datasets_cfg:
            raise ConfigError("the config has no 'datasets' entries: nothing to train on")
        ratios = {name: entry.get("sample_ratio") for name, entry in datasets_cfg.items()}
        if len(ratios) > 1 and None in ratios.values() and set(ratios.values()) != {None}:
            raise ConfigError(
                f"datasets.*.sample_ratio is set on {sorted(n for n, r in ratios.items() if r is not None)} "
                f"but not on {sorted(n for n, r in ratios.items() if r is None)}: set it on every entry "
                "(mixing weights) or on none (one pool)"
            )
        out = {}
        for name, entry in datasets_cfg.items():
            splits = DATASETS.build(entry.builder, entry, strict=self.strict_data).build_datasets()
            if "train" not in splits:
                raise ConfigError(
                    f"datasets.{name}: builder '{entry.builder}' built splits {sorted(splits)}, "
                    "but training needs a 'train' split (set split: train)"
                )
            out[name] = splits["train"]
        self.features.check(out, "train")  # random crops cannot be cached: before any model is built
        return out

    def prepare_training(self, model: nn.Module, datasets: dict[str, Dataset]) -> None:
        """Attach the feature cache of ``model``'s frozen stack to the training datasets, and the
        LLM tokenizer's count for their lengths."""
        if model.feature_cut is None and self.features.enabled:
            log.info("feature cache not used: the ViT trains (model.freeze_vit: false), nothing before it is frozen")
        attached = [self.features.attach(model, dataset, model.feature_cut) for dataset in datasets.values()]
        self.reads_features = any(a is not None for a in attached)  # streamed datasets read no cache
        for dataset in datasets.values():
            if isinstance(dataset, TokenCounting):  # length-grouped batches by LLM tokens, not words
                dataset.use_token_counter(TokenCounter(model.llama_tokenizer))
        log.info(self.features.describe(model))

    def train_step(self, model: nn.Module, samples: dict[str, Any]) -> dict[str, Any]:
        """The batch's ``loss`` and what it cost: real ``tokens``, padded ``positions``, model ``flops``
        (``models.flops``), cached images used (``feature_hits``) and images run through the frozen
        stack (``feature_encoded``)."""
        inner = getattr(model, "module", model)  # DDP's model
        cut = inner.feature_cut
        hits = encoded = 0
        if cut is not None:
            feats, hits, encoded = self.features.complete(inner, samples, cut)
            samples = {**samples, "image": None, "features": feats, "feature_cut": cut}
        out = model(samples)
        lens = out["seq_lens"].tolist()
        flops = None
        if all(inner.frozen.values()):  # the stage-2 setup the FLOP formulas count
            flops = sum(train_flops_per_sample(inner, n, cut) for n in lens)  # cut: the vision part is cached
            flops += encoded * (vit_flops(inner) + (qformer_flops(inner) if cut == "qformer" else 0))
        return {
            "loss": out["loss"],
            "tokens": sum(lens),
            "positions": out["positions"],
            "flops": flops,
            "feature_hits": hits,
            "feature_encoded": encoded,
        }

    def count_rates(self, counts: Mapping[str, float]) -> dict[str, float | None]:
        """``cache_hits``: the share of images read from the feature cache (None when it is off or unused)."""
        hits, encoded = counts["feature_hits"], counts["feature_encoded"]
        used = self.features.enabled and self.reads_features
        return {"cache_hits": round(hits / (hits + encoded), 4) if used and hits + encoded else None}

    def count_record(self, counts: Mapping[str, float]) -> dict[str, Any]:
        """``feature_cache``: ``{"hits", "encoded"}`` images of the epoch."""
        return {"feature_cache": {"hits": int(counts["feature_hits"]), "encoded": int(counts["feature_encoded"])}}

    # ---- evaluation ---------------------------------------------------------------------
    def build_eval_split(self, cfg: DictConfig, split: str | None = None) -> tuple[Dataset, str, str]:
        """(dataset, entry name, split) of the one ``evaluation_datasets`` entry; ``split`` overrides the
        entry's own only where its ``ann_path`` is a folder of per-split files. Unreadable images fail."""
        entries = cfg.get("evaluation_datasets") or {}
        if len(entries) != 1:
            raise EvalError(
                f"the config needs exactly one evaluation_datasets entry (e.g. flickr30k_eval), found {list(entries) or 'none'}"
            )
        name, entry = next(iter(entries.items()))
        configured = entry.get("split")
        if split is not None and split != configured:
            ann = Path(entry.build_info.ann_path)  # absolute: load_config resolved it
            if configured is None or ann.is_file():
                raise EvalError(
                    f"--split {split}: evaluation_datasets.{name} is the {configured!r} split of the file {ann}; "
                    f"set its build_info.ann_path to the {split} file (and split: {split}), or to the folder "
                    "holding flickr30k_<split>.json"
                )
            entry = entry.copy()
            entry.split = split
        split = split or configured
        datasets = DATASETS.build(entry.builder, entry, strict=True).build_datasets()
        if split not in datasets:
            raise EvalError(f"evaluation_datasets.{name} has no split {split!r} (has {sorted(datasets)})")
        dataset = datasets[split]
        self.features.check({name: dataset}, "eval")
        if hasattr(dataset, "records"):  # from the annotations alone, before any model is built
            check_unique_ids(
                [(r.image_id, r.image) for r in dataset.records],
                f"evaluation_datasets.{name} ({getattr(dataset, 'source', '') or entry.build_info.ann_path})",
            )
        return dataset, name, split

    def instruction(self, cfg: DictConfig) -> str:
        """The one instruction every image is captioned with: ``run.eval_instruction`` or the first line
        of ``model.prompt_path`` (known from the config alone, before the model is built)."""
        instruction = cfg.run.get("eval_instruction") or load_instructions(cfg.model.prompt_path)[0]
        try:
            PromptTemplate(cfg.model.prompt_template).split(instruction)
        except ValueError as e:
            raise ConfigError(f"run.eval_instruction: {e}") from None
        return instruction

    def encode(self, model: Any, dataset: Dataset, run_cfg: Any, use_cache: bool = True, desc: str = "encoding") -> EncodedSplit:
        """This rank's share of ``dataset`` through the frozen vision stack (from the feature cache
        where present), once for any number of checkpoints (``generate``)."""
        target = getattr(dataset, "dataset", dataset)  # a Subset (--limit) of the split
        cut = model.vision_cut  # evaluation computes no gradients: the whole vision stack is frozen there
        if use_cache:
            self.features.attach(model, target, cut)
        else:
            self.features.detach(target)
        return encode_split(
            model,
            dataset,
            batch_size_eval(run_cfg, model.device),
            run_cfg.num_workers,
            lambda batch: self.features.complete(model, batch, cut),
            cut,
            desc=desc,
        )

    def generate(self, model: Any, encoded: EncodedSplit, instruction: str, run_cfg: Any, desc: str = "captioning") -> list[dict[str, Any]]:
        """Captions of an encoded split over all ranks: on rank 0 ``[{"index", "image_id", "image",
        "caption", "references"}]`` in dataset order, ``[]`` elsewhere."""
        return generate_captions(model, encoded, instruction, run_cfg.max_new_tokens, run_cfg.num_beams, desc=desc)

    @staticmethod
    def predictions_and_references(results: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, list[str]]]:
        """``({image_id: caption}, {image_id: references})`` of generated results (ids must be unique)."""
        check_unique_ids([(r["image_id"], r["image"]) for r in results], "the generated results")
        return ({r["image_id"]: r["caption"] for r in results}, {r["image_id"]: r["references"] for r in results})

    def score(self, results: list[dict[str, Any]], scorer: CaptionScorer) -> dict[str, float]:
        """COCO caption metrics of the results against their references."""
        return scorer.score(*self.predictions_and_references(results))


class TokenCounter:
    """``text -> its number of LLM tokens`` (a picklable callable for the datasets' ``lengths``)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)
