"""The frozen vision stack's output, cached on disk by image content and model (``run.feature_cache``)."""

from .cache import DTYPES, FeatureCache, Lookup
from .keys import stack_key

__all__ = ["DTYPES", "FeatureCache", "Lookup", "stack_key"]
