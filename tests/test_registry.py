import pytest

from minigpt4.common.registry import Registry


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


def test_real_registries_are_populated():
    from minigpt4.common.config import import_components
    from minigpt4.common.registry import MODELS

    import_components()
    assert "minigpt4" in MODELS
