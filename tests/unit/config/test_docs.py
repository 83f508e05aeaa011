"""docs/config.md's config-key table is generated from the schemas and must stay in sync with them."""

import re
from pathlib import Path

import pytest

from minigpt4.commands import config_docs
from minigpt4.config import docs as schema_doc
from minigpt4.config.schema import Key
from minigpt4.training.schema import RUN_SCHEMA
from tests.helpers.paths import REPO


def test_readme_config_table_is_current():
    assert config_docs.main(["--check"]) == 0  # the command's default file is the repository's docs/config.md
    assert schema_doc.update(REPO / "docs" / "config.md", check=True), (
        "docs/config.md's config-key table is stale: run python -m minigpt4.commands.config_docs"
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
    assert config_docs.main(["--readme", str(readme), "--check"]) == 1
    schema_doc.update(readme)  # regenerating fixes it
    assert schema_doc.update(readme, check=True) and "`run.brand_new_key`" in readme.read_text()


def test_an_undocumented_key_is_refused(monkeypatch):
    monkeypatch.setitem(RUN_SCHEMA, "mystery", Key("", int, 1))
    with pytest.raises(schema_doc.UndocumentedKey, match="run.mystery"):
        schema_doc.render()


# README is the front door; measurements and the project's history live in docs/ and BENCHMARKS.md.
DOCS = ["README.md", "BENCHMARKS.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of the Markdown headings in ``path`` (code blocks skipped, repeats numbered)."""
    found: set[str] = set()
    in_code = False
    for line in path.read_text().splitlines():
        if FENCE.match(line.strip()):
            in_code = not in_code
            continue
        m = re.match(r"^#{1,6} +(.*?) *#* *$", line)
        if in_code or not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        base, n = slug, 0
        while slug in found:
            n += 1
            slug = f"{base}-{n}"
        found.add(slug)
    return found


def test_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200, "README.md is the front door: move details to docs/"
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "dated measurements belong in BENCHMARKS.md"
    assert not re.search(r"\bcommit [0-9a-f]{7,40}\b", text), "commit hashes belong in BENCHMARKS.md"
    assert not re.search(r"Xeon|EPYC", text), "machine names belong in BENCHMARKS.md"


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_resolve(doc):
    """Every relative link of the docs names a file of the repository, and a heading of it when it has an anchor."""
    source = REPO / doc
    broken = []
    for target in LINK.findall(source.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:, file:
            continue
        file, _, anchor = target.partition("#")
        path = (source.parent / file).resolve() if file else source
        if not path.exists():
            broken.append(f"{target}: no file {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(REPO)}")
    assert not broken, f"{doc}: " + "; ".join(broken)


def test_comments_point_only_to_documents_in_the_repository():
    """Comments, docstrings and docs state the fact, or name a document the repository has: no spec sections or issue numbers."""
    pattern = re.compile(r"\bspec(ification)?( section|:) ?\d|\bsection \d+\b|\bissue #?\d+\b|\bfrom the issue\b", re.I)
    files = [p for ext in ("py", "yaml", "sh", "md") for p in REPO.rglob(f"*.{ext}")]
    skip = ("cache", "output", ".git", "build")
    hits = [
        f"{p.relative_to(REPO)}:{i}: {line.strip()}"
        for p in files
        if not set(p.relative_to(REPO).parts) & set(skip) and not p.relative_to(REPO).parts[0].startswith(".venv")
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if pattern.search(line) and "pattern = re.compile" not in line
    ]
    assert not hits, "\n".join(hits)
