"""Fetching and verifying the weights (``minigpt4-download``): the manifest, resumable downloads."""
