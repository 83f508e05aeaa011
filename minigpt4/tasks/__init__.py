"""Tasks; importing this package registers them."""
from minigpt4.tasks import image_text_pretrain  # noqa: F401
