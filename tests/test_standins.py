"""Stage-1 stand-ins: joint training of the whole tiny stack, saved in the official formats."""
import json

import torch
import yaml

import minigpt4
from minigpt4.datasets.flickr30k_prepare import prepare_flickr30k
from minigpt4.datasets.synthetic import make_synthetic_flickr30k
from minigpt4.models.standins import DONE, model_section, train_standins
from minigpt4.models.state_io import load_weights


def test_stage1_trains_everything_saves_official_formats_and_caches(tmp_path):
    root = tmp_path / "data"
    make_synthetic_flickr30k(root, 12, seed=0, image_size=112)
    prepare_flickr30k(root)
    out = tmp_path / "standins"
    paths = train_standins(root / "flickr30k_train.json", root / "flickr30k-images", out, steps=3, batch_size=2)
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
    assert train_standins(root / "flickr30k_train.json", root / "flickr30k-images", out, steps=3, batch_size=2) == paths
    assert (out / "eva_vit_g.pth").stat().st_mtime_ns == stamp
