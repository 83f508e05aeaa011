"""docs/config.md's config-key table is generated from the schemas and must stay in sync with them."""

import pytest

from minigpt4.config import docs as schema_doc
from minigpt4.config.schema import Key
from minigpt4.training.schema import RUN_SCHEMA
from tests.helpers.paths import REPO


def test_readme_config_table_is_current():
    assert schema_doc.update(REPO / "docs" / "config.md", check=True), (
        "docs/config.md's config-key table is stale: run python -m minigpt4.config.docs"
    )


def test_every_schema_key_appears_in_readme():
    text = (REPO / "docs" / "config.md").read_text()
    for key in RUN_SCHEMA:
        assert f"| `run.{key}` |" in text


def test_a_new_key_makes_the_check_fail(monkeypatch, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "docs" / "config.md").read_text())
    monkeypatch.setitem(RUN_SCHEMA, "brand_new_key", Key("A key added without regenerating the docs.", int, 1))
    assert not schema_doc.update(readme, check=True)
    assert schema_doc.main(["--readme", str(readme), "--check"]) == 1
    schema_doc.update(readme)  # regenerating fixes it
    assert schema_doc.update(readme, check=True) and "`run.brand_new_key`" in readme.read_text()


def test_an_undocumented_key_is_refused(monkeypatch):
    monkeypatch.setitem(RUN_SCHEMA, "mystery", Key("", int, 1))
    with pytest.raises(schema_doc.UndocumentedKey, match="run.mystery"):
        schema_doc.render()
