"""Tasks: what a sample is, how a batch is trained on, and how the outputs are generated and scored
(``captioning``)."""
