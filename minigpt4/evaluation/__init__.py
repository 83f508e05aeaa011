"""Caption evaluation: metrics (``scoring``: ``score_captions``, ``CaptionScorer``), sharded generation
(``generation``), the evaluation job over a run's checkpoints (``job``: ``evaluate.sh``,
``eval_scripts/eval_flickr30k.py``) and run summaries (``summary``, ``plot``)."""

from minigpt4.errors import ScoringSetupError
from minigpt4.evaluation.scoring import METRICS, CaptionScorer, score_captions

__all__ = ["METRICS", "CaptionScorer", "ScoringSetupError", "score_captions"]
