"""Training data: manifest rows -> examples (wave, prompt, target, task, group), and the collator.

The dataset is processor-free: it yields raw waves and strings; :class:`Collator` calls the
model's processor on a list of examples, so chat rendering, audio token counts and the loss mask
are decided in one place (``emoreason/model/processing.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from emoreason.audio import SAMPLE_RATE, AudioError, load_audio, probe_audio_seconds
from emoreason.data.manifest import ManifestError, ManifestRow, iter_manifest, resolve_audio
from emoreason.errors import UserError

LABEL_TASKS = ("emotion", "sentiment", "er", "sr")
"""Tasks whose rows carry a gold label that the target states (``label_weight``)."""

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
    label: str | None = None
    """Gold label of emotion / sentiment rows (the collator's ``label_weight`` finds it in the target)."""
    line: int = 0
    """The row's line in the manifest (errors name ``file:line``)."""
    transcript: str | None = None
    """What was said, for :data:`TRANSCRIPT_CONTEXT_TASKS` rows that have it (None otherwise); the
    processor renders it only when the model takes the transcript in context."""
    seconds: float | None = None
    """The clip's length, once :meth:`ManifestDataset.check_audio` has read its header."""


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
        self.skipped_bad_audio: list[str] = []
        """``file:line: reason`` of rows left out by :meth:`check_audio` with ``skip=True``."""
        first_line: dict[str, int] = {}
        for lineno, row in iter_manifest(self.manifest):
            if split is not None and row.split != split:
                continue
            if row.id in first_line:  # a repeated id would be trained twice and confuse every per-id record
                raise ManifestError(f"{self.manifest}:{lineno}: duplicate id {row.id!r} (first on line {first_line[row.id]})")
            first_line[row.id] = lineno
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
                Example(row.id, resolve_audio(row, self.manifest), prompt, target, row.task, groups[row.task],
                        row.label if row.task in LABEL_TASKS else None, line=lineno, transcript=transcript)
            )
        if not self.examples:
            where = f" with split {split!r}" if split is not None else ""
            flagged = (f" ({self.skipped_flagged} left out because their teacher target failed its checks; "
                       "data.skip_flagged_targets=false keeps them)") if self.skipped_flagged else ""
            raise UserError(f"{self.manifest}: no rows{where}{flagged}")

    def __len__(self) -> int:
        return len(self.examples)

    def check_audio(self, skip: bool = False) -> list[str]:
        """Read every clip's header before training (:func:`emoreason.audio.probe_audio_seconds`), so a
        missing or corrupt file is named with its manifest line now, not when a step reaches it;
        records each readable clip's length (:attr:`Example.seconds`).

        Returns the ``file:line: reason`` of each bad row. ``skip``: bad rows are left out (the
        dataset shrinks; UserError if nothing is left); otherwise the first bad row raises
        :class:`ManifestError` (with the count of others).
        """
        bad: list[tuple[int, str]] = []
        for i, ex in enumerate(self.examples):
            problem, ex.seconds = probe_audio_seconds(ex.audio)
            if problem is not None:
                bad.append((i, f"{self.manifest}:{ex.line}: {ex.audio}: {problem}"))
        if bad and not skip:
            more = f" (and {len(bad) - 1} more bad clip(s))" if len(bad) > 1 else ""
            raise ManifestError(f"{bad[0][1]}{more}; fix the rows or set data.skip_bad_audio=true to leave them out")
        drop = {i for i, _ in bad}
        self.examples = [ex for i, ex in enumerate(self.examples) if i not in drop]
        self.skipped_bad_audio = [msg for _, msg in bad]
        if not self.examples:
            raise UserError(f"{self.manifest}: no rows with readable audio left")
        return self.skipped_bad_audio

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
        try:
            wave = load_audio(ex.audio)[: self.max_samples]
        except AudioError as e:  # damage the header check cannot see: name the row
            raise ManifestError(f"{self.manifest}:{ex.line}: {e}") from None
        return {"id": ex.id, "wave": wave, "prompt": ex.prompt, "target": ex.target, "task": ex.task, "group": ex.group,
                "label": ex.label, "transcript": ex.transcript}


def label_token_span(tokenizer: Any, target: str, label: str) -> tuple[int, int] | None:
    """Token positions [start, end) of the first whole-word ``label`` in ``target``'s tokens, or
    None (not in the target, or its tokens do not decode to it).

    The response the processor tokenizes begins with the target, so positions count from the
    first response token. A BPE tokenizer attaches the space before a word to the word's token:
    the span starts at the token that holds that space.
    """
    import re

    m = re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", target, flags=re.IGNORECASE)
    if m is None:
        return None
    begin = m.start() - 1 if m.start() > 0 and target[m.start() - 1] == " " else m.start()
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    start, end = len(encode(target[:begin])), len(encode(target[:m.end()]))
    ids = encode(target)
    if end <= start or ids[:end] != encode(target[:m.end()]):
        return None  # the prefix tokenizes differently from the whole text: no reliable span
    if tokenizer.decode(ids[start:end]).strip().lower() != label.lower():
        return None
    return start, end


class Collator:
    """List of examples -> the processor's batch dict, plus ``tasks`` (list[str], one per row).

    ``processor(waves=[(T,)...], prompts=[...], targets=[...], transcripts=[...])`` returns ``input_ids (B, L)``,
    ``attention_mask (B, L)``, ``labels (B, L)``, feature tensors; the collator adds nothing the
    model reads, only ``tasks`` and ``ids`` for logging, which the loop removes before ``forward``.

    ``label_weight`` != 1 adds ``loss_weights`` (B, L) float32: ``label_weight`` at the tokens of
    the gold label's first mention in an emotion / sentiment target, 1 elsewhere (the loop then
    minimises the weighted token mean). Why: in a 50-token reasoning target the label is one
    token in 50, so under a plain token mean the explanation, not the answer, drives the gradient.
    """

    def __init__(self, processor: Callable[..., dict[str, Any]], max_target_tokens: int | None = None,
                 label_weight: float = 1.0, emotion_labels: Sequence[str] | None = None) -> None:
        self.processor = processor
        self.max_target_tokens = max_target_tokens
        self.label_weight = label_weight
        # given: every batch gets ``emotion_label_ids`` (B,) int64, the index of an emotion row's
        # gold label in this list, -100 for other rows (the auxiliary pooled-label loss reads it)
        self.emotion_labels = list(emotion_labels) if emotion_labels else None

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
        if self.label_weight != 1.0:
            batch["loss_weights"] = self._label_weights(examples, batch["labels"])
        if self.emotion_labels is not None:
            import torch

            index = {label: i for i, label in enumerate(self.emotion_labels)}
            batch["emotion_label_ids"] = torch.tensor(
                [index.get(e.get("label"), -100) if e["task"] == "emotion" else -100 for e in examples], dtype=torch.long)
        return batch

    def _label_weights(self, examples: list[dict[str, Any]], labels: Any) -> Any:
        """(B, L) float32 weights: ``label_weight`` on each row's label tokens, 1 elsewhere."""
        import torch

        weights = torch.ones(labels.shape, dtype=torch.float32)
        for i, e in enumerate(examples):
            if not e.get("label"):
                continue
            span = label_token_span(self.processor.tokenizer, e["target"], e["label"])
            targets = (labels[i] != -100).nonzero()
            if span is None or len(targets) == 0:
                continue
            first = int(targets[0])  # the response (which starts with the target) begins here
            end = min(first + span[1], first + len(targets))  # max_target_tokens may cut the label
            weights[i, first + span[0]:end] = self.label_weight
        return weights
