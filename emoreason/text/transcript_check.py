"""Transcript words that a second transcriber heard too (``quote_check``): the words quotes may hold.

A constrained quote is a span of the engine's transcript, so it repeats the transcriber's
mishearings; a word probability threshold (``quote_min_probability``) removes some of them, but a
small Whisper is often confidently wrong. Two different Whisper checkpoints seldom mishear a word
the same way, so a word that a second checkpoint's transcript of the same audio also has, in the
same order, is far more often one that was said (ROVER-style agreement between recognisers).
Measured on our espeak speech (docs/evaluation.md, "Words both transcribers heard"): among the
words tiny.en gave probability >= 0.7, 11.3 % were not said; among those whisper-base also heard,
3.4 %.

    confirm_words(words, other_words)   # sets words[i]["confirmed"] = True / False in place

Nothing here imports torch.
"""
from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any, Sequence

from emoreason.text.quotes import quote_words


def _key(text: str) -> str:
    """A word as compared across transcripts: :func:`quote_words` joined ("Don't," -> "don't")."""
    return " ".join(quote_words(text))


def confirm_words(words: list[dict[str, Any]], other_words: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark each of ``words`` (``{"text", ...}`` in order, one transcriber's) ``confirmed``: True
    when it lies in a matching run of a word alignment (``difflib``, no junk heuristic) with
    ``other_words`` (another transcriber's words of the same audio), else False. A word that
    normalises to nothing (a lone punctuation token) is confirmed: it cannot be misheard. Returns
    ``words`` (changed in place)."""
    mine = [_key(w["text"]) for w in words]
    theirs = [_key(w["text"]) for w in other_words]
    confirmed = [not key for key in mine]
    matcher = SequenceMatcher(None, mine, theirs, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            confirmed[block.a + k] = True
    for word, ok in zip(words, confirmed):
        word["confirmed"] = ok
    return words
