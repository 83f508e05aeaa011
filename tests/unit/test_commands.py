"""Every command keeps its names: ``python -m minigpt4.cli COMMAND``, the console scripts of pyproject.toml,
the shims (``train.py``, ``prepare_flickr30k.py``, ``eval_scripts/eval_flickr30k.py``, ``evaluate.sh``) and
``python -m minigpt4.testing.stacks``; argument parsing lives in ``minigpt4/commands/`` only."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

import minigpt4.cli
from tests.helpers.paths import REPO

# the packages that may parse command lines: the commands, and the dev tools and demo with their own CLIs
MAY_PARSE = ("commands", "benchmarks", "quickstart", "testing")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, timeout=300)


def console_scripts() -> dict[str, str]:
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^(\S+) = "([^"]+)"$', section, flags=re.M))


def test_console_scripts_are_cli_functions():
    scripts = console_scripts()
    assert {"minigpt4-train", "minigpt4-eval", "minigpt4-torchrun", "minigpt4-random-stack"} <= set(scripts)
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert module == "minigpt4.cli" and callable(getattr(minigpt4.cli, function)), name


@pytest.mark.parametrize("command", list(minigpt4.cli.COMMANDS))
def test_every_command_has_help(command, capsys):
    try:
        status = minigpt4.cli.main([command, "--help"])
    except SystemExit as e:  # argparse's --help (torchrun's launcher returns instead)
        status = e.code
    assert status == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.slow  # starts a Python process
@pytest.mark.parametrize(
    "command",
    [
        ["python", "train.py"],
        ["python", "prepare_flickr30k.py"],
        ["python", "eval_scripts/eval_flickr30k.py"],
        ["python", "-m", "minigpt4.cli", "random-stack"],
        ["python", "-m", "minigpt4.testing.stacks"],
        ["bash", "evaluate.sh"],
    ],
)
def test_old_entry_points_still_answer_help(command):
    cmd = [sys.executable if c == "python" else c for c in command]
    proc = _run(*cmd, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("usage:" in proc.stdout) or ("Usage: bash evaluate.sh" in proc.stdout)


@pytest.mark.slow  # starts a Python process
def test_importing_the_cli_loads_no_command():
    heavy = "m.split('.')[0] in ('torch', 'transformers') or m.startswith('minigpt4.commands.')"
    code = f"import sys, minigpt4.cli; print(sorted(m for m in sys.modules if {heavy}))"
    proc = _run(sys.executable, "-c", code)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_only_the_commands_parse_arguments():
    found = []
    for path in sorted((REPO / "minigpt4").rglob("*.py")):
        parts = path.relative_to(REPO / "minigpt4").parts
        if parts[0] in MAY_PARSE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) else []
            )
            if "argparse" in names:
                found.append(str(path.relative_to(REPO)))
    assert not found, f"argparse outside minigpt4/{{{','.join(MAY_PARSE)}}}/: {found}"
