"""Tasks: what a sample is, how a batch is trained on and how captions are scored (``captioning``)."""
