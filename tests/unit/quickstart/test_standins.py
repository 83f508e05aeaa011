"""Stand-ins: stage 0 (ViT on caption words), stage 1 (the rest jointly), saved in the official formats."""

import json
from pathlib import Path

import pytest
import torch
import yaml

import minigpt4
from minigpt4.datasets.flickr30k_prepare import prepare_flickr30k
from minigpt4.models.weights import load_weights
from minigpt4.quickstart.standin_training import caption_word_targets
from minigpt4.quickstart.standins import DONE, model_section, train_standins
from minigpt4.quickstart.synthetic import make_synthetic_flickr30k


def _sample(tmp_path):
    root = tmp_path / "data"
    if not (root / "flickr30k_train.json").is_file():
        make_synthetic_flickr30k(root, 12, seed=0, image_size=112)
        prepare_flickr30k(root)
    return root / "flickr30k_train.json", root / "flickr30k-images"


def test_caption_word_targets_are_the_share_of_captions_using_each_word():
    vocab, targets = caption_word_targets([["A red circle.", "The circle is red!"], ["Two red squares."]])
    assert vocab == ["a", "circle", "is", "red", "squares", "the", "two"]
    assert targets[0].tolist() == [0.5, 1.0, 0.5, 1.0, 0.0, 0.5, 0.0]
    assert targets[1].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]


def test_stage0_shapes_the_vit_and_stage1_leaves_it_frozen(tmp_path):
    ann, images = _sample(tmp_path)
    a = train_standins(ann, images, tmp_path / "a", steps=1, batch_size=2, vision_steps=3)
    b = train_standins(ann, images, tmp_path / "b", steps=3, batch_size=2, vision_steps=3)
    c = train_standins(ann, images, tmp_path / "c", steps=1, batch_size=2, vision_steps=0)
    vit = {k: load_weights(p["vit_ckpt"]) for k, p in zip("abc", (a, b, c))}
    assert all(torch.equal(vit["a"][k], vit["b"][k]) for k in vit["a"])  # stage 1 does not touch the ViT
    assert not torch.equal(vit["a"]["blocks.0.mlp.fc1.weight"], vit["c"]["blocks.0.mlp.fc1.weight"])  # stage 0 does
    qformer = {k: load_weights(p["q_former_model"])["model"]["query_tokens"] for k, p in zip("ab", (a, b))}
    assert not torch.equal(qformer["a"], qformer["b"])  # stage 1 trains the Q-Former side
    with pytest.raises(ValueError, match="vision_steps >= 0"):
        train_standins(ann, images, tmp_path / "d", vision_steps=-1)


def test_stage1_trains_everything_saves_official_formats_and_caches(tmp_path):
    ann, images = _sample(tmp_path)
    out = tmp_path / "standins"
    paths = train_standins(ann, images, out, steps=3, batch_size=2, vision_steps=2)
    assert set(paths) == {"llama_model", "vit_ckpt", "q_former_model", "stage1_ckpt"}
    eva = load_weights(paths["vit_ckpt"])
    assert "blocks.0.attn.q_bias" in eva and not any(k.startswith("encoder.") for k in eva)
    blip2 = load_weights(paths["q_former_model"])["model"]
    assert "query_tokens" in blip2 and "ln_vision.weight" in blip2 and "Qformer.bert.layernorm.weight" not in blip2
    # the stand-ins load through the normal config path with a fresh projection
    cfg_path = tmp_path / "m.yaml"
    cfg_path.write_text(yaml.safe_dump({"model": model_section(paths)}))
    model = minigpt4.build_model(minigpt4.load_config(cfg_path).model)
    assert sorted(model.trainable_state_dict()) == ["llama_proj.bias", "llama_proj.weight"]
    stage1 = load_weights(paths["stage1_ckpt"])["model"]
    assert not torch.equal(stage1["llama_proj.weight"], model.llama_proj.weight)  # stage 2 starts fresh
    assert json.loads((out / DONE).read_text())["settings"]["steps"] == 3
    # cached: a second call does not train again
    stamp = (out / "eva_vit_g.pth").stat().st_mtime_ns
    assert train_standins(ann, images, out, steps=3, batch_size=2, vision_steps=2) == paths
    assert (out / "eva_vit_g.pth").stat().st_mtime_ns == stamp


def test_stage1_answers_as_the_fine_tunes_text_processor_writes_captions(tmp_path, monkeypatch):
    """Stage 1 trains on the captions as stage 2 reads them (blip_caption: lower case, no final period), so
    the frozen LLM already writes what the fine-tune asks for; another processor is a setting of the cache."""
    from minigpt4.errors import ConfigError
    from minigpt4.quickstart import standin_training

    seen = {}
    real_stage1 = standin_training._stage1
    monkeypatch.setattr(
        standin_training,
        "_stage1",
        lambda model, images, captions, *a: (seen.setdefault(len(seen), captions), real_stage1(model, images, captions, *a))[1],
    )
    ann, images = _sample(tmp_path)
    raw = json.loads(ann.read_text())[0]["captions"]
    train_standins(ann, images, tmp_path / "a", steps=1, batch_size=2, vision_steps=1)
    assert seen[0][0] == [c.lower().rstrip(".") for c in raw] and raw[0][0].isupper() and raw[0].endswith(".")
    b = train_standins(ann, images, tmp_path / "b", steps=1, batch_size=2, vision_steps=1, text_processor="caption_as_written")
    assert seen[1][0] == raw
    assert json.loads((tmp_path / "b" / DONE).read_text())["settings"]["text_processor"] == "caption_as_written"
    assert b["llama_model"].startswith(str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="--text-processor: Unknown processor 'blip_captions'. Did you mean 'blip_caption'"):
        train_standins(ann, images, tmp_path / "c", steps=1, batch_size=2, vision_steps=1, text_processor="blip_captions")
    assert not (tmp_path / "c").exists()


def test_stage1_text_processor_is_the_quickstart_fine_tunes():
    """The stand-ins' default text processor is the one the quickstart's stage 2 trains with (the
    flickr30k_caption default, which the quickstart config does not override): change both together."""
    from minigpt4.quickstart.standins import TEXT_PROCESSOR

    default = yaml.safe_load((Path(minigpt4.__file__).parent / "configs/datasets/flickr30k/caption.yaml").read_text())
    assert default["datasets"]["flickr30k_caption"]["text_processor"]["train"]["name"] == TEXT_PROCESSOR
    quickstart = yaml.safe_load((Path(minigpt4.__file__).parents[1] / "train_configs/minigpt4_flickr_quickstart.yaml").read_text())
    assert "text_processor" not in quickstart["datasets"]["flickr30k_caption"]
