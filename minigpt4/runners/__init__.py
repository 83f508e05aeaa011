"""Runners and lr schedules; importing this package registers them.

Modules: ``runner`` (the training loop), ``optim`` (AdamW groups), ``lr_schedulers``,
``checkpoint`` (save/load/resume lookup), ``data`` (endless resumable loader), ``outputs`` (run
folder), ``launch`` (what ``train.py`` runs), ``schema`` (the ``run`` section's keys).
"""
from minigpt4.runners import lr_schedulers, runner  # noqa: F401
