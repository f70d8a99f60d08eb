"""The analysis result every front end returns (CLI ``--json``, server, batch): plain dataclasses.

    {"file": "a.wav", "model": "runs/x/final", "task": "emotion", "duration": 3.2,
     "label": "angry", "scores": {"angry": 0.71, ...}, "explanation": "The speaker sounds angry. ...",
     "quotes": [{"text": "I hate this", "start": null, "end": null}], "cues": {...}, "segments": []}

``segments`` is empty for clips of at most one window (30 s); longer clips get one entry per
window (same fields, with ``start`` / ``end`` seconds) and the top-level fields summarise them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Quote:
    """A span quoted in the explanation. ``start`` / ``end`` (seconds in the file) bound where it
    was said when known: for long audio, the window whose explanation quoted it; else None."""

    text: str
    start: float | None = None
    end: float | None = None


@dataclass
class Segment:
    """The analysis of one window of a long clip (``start`` / ``end`` in seconds)."""

    start: float
    end: float
    label: str
    scores: dict[str, float]
    explanation: str
    quotes: list[Quote]
    cues: dict[str, Any] = field(default_factory=dict)


@dataclass
class AnalysisResult:
    """One clip's answer: forced-choice ``label`` + ``scores`` (sum to 1), generated ``explanation``,
    its ``quotes``, measured ``cues``; ``segments`` for clips longer than one window."""

    file: str
    model: str
    task: str
    duration: float
    label: str
    scores: dict[str, float]
    explanation: str
    quotes: list[Quote]
    cues: dict[str, Any] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    ok: bool = field(default=True, init=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["ok"]
        return out


@dataclass
class AnalysisError:
    """A file that could not be analysed; ``error`` is one line naming the file."""

    file: str
    error: str
    ok: bool = field(default=False, init=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "error": self.error}
