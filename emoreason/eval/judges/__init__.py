"""Judges turn one prepared row into a score.

A prepared row (see ``emoreason.eval.scoring.prepare_row``) has ``task`` (emotion | sentiment |
sqa | asr), ``prediction``, ``reference``, ``question``, ``transcript``, ``gold`` (canonical label
for emotion / sentiment) and ``quotes`` (extracted from the prediction).

Every judge returns a dict merged into the row: ``score`` on the task's native scale (0/1 binary,
0-5 open-ended, WER fraction for asr), ``success`` (the rating could be read), ``judge`` (details),
and for rows with quotes and a transcript ``groundedness`` / ``relevance`` (0-2).
"""
from __future__ import annotations

from emoreason.eval.judges.scales import MAX_RATING, SCALE

__all__ = ["MAX_RATING", "SCALE", "make_judge"]


def make_judge(spec: str, *, offline_reading: str = "audiobench", **llm_options):
    """``offline`` -> :class:`OfflineJudge` with the named reading (``audiobench`` or ``literal``,
    see ``emoreason.text.label_extraction.READINGS``); an http(s) URL -> :class:`LLMJudge` on that
    endpoint."""
    from emoreason.errors import UserError

    if spec == "offline":
        from emoreason.eval.judges.offline import OfflineJudge
        from emoreason.text.label_extraction import READINGS

        if offline_reading not in READINGS:
            raise UserError(f"--offline-reading {offline_reading!r}: expected one of {sorted(READINGS)}")
        return OfflineJudge(reading=READINGS[offline_reading])
    if spec.startswith(("http://", "https://")):
        from emoreason.eval.judges.llm import LLMJudge

        return LLMJudge(spec, **llm_options)
    raise UserError(f"--judge {spec!r}: expected 'offline' or an OpenAI-compatible base URL (http://host:port/v1)")
