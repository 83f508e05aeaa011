"""The evaluation job over a run's checkpoints (``job``: ``evaluate.sh``, ``eval_scripts/eval_flickr30k.py``),
its results (``fingerprint``, ``summary``, ``plot``, ``report``) and ``minigpt4-caption``. How a caption is
generated and scored is the task's (``minigpt4.tasks.captioning``); its metrics are re-exported here."""

from minigpt4.errors import ScoringSetupError
from minigpt4.tasks.captioning.scoring import METRICS, CaptionScorer, score_captions, shared_scorer

__all__ = ["METRICS", "CaptionScorer", "ScoringSetupError", "score_captions", "shared_scorer"]
