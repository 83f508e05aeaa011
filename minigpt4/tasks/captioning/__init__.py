"""The captioning task: what a sample is, the training step, which split is evaluated, and how its
captions are generated (``generation``) and scored with the COCO caption metrics (``scoring``)."""

from minigpt4.tasks.captioning.generation import batch_size_eval
from minigpt4.tasks.captioning.scoring import METRICS, CaptionScorer, score_captions, shared_scorer
from minigpt4.tasks.captioning.task import CaptioningTask, check_unique_ids

__all__ = ["METRICS", "CaptionScorer", "CaptioningTask", "batch_size_eval", "check_unique_ids", "score_captions", "shared_scorer"]
