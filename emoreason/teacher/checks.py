"""Checks on every teacher output: does it state the gold label, and do its quotes exist?

A simple synonym match (``emoreason.labels.SYNONYMS``) is enough here because the teacher was told
the label; the evaluation's judge (``emoreason.eval``) does the harder extraction from model output.
Quotes are found and normalised by ``emoreason.text.quotes`` (the package's one quote extractor).

    result = check_output(text, transcript="I lost my keys again", label="frustrated", style="detailed")
    result.ok, result.reasons   # (False, ["quote not in transcript: 'my wallet'"])
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from emoreason.text.quotes import extract_quotes, normalize_quote
from emoreason.labels import SYNONYMS

QUOTE_MIN_RATIO = 0.8
_NEGATORS = {"not", "no", "never", "isn't", "wasn't", "aren't", "doesn't", "don't", "didn't", "hardly", "without"}
_WORD_RE = re.compile(r"[a-z<>]+(?:'[a-z]+)?")


@dataclass
class CheckResult:
    """Outcome of :func:`check_output`; ``reasons`` is empty when ``ok``."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    quotes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"ok": self.ok, "reasons": self.reasons, "quotes": self.quotes}


def canonical_label(label: str) -> str:
    """Corpus spelling -> canonical label via SYNONYMS (unknown labels stay as they are)."""
    key = label.strip().lower()
    return SYNONYMS.get(key, key)


def mentioned_labels(text: str) -> list[tuple[str, bool]]:
    """Canonical labels mentioned in ``text``, in order, each with whether it is negated
    ("not angry", "no anger": a negator within the three preceding words)."""
    words = _WORD_RE.findall(text.lower().replace("\u2019", "'"))
    out = []
    for i, w in enumerate(words):
        canon = SYNONYMS.get(w)
        if canon is not None:
            negated = any(p in _NEGATORS or p.endswith("n't") for p in words[max(0, i - 3) : i])
            out.append((canon, negated))
    return out


def quote_match_ratio(quote: str, transcript: str) -> float:
    """Best difflib ratio between the normalised quote and any same-length word window of the
    normalised transcript (1.0 for an exact substring)."""
    q, t = normalize_quote(quote), normalize_quote(transcript)
    if not q:
        return 0.0
    if q in t:
        return 1.0
    qw, tw = q.split(), t.split()
    best = 0.0
    for n in {max(1, len(qw) - 1), len(qw), len(qw) + 1}:
        for i in range(0, max(1, len(tw) - n + 1)):
            best = max(best, difflib.SequenceMatcher(None, q, " ".join(tw[i : i + n])).ratio())
    return best


def check_output(text: str, transcript: str | None, label: str, style: str) -> CheckResult:
    """Check one teacher output against the gold ``label`` and the ``transcript``.

    Reasons: empty output; gold label not stated (or only negated); a quote that is not in the
    transcript (ratio < 0.8); ``detailed`` style with no quote at all (when there is a transcript).
    """
    reasons: list[str] = []
    text = (text or "").strip()
    if not text:
        return CheckResult(False, ["empty output"])
    gold = canonical_label(label)
    mentions = mentioned_labels(text)
    if not any(c == gold and not neg for c, neg in mentions):
        if any(c == gold for c, _ in mentions):
            reasons.append(f"label {gold!r} only negated")
        else:
            others = sorted({c for c, neg in mentions if not neg})
            reasons.append(f"label {gold!r} not stated" + (f" (says {', '.join(others)})" if others else ""))
    # the label word in quotes ('the emotion "angry"') is not a quote of the transcript
    quotes = [q for q in extract_quotes(text) if SYNONYMS.get(normalize_quote(q)) is None]
    if transcript and transcript.strip():
        for q in quotes:
            if quote_match_ratio(q, transcript) < QUOTE_MIN_RATIO:
                reasons.append(f"quote not in transcript: {q[:60]!r}")
        if style == "detailed" and not quotes:
            reasons.append("no quote from the transcript")
    return CheckResult(not reasons, reasons, quotes)
