"""The quickstart's demo pieces (never imported by the product modules): a synthetic Flickr30k sample
(``synthetic``), pre-trained tiny stand-ins for the frozen parts (``standins``), how often captions
name the right shape and colours (``check``) and the printed report (``report``).

Importing this package (``custom_imports: [minigpt4.quickstart]`` in a config) registers
``model_type: standin`` (``minigpt4_standin.yaml``).
"""

from pathlib import Path

from minigpt4.models.model_types import register_model_type

register_model_type("standin", Path(__file__).with_name("minigpt4_standin.yaml"))
