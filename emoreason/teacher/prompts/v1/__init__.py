"""Prompt templates, version 1 (see ../README.md)."""
