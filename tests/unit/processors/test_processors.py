"""Image and caption processors: exact CLIP normalisation, shapes, seeded crops, caption cleaning."""

import pytest
import torch
from PIL import Image

from minigpt4.processors import CLIP_MEAN, CLIP_STD, build_processor, clean_caption
from minigpt4.processors.image import random_resized_crop_box, to_tensor
from minigpt4.registry import PROCESSORS
from tests.helpers.paths import DATA

PHOTO = DATA / "flickr_1000268201.jpg"  # real Flickr30k photo (224x224 copy)


def _expected(rgb) -> torch.Tensor:
    return torch.tensor([(v / 255 - m) / s for v, m, s in zip(rgb, CLIP_MEAN, CLIP_STD)])


def _gradient(w=90, h=70) -> Image.Image:
    img = Image.new("RGB", (w, h))
    img.putdata([(x * 255 // w, y * 255 // h, (x + y) % 256) for y in range(h) for x in range(w)])
    return img


@pytest.mark.parametrize("name", ["blip2_image_eval", "blip2_image_train"])
def test_constant_colour_normalises_to_exact_clip_values(name):
    proc = build_processor({"name": name, "image_size": 32})
    rgb = (255, 0, 128)
    out = proc(Image.new("RGB", (50, 40), rgb))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    want = _expected(rgb).view(3, 1, 1).expand(3, 32, 32)
    assert torch.allclose(out, want, atol=1e-6)
    # e.g. pure white red channel: (1 - 0.48145466) / 0.26862954
    assert out[0, 0, 0].item() == pytest.approx((1 - 0.48145466) / 0.26862954, abs=1e-6)


def test_non_rgb_inputs_are_converted():
    proc = build_processor({"name": "blip2_image_eval", "image_size": 8})
    gray = proc(Image.new("L", (20, 10), 100))
    assert torch.allclose(gray, _expected((100, 100, 100)).view(3, 1, 1).expand(3, 8, 8), atol=1e-6)
    rgba = proc(Image.new("RGBA", (9, 9), (10, 20, 30, 0)))
    assert torch.allclose(rgba[:, 0, 0], _expected((10, 20, 30)), atol=1e-6)


def test_eval_is_bicubic_resize_of_pixels():
    img = _gradient()
    out = build_processor({"name": "blip2_image_eval", "image_size": 24})(img)
    resized = img.resize((24, 24), Image.Resampling.BICUBIC)
    r, g, b = resized.getpixel((5, 17))
    assert torch.allclose(out[:, 17, 5], _expected((r, g, b)), atol=1e-6)
    assert torch.equal(to_tensor(resized)[:, 17, 5] * 255, torch.tensor([r, g, b], dtype=torch.float32))


def test_real_photo_shape_and_range():
    out = build_processor({"name": "blip2_image_eval", "image_size": 224})(Image.open(PHOTO))
    assert out.shape == (3, 224, 224)
    lo, hi = _expected((0, 0, 0)), _expected((255, 255, 255))
    for c in range(3):
        assert lo[c] - 1e-6 <= out[c].min() and out[c].max() <= hi[c] + 1e-6
    assert out.std() > 0.3  # a real photo, not a flat image


def test_train_default_equals_eval():
    img = _gradient()
    train = build_processor({"name": "blip2_image_train", "image_size": 28})
    ev = build_processor({"name": "blip2_image_eval", "image_size": 28})
    assert torch.equal(train(img, torch.Generator().manual_seed(1)), ev(img))


def test_train_random_crop_is_seeded():
    img = _gradient()
    proc = build_processor({"name": "blip2_image_train", "image_size": 28, "min_scale": 0.5})
    a = proc(img, torch.Generator().manual_seed(7))
    b = proc(img, torch.Generator().manual_seed(7))
    c = proc(img, torch.Generator().manual_seed(8))
    assert a.shape == (3, 28, 28)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, build_processor({"name": "blip2_image_eval", "image_size": 28})(img))


def test_random_resized_crop_box_bounds():
    areas = []
    for seed in range(200):
        left, top, w, h = random_resized_crop_box(90, 70, (0.5, 1.0), generator=torch.Generator().manual_seed(seed))
        assert 0 <= left and 0 <= top and left + w <= 90 and top + h <= 70 and w > 0 and h > 0
        assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05 or (w, h) == (90, 70)
        areas.append(w * h / (90 * 70))
    assert min(areas) >= 0.5 - 0.03 and max(areas) <= 1.0
    assert max(areas) - min(areas) > 0.3  # actually random


@pytest.mark.parametrize(
    "text,kwargs,want",
    [
        ('A man (in a RED hat) is: "jumping"!!  ~over~ a fence.', {}, "a man in a red hat is jumping over a fence"),
        ("Two   dogs\tplay #fun; *really*", {}, "two dogs play fun really"),
        ("A dog's ball, blue-green.", {}, "a dog's ball, blue-green"),
        ("one two three four five", {"max_words": 3}, "one two three"),
    ],
)
def test_clean_caption_examples(text, kwargs, want):
    assert clean_caption(text, **kwargs) == want


def test_blip_caption_processor_prompt_and_max_words():
    proc = build_processor({"name": "blip_caption", "prompt": "a picture of ", "max_words": 4})
    assert proc("  A Black DOG runs across the grass. ") == "a picture of a black dog runs"
    assert PROCESSORS.get("blip_caption").from_config({})("Hi.") == "hi"


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"name": "blip2_image_evl"}, r"Unknown processor 'blip2_image_evl'. Did you mean 'blip2_image_eval'"),
        ({"name": "blip2_image_eval", "img_size": 5}, r"key 'img_size': unknown key. Did you mean 'image_size'"),
        ({"name": "blip2_image_train", "min_scale": "half"}, r"key 'min_scale': expected float, got str"),
        ({"image_size": 5}, r"'name' is missing"),
    ],
)
def test_bad_processor_config_is_clear(spec, match):
    with pytest.raises(ValueError, match=match):
        build_processor(spec)


def test_bad_values_rejected():
    with pytest.raises(ValueError, match="min_scale <= max_scale"):
        build_processor({"name": "blip2_image_train", "min_scale": 0.9, "max_scale": 0.5})
    with pytest.raises(ValueError, match="image_size must be positive"):
        build_processor({"name": "blip2_image_eval", "image_size": 0})
