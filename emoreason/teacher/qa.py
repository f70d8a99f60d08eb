"""QA training rows (paper section 3.1): a sampled question plus the target.

Emotion / sentiment rows get ``instruction`` (kept when the importer already chose one, otherwise
:func:`emoreason.data.questions.instruction_for`, which gives a row the same question in every
process) and ``target``:

- reasoning styles: the teacher's explanation, by default after the label sentence
  (``labels.label_sentence``; ``label_prefix=False`` gives the explanation alone, as the paper);
- the label-only style: the corpus' own answer sentence (``meta.corpus_answer``, e.g. AudioBench's
  "The speaker's tone sounds anger.") when ``label_targets="corpus"`` and the row has one, else the
  label sentence.

Every other field is kept. ASR / SQA and other rows pass through unchanged.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from emoreason.data.manifest import ManifestRow
from emoreason.data.questions import POOLS_VERSION, instruction_for
from emoreason.labels import label_sentence
from emoreason.teacher.checks import mentioned_labels

TEACH_TASKS = ("emotion", "sentiment")
"""Tasks that get reasoning targets; rows of any other task pass through."""
LABEL_TARGETS = ("corpus", "template")
"""Label-only target sources: the corpus answer sentence where there is one, or always the template."""


def needs_teaching(row: ManifestRow) -> bool:
    return row.task in TEACH_TASKS and bool(row.label)


def compose_target(task: str, label: str, explanation: str | None, label_prefix: bool = True) -> str:
    """The training target: ``label_sentence`` + explanation, or the explanation alone.

    ``label_prefix=True``: an explanation that already opens with the label sentence is not given it
    twice. An empty explanation gives the label sentence either way (a row must have a target; the
    check that flagged the empty answer is in ``meta.teacher_check``)."""
    head = label_sentence(task, label)
    body = (explanation or "").strip()
    if not label_prefix:
        return body or head
    if body.lower().startswith(head.lower()):
        body = body[len(head) :].strip()
    return f"{head} {body}" if body else head


def label_only_target(row: ManifestRow, label: str, label_targets: str = "corpus") -> tuple[str, str]:
    """(target, where it came from: ``"corpus"`` | ``"template"``) for the label-only baseline.

    The corpus answer is used only when it still names ``label``: a row relabelled after import
    must not keep an answer sentence that says something else."""
    if label_targets not in LABEL_TARGETS:
        raise ValueError(f"label_targets must be one of {LABEL_TARGETS}, got {label_targets!r}")
    answer = row.meta.get("corpus_answer")
    if label_targets == "corpus" and isinstance(answer, str) and (label, False) in mentioned_labels(answer):
        return answer.strip(), "corpus"
    return label_sentence(row.task, label), "template"


def qa_row(row: ManifestRow, target: str, seed: int = 0, meta: dict[str, Any] | None = None) -> ManifestRow:
    """The training row for a taught ``row``: instruction + ``target``, ``meta`` merged in."""
    instruction = row.instruction
    new_meta = dict(row.meta)
    if not instruction:
        instruction = instruction_for(row.id, row.task, seed)
        new_meta["pools_version"] = POOLS_VERSION
    new_meta.update(meta or {})
    return dataclasses.replace(row, instruction=instruction, target=target, meta=new_meta)
