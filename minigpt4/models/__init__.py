"""Models; importing this package registers them."""
from minigpt4.models import minigpt4  # noqa: F401
