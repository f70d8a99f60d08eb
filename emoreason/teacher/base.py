"""What every teacher backend takes and returns, and the two ways a request can fail.

A backend turns a :class:`TeachRequest` into text. LLM backends send ``request.prompt`` (the
rendered versioned template); the offline backend composes from the structured fields instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from emoreason.errors import UserError


@dataclass(frozen=True)
class TeachRequest:
    """One reasoning target to produce."""

    row_id: str
    task: str
    """``emotion`` or ``sentiment`` (selects the prompt variant)."""
    style: str
    """``summary`` | ``detailed`` | ``label``."""
    transcript: str
    label: str
    """Gold label, canonical form."""
    prompt: str
    """The rendered template (what an LLM receives as the user turn)."""
    cue_phrases: tuple[str, ...] = ()
    attempt: int = 0
    """0 for the first try; retries after a failed check ask again with a different seed."""


class TeacherError(Exception):
    """This request failed (after the backend's own retries); the row is counted as an error and
    left for the next run."""


class TeacherUnavailable(UserError):
    """The teacher cannot serve any request (unreachable endpoint, rejected model or key):
    the run stops; finished rows are kept."""


class Teacher(Protocol):
    """A teacher backend."""

    name: str
    """Recorded in ``meta.teacher.backend`` (``offline``, the endpoint URL, ``local:PATH``)."""
    model: str | None
    max_concurrency: int | None
    """Upper bound on parallel requests the backend supports (None: no bound)."""

    async def complete(self, request: TeachRequest) -> str:
        """The teacher's text for ``request``; raise TeacherError / TeacherUnavailable."""
        ...

    async def aclose(self) -> None:
        ...
