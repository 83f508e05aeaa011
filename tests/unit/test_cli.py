"""Every command reports a user error as one ``error: ...`` message with exit status 2 and no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from minigpt4.cli import main as cli_main
from tests.helpers.configs import tiny_model_section, write_yaml
from tests.helpers.paths import REPO


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # starts a Python process
def test_train_py_with_a_typo_names_key_and_file(tmp_path, tiny_stack):
    cfg = write_yaml(
        tmp_path / "typo.yaml", {"custom_imports": ["minigpt4.testing"], "model": tiny_model_section(tiny_stack, num_querry_token=16)}
    )
    proc = _run("train.py", "--cfg-path", cfg)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: invalid config: model.num_querry_token in {cfg}: unknown key. Did you mean 'num_query_token'?")
    assert not (tmp_path / "output").exists()


@pytest.mark.slow  # starts a Python process
@pytest.mark.parametrize("command", [["eval_scripts/eval_flickr30k.py"], ["-m", "minigpt4.cli", "eval"]])
def test_evaluation_commands_report_a_missing_config(tmp_path, command):
    proc = _run(*command, "--cfg-path", tmp_path / "nope.yaml", "--save-path", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: invalid config: {tmp_path / 'nope.yaml'}: config file not found"


@pytest.mark.slow  # starts a Python process
def test_evaluate_sh_passes_flags_after_options(tmp_path):
    """--options no longer swallows the flags after it: --limit reaches the job (here: a bad value)."""
    proc = subprocess.run(
        ["bash", "evaluate.sh", str(tmp_path), "--options", "run.seed=1", "--limit", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--limit: expected an integer >= 1, got 0" in proc.stderr


def test_unknown_command(capsys):
    assert cli_main(["fly"]) == 2 and "usage: python -m minigpt4.cli" in capsys.readouterr().err
