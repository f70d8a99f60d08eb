"""The audio marker tokens every model's vocabulary reserves, and the check that keeps user text
free of them.

``<audio>`` is the placeholder the audio embeddings fill (``emoreason.model.processing``): a prompt,
question or manifest text holding it literally would be tokenised as one more placeholder, and the
model would find more placeholders than audio tokens. So such text is refused where it comes in
(CLI and server arguments, manifest rows), with one line, before any work starts.
"""
from __future__ import annotations

from emoreason.errors import UserError

AUDIO_START = "<audio_start>"
AUDIO = "<audio>"
AUDIO_END = "<audio_end>"
AUDIO_TOKENS = (AUDIO_START, AUDIO, AUDIO_END)


def reserved_token_in(text: str | None) -> str | None:
    """The first audio marker token found in ``text``, or None."""
    if not text:
        return None
    return next((token for token in AUDIO_TOKENS if token in text), None)


def check_no_reserved_tokens(text: str | None, what: str) -> None:
    """UserError naming ``what`` (e.g. "the prompt") when ``text`` holds an audio marker token."""
    token = reserved_token_in(text)
    if token is not None:
        raise UserError(f"{what} contains {token!r}, a token reserved for the audio; remove or reword it")
