"""QA training rows (paper section 3.1): a sampled question plus the reasoning target.

Emotion / sentiment rows get ``instruction`` (kept when the importer already chose one, otherwise
:func:`emoreason.data.questions.instruction_for`, which gives a row the same question in every
process) and ``target`` = the label sentence (``labels.label_sentence``) followed by the teacher's
explanation. Every other field is kept. ASR / SQA and other rows pass through unchanged.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from emoreason.data.manifest import ManifestRow
from emoreason.data.questions import POOLS_VERSION, instruction_for
from emoreason.labels import label_sentence

TEACH_TASKS = ("emotion", "sentiment")
"""Tasks that get reasoning targets; rows of any other task pass through."""


def needs_teaching(row: ManifestRow) -> bool:
    return row.task in TEACH_TASKS and bool(row.label)


def compose_target(task: str, label: str, explanation: str | None) -> str:
    """``label_sentence`` + explanation (the label-only target when ``explanation`` is empty).

    An explanation that already opens with the label sentence is not given it twice."""
    head = label_sentence(task, label)
    body = (explanation or "").strip()
    if body.lower().startswith(head.lower()):
        body = body[len(head) :].strip()
    return f"{head} {body}" if body else head


def qa_row(row: ManifestRow, label: str, explanation: str | None, seed: int = 0, meta: dict[str, Any] | None = None) -> ManifestRow:
    """The training row for a taught ``row``: instruction + target, ``meta`` merged in."""
    instruction = row.instruction
    new_meta = dict(row.meta)
    if not instruction:
        instruction = instruction_for(row.id, row.task, seed)
        new_meta["pools_version"] = POOLS_VERSION
    new_meta.update(meta or {})
    return dataclasses.replace(row, instruction=instruction, target=compose_target(row.task, label, explanation), meta=new_meta)
