"""The analysis result every front end returns (CLI ``--json``, server, batch): plain dataclasses.

    {"file": "a.wav", "model": "runs/x/final", "task": "emotion", "duration": 3.2,
     "label": "angry", "scores": {"angry": 0.71, ...}, "explanation": "The speaker sounds angry. ...",
     "quotes": [{"text": "I hate this", "start": null, "end": null, "grounded": true}], "cues": {...}, "segments": [],
     "transcript": {"text": "I hate this.", "source": "whisper",
                    "words": [{"text": "I", "start": 0.0, "end": 0.3, "probability": 0.98}, ...]},
     "answer": null, "question": null, "consistent": true, "explanation_trimmed": 0}

Which fields a task fills:

| task | label / scores | explanation, quotes | transcript | answer, question |
|---|---|---|---|---|
| emotion, sentiment | forced choice | generated (after the label's sentence by default) | Whisper or the model's ASR (unless turned off) | null |
| asr | null / {} | "" / [] | the generated transcript (Whisper's with ``transcript="whisper"``) | null |
| sqa | null / {} | "" / [] | Whisper or the model's ASR (unless turned off) | generated / asked |

``segments`` is empty for clips of at most one window (30 s); longer clips get one entry per
window (same fields, with ``start`` / ``end`` seconds) and the top-level fields summarise them.
The keys of earlier versions keep their meaning; ``transcript``, ``answer``, ``question`` and
``consistent`` were added (always present, null when not produced), then ``explanation_trimmed``
(always present, 0 unless sentences were dropped).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Quote:
    """A span quoted in the explanation. ``start`` / ``end`` (seconds in the file) bound where it
    was said when known: for long audio, the window whose explanation quoted it; else None.
    ``grounded``: the quote is a span of its window's transcript after normalisation
    (``emoreason.text.quotes.is_transcript_span``); False when there is no transcript. With
    constrained quotes (the default when a transcript is made) every quote is grounded."""

    text: str
    start: float | None = None
    end: float | None = None
    grounded: bool = False


TRANSCRIPT_SOURCES = ("model-asr", "whisper")
"""Where a transcript came from. ``model-asr``: the AudioLLM's own ASR task (greedy generation
from the first ASR instruction of the training pool); ``whisper``: the speech encoder's own
Whisper decoder over the frames the AudioLLM computed, with word timings; ``whisper:<transcriber>``
(not listed: it names the checkpoint) another Whisper checkpoint chosen when the engine was loaded
(``Engine.load(transcriber=...)``, ``--transcriber``), also with word timings."""


@dataclass
class Transcript:
    """What was said: ``text``, its ``source`` (one of :data:`TRANSCRIPT_SOURCES`) and ``words``
    (``{"text", "start", "end", "probability"}``, seconds in the file, in order) where a source
    knows word timings: Whisper's come from its cross-attention (20 ms steps), ``probability``
    (0-1) is the decoder's confidence in the word (the least probable of its tokens); the model's
    ASR has neither, so its ``words`` is empty."""

    text: str
    source: str
    words: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Segment:
    """The analysis of one window of a long clip (``start`` / ``end`` in seconds).

    ``label`` is None and ``scores`` empty for tasks without labels (asr, sqa)."""

    start: float
    end: float
    label: str | None
    scores: dict[str, float]
    explanation: str
    quotes: list[Quote]
    cues: dict[str, Any] = field(default_factory=dict)
    transcript: Transcript | None = None
    """This window's transcript (asr: the task's output; other tasks: the extra ASR generation)."""
    answer: str | None = None
    """sqa: this window's answer to the question."""
    consistent: bool | None = None
    """Whether the label read back from ``explanation`` (``emoreason.text.label_extraction``) is
    ``label``; None when no label can be read (or there is no explanation)."""
    explanation_trimmed: int = 0
    """How many generated sentences were dropped from ``explanation`` because they stopped agreeing
    with ``label`` (``explain="forced"`` only: ``emoreason.text.agreement``)."""


@dataclass
class AnalysisResult:
    """One clip's answer: forced-choice ``label`` + ``scores`` (sum to 1), generated ``explanation``,
    its ``quotes``, measured ``cues``; ``segments`` for clips longer than one window; the clip's
    ``transcript``; for sqa the ``question`` and the generated ``answer`` (see the module table)."""

    file: str
    model: str
    task: str
    duration: float
    label: str | None
    scores: dict[str, float]
    explanation: str
    quotes: list[Quote]
    cues: dict[str, Any] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    transcript: Transcript | None = None
    """Window transcripts stitched in window order (long audio), or None when none was generated."""
    answer: str | None = None
    """sqa: the answer; long audio: the windows' answers, one line each, in window order."""
    question: str | None = None
    """sqa: the question asked."""
    consistent: bool | None = None
    """emotion / sentiment: whether the explanation commits to ``label`` (the label read back
    from its text by ``emoreason.text.label_extraction``); False flags a disagreement; None when
    no label can be read from the text (or there is none: asr, sqa, max_new_tokens 0)."""
    explanation_trimmed: int = 0
    """How many generated sentences were cut from ``explanation`` (``explain="forced"``): the
    sentences from the first that repeated an earlier one, named another label, or made the text
    stop reading as ``label`` (``emoreason.text.agreement``). 0 when nothing was cut; for long
    audio, that of the window whose explanation is shown."""
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
