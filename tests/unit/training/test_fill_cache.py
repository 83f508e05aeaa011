"""The cache command's view of a training dataset: one item per image, through the dataset's own image
processor and feature cache (the command itself runs end to end in tests/e2e/test_feature_cache_fill.py)."""

from __future__ import annotations

import pytest
from torch.utils.data import TensorDataset

from minigpt4.datasets.caption_datasets import CaptionTrainDataset
from minigpt4.datasets.records import CaptionRecord
from minigpt4.errors import ConfigError
from minigpt4.training.fill_cache import unique_images


def test_one_item_per_image_with_the_datasets_processor_and_cache(tmp_path):
    records = [CaptionRecord("a.jpg", "a", ("one", "two")), CaptionRecord("b.jpg", "b", ("three",))]
    processor, cache = (lambda im: im), object()
    train = CaptionTrainDataset(records, tmp_path, processor, str, ["<Img><ImageHere></Img> Describe."], source="mine")
    train.use_features(cache)
    images = unique_images("mine", train)
    assert len(train) == 3 and len(images) == 2  # captions vs images
    assert images.records == records and images.image_root == tmp_path and images.vis_processor is processor
    assert images.features is cache and images.source == "mine" and not images.strict


def test_a_dataset_without_image_records_is_a_config_error():
    with pytest.raises(ConfigError, match="tensors: TensorDataset has no image records; the cache command fills caption datasets"):
        unique_images("tensors", TensorDataset())
