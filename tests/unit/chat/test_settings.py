"""Generation settings: greedy by default, KEY=VALUE updates, clear errors."""

from __future__ import annotations

import pytest

from minigpt4.chat.settings import GenerationSettings
from minigpt4.errors import ChatError


def test_defaults_are_greedy_and_updates_parse_types():
    s = GenerationSettings()
    assert s.sample is False and s.num_beams == 1 and s.seed is None
    t = s.updated(["sample=true", "temperature=0.7", "seed=3", "max-new-tokens=20"])
    assert (t.sample, t.temperature, t.seed, t.max_new_tokens) == (True, 0.7, 3, 20)
    assert t.updated(["seed=none"]).seed is None
    assert "temperature=0.7" in t.describe()


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("temperature=hot", "expected a number"),
        ("num_beams=0", "expected 1 to 20"),
        ("top_p=2", "expected 0.01 to 1.0"),
        ("sample=maybe", "expected true or false"),
        ("colour=red", "KEY one of max_new_tokens"),
        ("temperature", "expected KEY=VALUE"),
    ],
)
def test_bad_settings_say_what_was_expected(pair, message):
    with pytest.raises(ChatError, match=message):
        GenerationSettings().updated([pair])


def test_docs_chat_md_lists_every_setting_with_its_default():
    import re

    from minigpt4.chat.settings import FIELDS
    from tests.helpers.paths import REPO

    text = (REPO / "docs" / "chat.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, re.M))
    defaults = GenerationSettings()
    for key in FIELDS:
        shown = str(getattr(defaults, key)).lower()
        assert rows.get(key, "").strip() == shown, f"docs/chat.md: setting {key} (default {shown})"
