import subprocess
import sys

import pytest

from minigpt4.registry import Registry
from tests.helpers.paths import REPO


def test_register_get_build():
    reg = Registry("widget")

    @reg.register("gear")
    class Gear:
        @classmethod
        def from_config(cls, cfg):
            obj = cls()
            obj.cfg = cfg
            return obj

    assert reg.get("gear") is Gear
    assert "gear" in reg and reg.names() == ["gear"]
    assert reg.build("gear", {"teeth": 3}).cfg == {"teeth": 3}
    assert Gear.registry_name == "gear"


def test_unknown_name_lists_registered_and_closest():
    reg = Registry("widget")
    for name in ("gear", "spring", "lever"):
        reg.register(name)(type(name, (), {}))
    with pytest.raises(KeyError) as e:
        reg.get("geer")
    msg = e.value.args[0]
    assert "Unknown widget 'geer'" in msg
    assert "Did you mean 'gear'?" in msg
    assert "gear, lever, spring" in msg


def test_duplicate_name_is_an_error():
    reg = Registry("widget")
    reg.register("gear")(type("A", (), {}))
    with pytest.raises(KeyError, match="already registered"):
        reg.register("gear")(type("B", (), {}))


def test_locations_are_imported_on_first_lookup(tmp_path, monkeypatch):
    widgets = "from tests.unit.test_registry import LAZY\n@LAZY.register('spring')\nclass Spring:\n    pass\n"
    (tmp_path / "my_widgets.py").write_text(widgets)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "my_widgets" not in sys.modules
    assert LAZY.names() == ["spring"] and "my_widgets" in sys.modules
    assert LAZY.get("spring").__module__ == "my_widgets"


LAZY = Registry("lazy widget", ["my_widgets"])


@pytest.mark.slow  # starts a Python process
def test_real_registries_load_their_modules_lazily():
    code = (
        "import sys; from minigpt4.registry import MODELS, RUNNERS; "
        "assert 'minigpt4.models.minigpt4' not in sys.modules; "
        "assert MODELS.names() == ['minigpt4'] and 'minigpt4.models.minigpt4' in sys.modules; "
        "assert 'epoch_runner' in RUNNERS and 'minigpt4.training.epoch_runner' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_the_official_runner_name_is_an_alias_of_epoch_runner():
    from minigpt4.registry import RUNNERS
    from minigpt4.training.epoch_runner import EpochRunner

    assert RUNNERS.get("runner_iter") is RUNNERS.get("epoch_runner") is EpochRunner
    assert EpochRunner.registry_name == "epoch_runner" and RUNNERS.names() == ["epoch_runner"]


def test_the_official_task_name_is_an_alias_of_captioning():
    from minigpt4.registry import TASKS
    from minigpt4.tasks.captioning import CaptioningTask

    assert TASKS.get("captioning") is TASKS.get("image_text_pretrain") is CaptioningTask
    assert CaptioningTask.registry_name == "captioning" and "image_text_pretrain" in TASKS
