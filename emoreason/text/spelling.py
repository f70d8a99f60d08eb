"""Whisper's British -> American spelling map, shared by the WER normaliser, the offline SQA judge
and quote groundedness ("neighbor" quotes a spoken "neighbour")."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def spelling_map() -> dict[str, str]:
    """Whisper's British -> American spelling map (``english.json`` of the whisper-normalizer
    package, identical to the file openai-whisper ships; 1,739 lowercase entries)."""
    path = resources.files("whisper_normalizer").joinpath("normalizers", "english.json")
    return json.loads(path.read_text(encoding="utf-8"))


def american(words: list[str]) -> list[str]:
    """Lowercase ``words`` in American spelling (words the map does not list stay as they are)."""
    mapping = spelling_map()
    return [mapping.get(w, w) for w in words]
