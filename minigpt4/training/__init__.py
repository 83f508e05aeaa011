"""Training: ``launch`` (what ``train.py`` runs), ``runner`` (the loop), ``data`` (endless resumable
loader), ``optim`` (AdamW groups), ``lr_schedulers``, ``checkpoint`` (training-checkpoint contents)
and ``schema`` (the ``run`` section's keys)."""
