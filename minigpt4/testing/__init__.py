"""Test helpers (never imported by the product modules): random MiniGPT-4 stacks in the official file
layouts (``stacks``; also at the official sizes) and a NaN-injecting task (``tasks``).

Importing this package (``custom_imports: [minigpt4.testing]`` in a config) registers
``model_type: tiny`` (``minigpt4_tiny.yaml``), ``tiny_llama2`` (the Llama-2 variant,
``minigpt4_tiny_llama2.yaml``) and the task ``nan_injecting``.
"""

from pathlib import Path

from minigpt4.models.model_types import register_model_type
from minigpt4.testing import tasks  # noqa: F401  (registers the task)

register_model_type("tiny", Path(__file__).with_name("minigpt4_tiny.yaml"))
register_model_type("tiny_llama2", Path(__file__).with_name("minigpt4_tiny_llama2.yaml"))
