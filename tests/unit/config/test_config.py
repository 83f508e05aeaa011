"""Config loading: defaults <- YAML <- --options, each key validated with its origin named."""

import subprocess
import sys

import pytest
import yaml

import minigpt4
from minigpt4.config import ConfigError, load_config
from minigpt4.models.minigpt4 import MiniGPT4
from minigpt4.testing.stacks import TINY_IMAGE_SIZE, TINY_NUM_QUERY_TOKEN, TINY_QFORMER, TINY_VIT
from tests.helpers.configs import tiny_model_section, write_yaml
from tests.helpers.paths import REPO


def _errors(path, options=None) -> str:
    with pytest.raises(ConfigError) as e:
        minigpt4.load_config(path, options)
    return str(e.value)


def test_tiny_model_builds_through_registry(tiny_cfg_path, tiny_stack):
    cfg = minigpt4.load_config(tiny_cfg_path)
    assert cfg.model.image_size == TINY_IMAGE_SIZE  # from minigpt4_tiny.yaml
    assert cfg.model.end_sym == "###"  # from the schema defaults
    assert cfg.model.prompt_path.endswith("minigpt4/prompts/alignment.txt")  # packaged prompt, made absolute
    assert cfg.run.init_lr == pytest.approx(3e-5)
    model = minigpt4.build_model(cfg.model)
    assert isinstance(model, MiniGPT4)


def test_tiny_defaults_file_matches_tiny_builder():
    from minigpt4.config import PACKAGE_DIR, read_yaml

    d = read_yaml(PACKAGE_DIR / MiniGPT4.MODEL_TYPES["tiny"])["model"]
    assert d["vit_config"] == TINY_VIT and d["qformer_config"] == TINY_QFORMER
    assert d["image_size"] == TINY_IMAGE_SIZE and d["num_query_token"] == TINY_NUM_QUERY_TOKEN


def test_options_override_yaml(tiny_cfg_path):
    cfg = minigpt4.load_config(tiny_cfg_path, ["model.max_txt_len=64", "run.init_lr=1e-4", "model.ckpt=null"])
    assert cfg.model.max_txt_len == 64 and cfg.run.init_lr == pytest.approx(1e-4) and cfg.model.ckpt is None


def test_typo_key_names_key_file_and_allowed(tmp_path, tiny_stack):
    path = write_yaml(tmp_path / "bad.yaml", {"model": tiny_model_section(tiny_stack, max_text_len=10)})
    msg = _errors(path)
    assert f"model.max_text_len in {path}" in msg
    assert "Did you mean 'max_txt_len'?" in msg and "Allowed keys:" in msg


def test_typo_in_options_names_options(tiny_cfg_path):
    msg = _errors(tiny_cfg_path, ["run.init_learning_rate=1"])
    assert "run.init_learning_rate in --options: unknown key" in msg


def test_unknown_arch(tmp_path, tiny_stack):
    path = write_yaml(tmp_path / "bad.yaml", {"model": tiny_model_section(tiny_stack, arch="minigtp4")})
    msg = _errors(path)
    assert f"model.arch in {path}" in msg and "Unknown model 'minigtp4'" in msg
    assert "Did you mean 'minigpt4'?" in msg and "Registered models: minigpt4" in msg


def test_wrong_type_and_choice(tmp_path, tiny_stack):
    path = write_yaml(
        tmp_path / "bad.yaml", {"model": tiny_model_section(tiny_stack, image_size="big", vit_precision="fp8"), "run": {"max_epoch": 2.5}}
    )
    msg = _errors(path)
    assert "model.image_size" in msg and "expected int, got str 'big'" in msg
    assert "model.vit_precision" in msg and "expected one of ['fp16', 'bf16', 'fp32']" in msg
    assert "run.max_epoch" in msg and "expected int, got float 2.5" in msg


def test_missing_required_path_fails_before_build(tmp_path, tiny_stack):
    path = write_yaml(
        tmp_path / "bad.yaml", {"model": tiny_model_section(tiny_stack, llama_model=str(tmp_path / "nope"), vit_ckpt="missing_vit.pth")}
    )
    msg = _errors(path)
    assert f"model.llama_model in {path}: directory not found: {tmp_path / 'nope'}" in msg
    assert "model.vit_ckpt" in msg and "file not found: missing_vit.pth" in msg
    no_llm = write_yaml(tmp_path / "nollm.yaml", {"model": {"arch": "minigpt4", "model_type": "tiny"}})
    assert "model.llama_model: required key is missing" in _errors(no_llm)


def test_vit_config_keys_are_checked(tmp_path, tiny_stack):
    path = write_yaml(tmp_path / "bad.yaml", {"model": tiny_model_section(tiny_stack, vit_config={"hidden_sise": 8, "image_size": 32})})
    msg = _errors(path)
    assert "'hidden_sise' is not a Blip2VisionConfig field" in msg
    assert "'image_size' is set by model.image_size" in msg


def test_unknown_section_and_model_type(tmp_path, tiny_stack):
    path = write_yaml(tmp_path / "bad.yaml", {"model": tiny_model_section(tiny_stack, model_type="vicuna13"), "trainer": {}})
    msg = _errors(path)
    assert f"trainer in {path}: unknown section" in msg
    assert f"model.model_type in {path}: unknown model_type 'vicuna13'" in msg
    assert "'tiny'" in msg and "'vicuna0'" in msg and "custom_imports" in msg


def test_unknown_model_type_from_options_is_blamed_on_options(tiny_cfg_path):
    """It used to name the YAML file, which does not even mention the model_type."""
    with pytest.raises(ConfigError) as e:
        load_config(tiny_cfg_path, ["model.model_type=vicuna13"])
    assert "model.model_type in --options: unknown model_type 'vicuna13'" in str(e.value)
    assert str(tiny_cfg_path) not in str(e.value)


@pytest.mark.slow  # starts a Python process
def test_custom_imports_registers_components(tmp_path, tiny_stack):
    """A fresh process knows only the real model types; custom_imports brings the tiny one in."""
    plain = write_yaml(tmp_path / "plain.yaml", {"model": tiny_model_section(tiny_stack)})
    code = (
        "import sys; import minigpt4\n"
        "try:\n    minigpt4.load_config(sys.argv[1])\nexcept minigpt4.ConfigError as e:\n    print(e)\n"
        "cfg = minigpt4.load_config(sys.argv[1], ['custom_imports=[minigpt4.testing]'])\n"
        "print('loaded', cfg.model.model_type, list(cfg.custom_imports))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(plain)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "unknown model_type 'tiny'" in out.stdout and "custom_imports: [minigpt4.testing]" in out.stdout
    assert "loaded tiny ['minigpt4.testing']" in out.stdout


@pytest.mark.parametrize(
    "value, match",
    [
        ("[minigpt4.no_such_module]", "cannot import 'minigpt4.no_such_module': ModuleNotFoundError"),
        ("minigpt4.testing", "expected a list of module names"),
    ],
)
def test_bad_custom_imports(tmp_path, tiny_stack, value, match):
    path = tmp_path / "bad.yaml"
    path.write_text(f"custom_imports: {value}\n" + yaml.safe_dump({"model": tiny_model_section(tiny_stack)}))
    with pytest.raises(ConfigError, match=match) as e:
        load_config(path)
    assert f"custom_imports in {path}" in str(e.value)


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  arch: minigpt4\n  image_size: [224\n")
    msg = _errors(path)
    assert str(path) in msg and "line" in msg and "YAML syntax error" in msg


def test_bad_option_syntax(tiny_cfg_path):
    assert "expected key=value" in _errors(tiny_cfg_path, ["run.init_lr"])


def test_missing_config_file(tmp_path):
    assert "config file not found" in _errors(tmp_path / "none.yaml")


def test_standin_defaults_file_matches_standin_sizes():
    from minigpt4.config import PACKAGE_DIR, read_yaml
    from minigpt4.quickstart.standins import STANDIN

    d = read_yaml(PACKAGE_DIR / MiniGPT4.MODEL_TYPES["standin"])["model"]
    assert d["vit_config"] == STANDIN["vit"] and d["qformer_config"] == STANDIN["qformer"]
    assert d["image_size"] == STANDIN["image_size"] and d["num_query_token"] == STANDIN["num_query_token"]


def test_image_size_must_agree_between_model_and_processors(tmp_path, tiny_stack):
    """Training and evaluation alike: a processor image_size other than model.image_size is a config
    error naming both keys and the files that set them (it used to train silently with resized
    position embeddings, or die in the first step with a tensor-size RuntimeError)."""
    data = tmp_path / "flickr30k_train.json"
    data.write_text("[]")
    cfg = write_yaml(
        tmp_path / "c.yaml",
        {
            "model": tiny_model_section(tiny_stack),
            "datasets": {
                "flickr30k_caption": {
                    "build_info": {"ann_path": str(data), "image_path": str(tmp_path)},
                    "vis_processor": {"train": {"name": "blip2_image_train", "image_size": TINY_IMAGE_SIZE}},
                }
            },
            "evaluation_datasets": {
                "flickr30k_eval": {
                    "build_info": {"ann_path": str(data), "image_path": str(tmp_path)},
                    "vis_processor": {"eval": {"name": "blip2_image_eval", "image_size": TINY_IMAGE_SIZE}},
                }
            },
        },
    )
    load_config(cfg)  # agreeing sizes
    tiny_defaults = REPO / "minigpt4" / "testing" / "minigpt4_tiny.yaml"
    err = _errors(cfg, ["datasets.flickr30k_caption.vis_processor.train.image_size=224"])
    assert (
        f"datasets.flickr30k_caption.vis_processor.train.image_size is 224 (set in --options) but model.image_size "
        f"is {TINY_IMAGE_SIZE} (set in {tiny_defaults})"
    ) in err
    err = _errors(cfg, ["model.image_size=224"])
    assert "2 problems" in err
    assert (
        f"datasets.flickr30k_caption.vis_processor.train.image_size is {TINY_IMAGE_SIZE} (set in {cfg}) but "
        "model.image_size is 224 (set in --options)"
    ) in err
    assert f"evaluation_datasets.flickr30k_eval.vis_processor.eval.image_size is {TINY_IMAGE_SIZE} (set in {cfg})" in err
