"""Registered processors; importing this package registers them.

``blip2_image_eval``, ``blip2_image_train`` (images -> FloatTensor [3, S, S]) and ``blip_caption``
(caption text). Build one with ``build_processor({"name": ..., **keys})``.
"""

from .base import BaseProcessor, build_processor, processor_problems, processors_key
from .image import CLIP_MEAN, CLIP_STD, Blip2ImageEvalProcessor, Blip2ImageTrainProcessor
from .text import BlipCaptionProcessor, clean_caption

__all__ = [
    "BaseProcessor",
    "build_processor",
    "processor_problems",
    "processors_key",
    "CLIP_MEAN",
    "CLIP_STD",
    "Blip2ImageEvalProcessor",
    "Blip2ImageTrainProcessor",
    "BlipCaptionProcessor",
    "clean_caption",
]
