"""The MiniGPT-4 model (``minigpt4``), its parts (``vision``, ``qformer``, ``llm``; ``stack`` builds the
vision part), the official variants and checkpoints (``variants``), the official key maps and weight
loading (``weights``), FLOPs (``flops``) and the ``model`` section schema."""
