"""``webdataset_caption``: image-caption pairs streamed from webdataset tar shards (img2dataset's
layout: ``{key}.jpg``, ``{key}.txt``, ``{key}.json``), added by a YAML entry alone. ``laion`` and
``cc_sbu`` are this builder under the official stage-1 names and defaults.

Samples have no instruction (``<ImageHere>`` alone): with the model's default template (``{}``) the
LLM sees ``[BOS][image][caption + end_sym]``, the official stage 1. See docs/data.md.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from minigpt4.config.schema import Key, at_least, ignored_key, only
from minigpt4.processors.base import create_processor
from minigpt4.registry import DATASETS

from .builder import TEXT_KEY, TRAIN_KEYS, VIS_KEY, CaptionBuilder, builder_key
from .shards import resolve_shards, storage_problems
from .stream import SHARD_SAMPLING, ShardStream


def stream_schema(name: str, storage_doc: str) -> dict[str, Key]:
    """The keys of a streamed caption entry (``name``: the builder it defaults to)."""
    return {
        "builder": builder_key(name),
        "build_info": Key(
            "Where the shards are.",
            children={"storage": Key(storage_doc, (str, list), check_merged=storage_problems)},
        ),
        "image_key": Key("Sample field of the image (the file extension in the tar).", str, "jpg"),
        "caption_key": Key(
            "Sample field of the caption: json.<field> (a field of the .json, img2dataset's 'caption'), or txt (the .txt file).",
            str,
            "json.caption",
        ),
        "vis_processor": VIS_KEY,
        "text_processor": TEXT_KEY,
        "sample_ratio": TRAIN_KEYS["sample_ratio"],
        "batch_size": TRAIN_KEYS["batch_size"],
        "shard_sampling": Key(
            "split: each pass over the shards is one seeded permutation shared out among the (rank, worker) streams "
            "(no two read the same shard while there are enough shards); resampled: each stream draws shards with "
            "replacement from its own seed (the official scheme, seeded here).",
            str,
            "split",
            choices=SHARD_SAMPLING,
        ),
        "shuffle_buffer": Key("Samples in each stream's seeded shuffle buffer (official: 1000).", int, 1000, check=at_least(1)),
        "shuffle_initial": Key("Samples gathered before the buffer yields its first (official: 100).", int, 100, check=at_least(1)),
        "max_drop_share": Key(
            "Stop with an error naming the shards when a stream has dropped more than this share of its samples "
            "(unreadable image, no caption) after 100.",
            float,
            0.5,
            check=lambda v: [] if 0 < v <= 1 else [f"expected a share in (0, 1], got {v}"],
        ),
        "stall_seconds": Key("Stop with an error when a stream yields no usable sample for this long.", float, 300.0, check=at_least(1)),
        "data_type": ignored_key("the official builders' data kind; images is the only one", str, only("images")),
    }


@DATASETS.register("webdataset_caption")
class WebdatasetCaptionBuilder(CaptionBuilder):
    """``{"train": ShardStream}`` over ``build_info.storage``."""

    DEFAULT_CONFIG_PATH = "configs/datasets/webdataset_caption/defaults.yaml"
    SCHEMA = stream_schema(
        "webdataset_caption",
        "Shard pattern(s) webdataset opens: a local path, http(s):// URL or pipe: command, with brace ranges "
        "(/data/shards/{00000..00099}.tar), or a list of them.",
    )

    def build_datasets(self) -> dict[str, Dataset]:
        c = self.config
        shards = resolve_shards(c["build_info"]["storage"])
        stream = ShardStream(
            self.registry_name,  # the training loader names it after its entry
            shards.urls,
            create_processor(c["vis_processor"]["train"]),
            create_processor(c["text_processor"]["train"]),
            image_key=c["image_key"],
            caption_key=c["caption_key"],
            shuffle_buffer=c["shuffle_buffer"],
            shuffle_initial=c["shuffle_initial"],
            shard_sampling=c["shard_sampling"],
            max_drop_share=c["max_drop_share"],
            stall_seconds=c["stall_seconds"],
            strict=self.strict,
        )
        stream.shards = shards  # what was left out, for the log
        return {"train": stream}
