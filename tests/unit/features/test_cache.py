"""The frozen-feature cache: never stale (image bytes, processor, ViT weights), first writer wins,
damaged files recomputed, random crops refused, warm and cold caches train identically. (The cache
fill command under torchrun: tests/e2e/test_feature_cache_fill.py.)"""

import logging
import shutil

import pytest
import torch
from PIL import Image

import minigpt4
from minigpt4.datasets.caption_datasets import CaptionEvalDataset, collate
from minigpt4.datasets.records import CaptionRecord
from minigpt4.errors import ConfigError
from minigpt4.features import FeatureCache, stack_key
from minigpt4.processors.image import Blip2ImageEvalProcessor, Blip2ImageTrainProcessor
from minigpt4.tasks.captioning import CaptioningTask
from minigpt4.tasks.captioning.image_features import ImageFeatures
from tests.helpers.configs import tiny_model_section, write_yaml

INSTR = "<Img><ImageHere></Img> Describe this image in detail."


@pytest.fixture(scope="module")
def model(tiny_stack, tmp_path_factory):
    path = write_yaml(tmp_path_factory.mktemp("cfg") / "m.yaml", {"model": tiny_model_section(tiny_stack)})
    return minigpt4.build_model(minigpt4.load_config(path).model)


@pytest.fixture()
def images(synthetic_flickr, tmp_path):
    """Four of the synthetic images in a folder of their own (the test may change them)."""
    folder = tmp_path / "images"
    folder.mkdir()
    names = sorted(p.name for p in (synthetic_flickr / "flickr30k-images").iterdir())[:4]
    for n in names:
        shutil.copy(synthetic_flickr / "flickr30k-images" / n, folder / n)
    return folder, names


def _dataset(folder, names, size=56):
    records = [CaptionRecord(image=n, image_id=str(i), captions=("a shape",)) for i, n in enumerate(names)]
    return CaptionEvalDataset(records, folder, Blip2ImageEvalProcessor(size))


def _encode(model, features: ImageFeatures, dataset):
    batch = collate([dataset[i] for i in range(len(dataset))])
    return features.complete(model, batch, "qformer")


def test_store_read_first_writer_wins_and_damage_is_recomputed(tmp_path, caplog):
    cache = FeatureCache(tmp_path, {"cut": "qformer", "weights_sha256": "x"})
    a, b = torch.randn(32, 8), torch.randn(32, 8)
    stored = cache.store("ab" * 32, a)
    assert stored.dtype == torch.float16 and torch.equal(stored, a.half())
    assert torch.equal(cache.store("ab" * 32, b), stored)  # a second writer gets the first's features
    assert torch.equal(cache.read("ab" * 32)[0], stored)
    path = cache.file("ab" * 32)
    path.write_bytes(path.read_bytes()[:-10])  # truncated
    with caplog.at_level(logging.WARNING, logger="minigpt4"):
        assert cache.read("ab" * 32) == (None, "corrupt")
    assert "is damaged" in caplog.text and not path.exists() and list(path.parent.glob("*.corrupt"))
    assert torch.equal(cache.store("ab" * 32, b), b.half())  # recomputed
    # bytes changed in place, same length: the checksum catches it
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert cache.read("ab" * 32) == (None, "corrupt")


def test_cached_features_are_never_stale(model, images, tmp_path):
    folder, names = images
    features = ImageFeatures(str(tmp_path / "cache"))
    data = _dataset(folder, names)
    cache = features.attach(model, data, "qformer")
    cold, hits, encoded = _encode(model, features, data)
    assert (hits, encoded) == (0, 4) and cache.size()[0] == 4
    warm, hits, encoded = _encode(model, features, data)
    assert (hits, encoded) == (4, 0) and torch.equal(warm, cold)  # the same values, not recomputed
    assert all(data[i]["image"] is None for i in range(4))  # a cached image is not even decoded
    # the same picture twice in one cold batch is encoded once
    other = ImageFeatures(str(tmp_path / "other"))
    twice = _dataset(folder, [names[1], names[1], names[2]])
    other.attach(model, twice, "qformer")
    assert _encode(model, other, twice)[1:] == (1, 2)  # (hits, encoded)
    # 1. changed image bytes (a new picture under the same name)
    Image.new("RGB", (56, 56), (255, 0, 0)).save(folder / names[0])
    item = data[0]
    assert item["feature_status"] == "miss" and item["image"] is not None
    _, hits, encoded = _encode(model, features, data)
    assert (hits, encoded) == (3, 1)
    # 2. another processor (size): another key, nothing shared
    other = ImageFeatures(str(tmp_path / "cache"))
    assert other.attach(model, _dataset(folder, names, size=64), "qformer").folder != cache.folder
    # 3. changed ViT weights: another key
    key = stack_key(model, "qformer", data.vis_processor.cache_identity())
    weight = model.visual_encoder.encoder.layers[0].mlp.fc1.weight
    original = weight[0, 0].item()
    with torch.no_grad():
        weight[0, 0] += 1.0
    try:
        changed = stack_key(model, "qformer", data.vis_processor.cache_identity())
        assert changed["weights_sha256"] != key["weights_sha256"]
        assert ImageFeatures(str(tmp_path / "cache")).attach(model, _dataset(folder, names), "qformer").folder != cache.folder
    finally:
        with torch.no_grad():
            weight[0, 0] = original
    assert stack_key(model, "qformer", data.vis_processor.cache_identity()) == key
    # the cut point is in the key: features after the ViT are kept apart from the Q-Former's
    assert stack_key(model, "vit", data.vis_processor.cache_identity())["cut"] == "vit"


def test_cached_path_equals_the_image_path_and_trains_the_same(model, images, tmp_path):
    """The model's loss from cached features equals the loss from images up to the fp16 rounding of
    the cache, and a cold cache (features computed, stored, then used) equals a warm one exactly."""
    folder, names = images
    features = ImageFeatures(str(tmp_path / "cache"))
    data = _dataset(folder, names)
    features.attach(model, data, "qformer")
    batch = collate([data[i] for i in range(4)])
    images_t = batch["image"]  # a cold cache: every image decoded
    samples = {"instruction_input": [INSTR] * 4, "answer": ["a red circle", "two squares", "a cat", "blue"]}
    cold, _, _ = features.complete(model, batch, "qformer")
    warm, _, _ = _encode(model, features, data)
    loss_cold = model({**samples, "features": cold})["loss"]
    loss_warm = model({**samples, "features": warm})["loss"]
    loss_images = model({**samples, "image": images_t})["loss"]
    assert torch.equal(loss_cold, loss_warm)
    assert torch.allclose(loss_cold, loss_images, rtol=1e-3)
    emb_images, _ = model.encode_img(images_t)
    emb_cached, _ = model.embed_features(warm, "qformer")
    assert torch.allclose(emb_images, emb_cached, atol=5e-3)


def test_random_crops_are_refused_with_the_cache_on(tiny_stack, synthetic_flickr, tmp_path):
    entry = {
        "flickr30k_caption": {
            "builder": "flickr30k_caption",
            "build_info": {
                "ann_path": str(synthetic_flickr / "flickr30k_train.json"),
                "image_path": str(synthetic_flickr / "flickr30k-images"),
            },
            "vis_processor": {"train": {"name": "blip2_image_train", "image_size": 56, "min_scale": 0.5}},
        }
    }
    cfg = minigpt4.load_config(write_yaml(tmp_path / "c.yaml", {"model": tiny_model_section(tiny_stack), "datasets": entry}))
    with pytest.raises(
        ConfigError,
        match=r"datasets\.flickr30k_caption\.vis_processor\.train\.min_scale is 0\.5 .*"
        r"run\.feature_cache: null",
    ):
        CaptioningTask(feature_cache=str(tmp_path / "fc")).build_datasets(cfg.datasets)
    assert CaptioningTask(feature_cache=None).build_datasets(cfg.datasets)  # without the cache: fine
    assert Blip2ImageTrainProcessor(56, min_scale=0.5).cache_identity() is None
    assert Blip2ImageTrainProcessor(56).cache_identity() == Blip2ImageEvalProcessor(56).cache_identity()
