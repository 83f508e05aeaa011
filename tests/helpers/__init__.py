"""Helpers the tests import (``from tests.helpers.training import run_train``): plain functions and
constants. Fixtures and hooks stay in ``tests/conftest.py``; no test imports from it.

- ``paths``: the repository's folders and files the tests use.
- ``configs``: config files for the tiny stack and the official-structure configs.
- ``processes``: subprocesses (``run_ok``) and interrupting them (``interrupt_when``).
- ``training``: ``train.py`` runs of the tiny stack and their run folders; ``overfit``.
- ``evaluation``: checkpoints near a base, evaluation outputs, metrics/captions files as the job
  writes them, and the stand-ins' evaluation setup behind the ``standin_eval`` fixture.
"""
