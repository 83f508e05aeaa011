"""The MiniGPT-4 model (``minigpt4``), its parts (``vision``, ``qformer``, ``llm``), the official key maps
and weight loading (``weights``), and the ``model`` section schema."""
