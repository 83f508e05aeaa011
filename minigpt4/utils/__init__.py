"""Shared helpers: distributed setup, atomic file writes, logging, the prompt template."""
