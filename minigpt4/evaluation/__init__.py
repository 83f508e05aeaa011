"""Caption evaluation: metrics (``score_captions``, ``CaptionScorer``), the Flickr30k evaluation job
(``eval_scripts/eval_flickr30k.py``) and run summaries (``python -m minigpt4.evaluation.summary``)."""
from minigpt4.evaluation.scoring import METRICS, CaptionScorer, ScoringSetupError, score_captions

__all__ = ["METRICS", "CaptionScorer", "ScoringSetupError", "score_captions"]
