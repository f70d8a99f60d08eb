"""Training data: manifest rows -> examples (wave, prompt, target, task, group), and the collator.

The dataset is processor-free: it yields raw waves and strings; :class:`Collator` calls the
model's processor on a list of examples, so chat rendering, audio token counts and the loss mask
are decided in one place (``emoreason/model/processing.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emoreason.audio import SAMPLE_RATE, load_audio
from emoreason.data.manifest import ManifestError, ManifestRow, iter_manifest, resolve_audio
from emoreason.errors import UserError

# Prompt used when a row has no instruction of its own.
DEFAULT_INSTRUCTIONS = {
    "asr": "Transcribe the speech.",
    "sqa": "Answer the question about the speech.",
    "emotion": "What emotion does the speaker convey? Explain your answer.",
    "sentiment": "What is the speaker's sentiment: positive, negative or neutral? Explain your answer.",
}


TRANSCRIPT_CONTEXT_TASKS = ("emotion", "sentiment")
"""Tasks whose prompt carries the clip's transcript when the model is trained "transcribe, then
reason" (``data.transcript_in_prompt``): the ones that explain a label by quoting what was said.
Never asr (the transcript is its answer) nor sqa (the answer would be read off the text)."""


def task_to_group(task_groups: dict[str, list[str]]) -> dict[str, str]:
    """``{"speech": ["asr"], "emotion": ["emotion"]}`` -> ``{"asr": "speech", "emotion": "emotion"}``.

    A task listed under two groups is a config error: the alternating schedule must know which
    side it trains.
    """
    out: dict[str, str] = {}
    for group, tasks in task_groups.items():
        for task in tasks:
            if task in out and out[task] != group:
                raise UserError(f"data.task_groups: task {task!r} is in both {out[task]!r} and {group!r}")
            out[task] = group
    return out


def row_target(row: ManifestRow) -> str | None:
    """The response the model learns: ``target``, else the transcript (asr) or label (emotion tasks)."""
    if row.target:
        return row.target
    if row.task == "asr":
        return row.transcript
    return row.label


@dataclass
class Example:
    """One row's metadata, kept in memory; audio is read lazily in ``__getitem__``."""

    id: str
    audio: Path
    prompt: str
    target: str
    task: str
    group: str
    transcript: str | None = None
    """What was said, for :data:`TRANSCRIPT_CONTEXT_TASKS` rows that have it (None otherwise); the
    processor renders it only when the model takes the transcript in context."""


class ManifestDataset:
    """Map-style dataset over a manifest's rows of one split.

    ``ds[i]`` -> ``{"id", "wave" (T,) float32 16 kHz, "prompt", "target", "task", "group",
    "transcript" (str | None, see :attr:`Example.transcript`)}``.
    Rows are validated up front (a bad row raises ``ManifestError`` naming ``file:line``), so a
    long run does not die on row 90 000; audio files are checked when read.
    """

    def __init__(
        self,
        manifest: str | Path,
        task_groups: dict[str, list[str]],
        split: str | None = "train",
        max_audio_seconds: float = 30.0,
        skip_flagged_targets: bool = True,
    ) -> None:
        self.manifest = Path(manifest)
        self.max_samples = int(max_audio_seconds * SAMPLE_RATE)
        groups = task_to_group(task_groups)
        self.examples: list[Example] = []
        self.skipped_flagged = 0
        """Rows left out because their teacher target failed its checks (``skip_flagged_targets``)."""
        for lineno, row in iter_manifest(self.manifest):
            if split is not None and row.split != split:
                continue
            check = row.meta.get("teacher_check") if isinstance(row.meta, dict) else None
            if skip_flagged_targets and isinstance(check, dict) and check.get("ok") is False:
                self.skipped_flagged += 1
                continue
            if row.task not in groups:
                raise ManifestError(
                    f"{self.manifest}:{lineno}: task {row.task!r} is in no group of data.task_groups "
                    f"({', '.join(f'{g}: {t}' for g, t in task_groups.items())})"
                )
            target = row_target(row)
            if not target:
                raise ManifestError(f"{self.manifest}:{lineno}: row has no target (give 'target', or 'label'/'transcript')")
            prompt = row.instruction or DEFAULT_INSTRUCTIONS.get(row.task, f"Perform the task: {row.task}.")
            transcript = row.transcript if row.task in TRANSCRIPT_CONTEXT_TASKS else None
            self.examples.append(
                Example(row.id, resolve_audio(row, self.manifest), prompt, target, row.task, groups[row.task], transcript)
            )
        if not self.examples:
            where = f" with split {split!r}" if split is not None else ""
            flagged = (f" ({self.skipped_flagged} left out because their teacher target failed its checks; "
                       "data.skip_flagged_targets=false keeps them)") if self.skipped_flagged else ""
            raise UserError(f"{self.manifest}: no rows{where}{flagged}")

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def groups(self) -> list[str]:
        """Task group of every example, by index (what the sampler filters on)."""
        return [e.group for e in self.examples]

    @property
    def tasks(self) -> list[str]:
        """Sorted distinct task names."""
        return sorted({e.task for e in self.examples})

    def __getitem__(self, index: int) -> dict[str, Any]:
        ex = self.examples[index]
        wave = load_audio(ex.audio)[: self.max_samples]
        return {"id": ex.id, "wave": wave, "prompt": ex.prompt, "target": ex.target, "task": ex.task, "group": ex.group,
                "transcript": ex.transcript}


class Collator:
    """List of examples -> the processor's batch dict, plus ``tasks`` (list[str], one per row).

    ``processor(waves=[(T,)...], prompts=[...], targets=[...], transcripts=[...])`` returns ``input_ids (B, L)``,
    ``attention_mask (B, L)``, ``labels (B, L)``, feature tensors; the collator adds nothing the
    model reads, only ``tasks`` and ``ids`` for logging, which the loop removes before ``forward``.
    """

    def __init__(self, processor: Callable[..., dict[str, Any]], max_target_tokens: int | None = None) -> None:
        self.processor = processor
        self.max_target_tokens = max_target_tokens

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        extra = {} if self.max_target_tokens is None else {"max_target_tokens": self.max_target_tokens}
        batch = dict(
            self.processor(
                waves=[np.asarray(e["wave"], dtype=np.float32) for e in examples],
                prompts=[e["prompt"] for e in examples],
                targets=[e["target"] for e in examples],
                # rendered only by a processor that takes the transcript in context
                transcripts=[e.get("transcript") for e in examples],
                **extra,
            )
        )
        batch["tasks"] = [e["task"] for e in examples]
        batch["ids"] = [e["id"] for e in examples]
        return batch
