"""The package layout is the architecture: every product module imports only from its own layer or
the ones below it, and never the test helpers (``minigpt4.testing``) or the demo (``minigpt4.quickstart``)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO

PACKAGE = REPO / "minigpt4"
NOT_PRODUCT = ("minigpt4.testing", "minigpt4.quickstart")
# Lowest first. A module may import from any layer up to its own.
LAYERS = [
    ("minigpt4.errors", "minigpt4.registry"),
    ("minigpt4.utils",),
    ("minigpt4.config", "minigpt4.run_dir", "minigpt4.download"),
    ("minigpt4.processors",),
    ("minigpt4.datasets", "minigpt4.models", "minigpt4.features"),
    ("minigpt4.tasks",),
    ("minigpt4.training", "minigpt4.evaluation"),
    ("minigpt4.chat",),
    ("minigpt4.commands",),
    ("minigpt4.cli", "minigpt4"),
]


def module_name(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the longest matching prefix (``minigpt4.cli`` before ``minigpt4``)."""
    best, best_len = None, -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_len:
                best, best_len = i, len(name)
    assert best is not None, f"{module} is in no layer of tests/unit/test_layers.py: add it"
    return best


def product_modules() -> dict[str, object]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if not name.startswith(NOT_PRODUCT):
            out[name] = path
    return out


def imports_of(path, name: str) -> set[str]:
    """Every ``minigpt4`` module imported anywhere in the file (function bodies included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # "from pkg import module"
    return {m for m in found if m == "minigpt4" or m.startswith("minigpt4.")}


def known(module: str) -> str:
    """``module`` or, for ``pkg.name`` where name is not a module, ``pkg``."""
    parts = module.split(".")
    while parts:
        candidate = REPO.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return module


def test_product_modules_import_only_downwards():
    problems = []
    for name, path in product_modules().items():
        own = layer_of(name)
        for imported in sorted({known(m) for m in imports_of(path, name)}):
            if imported.startswith(NOT_PRODUCT):
                problems.append(f"{name} imports {imported} (test/demo code)")
            elif imported != "minigpt4" and layer_of(imported) > own:
                problems.append(f"{name} (layer {own}) imports {imported} (layer {layer_of(imported)})")
    assert not problems, "\n".join(problems)


@pytest.mark.slow  # starts a Python process
def test_importing_every_product_module_loads_no_test_or_demo_code():
    names = sorted(product_modules())
    code = (
        f"import importlib, sys\nfor m in {names!r}:\n    importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({NOT_PRODUCT!r}))\n"
        "assert not bad, bad\nprint(len(" + repr(names) + "))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) == len(names) > 40


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "minigpt4" / "utils" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from minigpt4.training.epoch_runner import EpochRunner\n    from ..testing import stacks\n")
    found = imports_of(bad, "minigpt4.utils.bad")
    assert {"minigpt4.training.epoch_runner", "minigpt4.testing"} <= found
    assert layer_of("minigpt4.training.epoch_runner") > layer_of("minigpt4.utils.bad")
