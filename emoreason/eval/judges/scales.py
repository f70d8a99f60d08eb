"""Rating scales of the judges (a module of its own so judge implementations can import them
without importing the package that chooses between them)."""
from __future__ import annotations

SCALE = {"emotion": 100.0, "sentiment": 100.0, "sqa": 20.0}
"""Per-row score -> 0-100 (AudioBench: binary x 100, 0-5 x 20)."""
MAX_RATING = {"emotion": 1, "sentiment": 1, "sqa": 5}
"""Highest rating the judge may give per task (binary rubric for labels, 0-5 for open answers)."""
