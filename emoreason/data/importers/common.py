"""What every importer shares: row building per task, audio writing, skipped-row bookkeeping.

An importer walks its corpus, and for each utterance calls :meth:`ManifestBuilder.add_utterance`
with whatever the corpus knows (transcript, emotion, sentiment, question/answer). The builder
writes the 16 kHz mono wav under ``OUT/wavs/`` (skipping it when a previous run already wrote it:
imports resume), makes one manifest row per supported task with a seeded instruction from
:mod:`emoreason.data.questions`, and at the end writes ``OUT/manifest.jsonl`` atomically.

A bad input record never stops an import: the importer calls :meth:`ManifestBuilder.skip` with
where it is (``file:line`` or ``record N``) and why, and the summary lists them.
"""
from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emoreason.audio import SAMPLE_RATE, load_audio, save_audio
from emoreason.data.manifest import ManifestRow, validate_row, write_manifest
from emoreason.data.questions import POOLS_VERSION, instruction_for, label_target
from emoreason.errors import UserError

log = logging.getLogger(__name__)

ALL_TASKS = ("emotion", "sentiment", "asr", "sqa")
MANIFEST_NAME = "manifest.jsonl"
WAV_DIR = "wavs"


def safe_name(text: str) -> str:
    """A file-name-safe version of an utterance key ("dia3_utt1", "Ses01F_impro01_F000")."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("._")
    if not name:
        raise UserError(f"cannot make a file name from {text!r}")
    return name


def parse_tasks(text: str | None, supported: tuple[str, ...]) -> tuple[str, ...]:
    """``"emotion,asr"`` -> ("emotion", "asr"), checked against what the corpus supports."""
    if not text:
        return supported
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in tasks if t not in supported]
    if bad:
        raise UserError(f"task(s) {bad} not available for this corpus (available: {list(supported)})")
    return tasks


@dataclass
class Skipped:
    """One input record that was not imported."""

    where: str
    reason: str


@dataclass
class ImportSummary:
    """What an import did; :meth:`text` is what the CLI prints."""

    manifest: Path
    utterances: int = 0
    rows: int = 0
    audio_written: int = 0
    audio_reused: int = 0
    tasks: Counter = field(default_factory=Counter)
    labels: dict[str, Counter] = field(default_factory=dict)
    splits: Counter = field(default_factory=Counter)
    skipped: list[Skipped] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)
    """Utterances left out on purpose (``--exclude-manifest``), by how they matched."""
    left_out: Counter = field(default_factory=Counter)
    """Inputs left out because of what they are (an emotion outside our vocabulary, a song file), by reason."""
    notes: list[str] = field(default_factory=list)
    """Extra lines for the report (e.g. how much of an exclude manifest was found)."""

    def text(self, max_skipped: int = 20) -> str:
        lines = [
            f"wrote {self.rows} rows for {self.utterances} utterances to {self.manifest}",
            f"  audio: {self.audio_written} written, {self.audio_reused} reused from an earlier run",
            "  tasks: " + ", ".join(f"{k}={v}" for k, v in sorted(self.tasks.items())),
            "  splits: " + ", ".join(f"{k}={v}" for k, v in sorted(self.splits.items())),
        ]
        for task, counts in sorted(self.labels.items()):
            lines.append(f"  {task} labels: " + ", ".join(f"{k}={v}" for k, v in counts.most_common()))
        if self.excluded:
            how = ", ".join(f"{v} by {k}" for k, v in sorted(self.excluded.items()))
            lines.append(f"  excluded {sum(self.excluded.values())} utterance(s) listed in the exclude manifest ({how})")
        if self.left_out:
            lines.append(f"  left out {sum(self.left_out.values())} input(s): "
                         + "; ".join(f"{v} x {k}" for k, v in sorted(self.left_out.items())))
        lines += [f"  {note}" for note in self.notes]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} input record(s):")
            for s in self.skipped[:max_skipped]:
                lines.append(f"    {s.where}: {s.reason}")
            if len(self.skipped) > max_skipped:
                lines.append(f"    ... and {len(self.skipped) - max_skipped} more")
        return "\n".join(lines)


class ManifestBuilder:
    """Collects rows for one output directory; see the module docstring.

    Args:
        out_dir: output folder; gets ``wavs/`` and ``manifest.jsonl``.
        source: corpus name written to every row's ``source`` and used as the id prefix.
        tasks: which tasks to emit rows for (others are ignored even when the corpus has them).
        seed: instruction seed (:func:`instruction_for`).
        keep_instructions: use a corpus-provided instruction verbatim when there is one.
    """

    def __init__(self, out_dir: str | Path, source: str, tasks: tuple[str, ...], seed: int = 0,
                 keep_instructions: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.wav_dir = self.out_dir / WAV_DIR
        self.wav_dir.mkdir(parents=True, exist_ok=True)
        self.source = source
        self.tasks = tasks
        self.seed = seed
        self.keep_instructions = keep_instructions
        self.rows: list[ManifestRow] = []
        self.summary = ImportSummary(manifest=self.out_dir / MANIFEST_NAME)
        self._seen_keys: set[str] = set()

    # -- audio ---------------------------------------------------------------------------------
    def wav_rel(self, key: str) -> str:
        """Manifest-relative path of the wav for utterance ``key``."""
        return f"{WAV_DIR}/{safe_name(key)}.wav"

    def has_audio(self, key: str) -> bool:
        """True when an earlier run already wrote this utterance's wav (imports resume)."""
        return (self.out_dir / self.wav_rel(key)).is_file()

    def write_audio(self, key: str, wave_or_source: np.ndarray | bytes | str | Path) -> tuple[str, float]:
        """Write (or reuse) the wav for ``key``; returns (relative path, duration seconds).

        ``wave_or_source``: a 16 kHz mono float waveform (T,), or anything :func:`load_audio`
        takes (encoded bytes, a file path), which is decoded, downmixed and resampled.
        Raises AudioError for unusable audio (callers turn that into a skipped record).
        """
        rel = self.wav_rel(key)
        path = self.out_dir / rel
        if path.is_file():
            self.summary.audio_reused += 1
            return rel, wav_duration(path)
        wave = wave_or_source if isinstance(wave_or_source, np.ndarray) else load_audio(wave_or_source)
        tmp = path.with_name(path.stem + ".part.wav")
        save_audio(tmp, wave)
        os.replace(tmp, path)  # atomic: an interrupted import never leaves a truncated wav
        self.summary.audio_written += 1
        return rel, wave.size / SAMPLE_RATE

    def adopt_audio(self, key: str) -> tuple[str, float]:
        """Count a wav some other tool (ffmpeg) wrote at :meth:`wav_rel` and return (rel, seconds)."""
        rel = self.wav_rel(key)
        self.summary.audio_written += 1
        return rel, wav_duration(self.out_dir / rel)

    # -- rows ----------------------------------------------------------------------------------
    def skip(self, where: str, reason: str) -> None:
        """Record an input record that is not imported (reported in the summary)."""
        log.debug("skip %s: %s", where, reason)
        self.summary.skipped.append(Skipped(where, reason))

    def add_utterance(
        self,
        key: str,
        audio: str,
        duration: float | None,
        *,
        transcript: str | None = None,
        emotion: str | None = None,
        sentiment: str | None = None,
        question: str | None = None,
        answer: str | None = None,
        answers: dict[str, str] | None = None,
        instructions: dict[str, str] | None = None,
        split: str | None = None,
        speaker: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> list[ManifestRow]:
        """Rows for one utterance, one per task in ``self.tasks`` that the given fields support.

        emotion / sentiment rows need the label; asr needs the transcript; sqa needs question and
        answer. ``answers`` (task -> corpus answer sentence) replaces the label-only target and is
        kept in ``meta.corpus_answer`` (``data teach --style label`` reads it there, because teaching
        replaces ``target``);
        ``instructions`` (task -> corpus instruction) is used when ``keep_instructions`` is on.
        Returns the rows added (possibly none).
        """
        if key in self._seen_keys:
            raise UserError(f"duplicate utterance key {key!r}")
        self._seen_keys.add(key)
        answers = answers or {}
        instructions = instructions or {}
        if transcript:  # corpora wrap long utterances over lines; targets should not carry that
            transcript = " ".join(transcript.split())
        base_meta = {"pools_version": POOLS_VERSION, **(meta or {})}
        made: list[ManifestRow] = []
        for task in self.tasks:
            label = target = None
            if task in ("emotion", "sentiment"):
                label = emotion if task == "emotion" else sentiment
                if not label:
                    continue
                target = answers.get(task) or label_target(task, label)
            elif task == "asr":
                if not transcript:
                    continue
                target = transcript
            elif task == "sqa":
                if not (question and answer):
                    continue
                target = answer
            row_id = f"{self.source}/{key}/{task}"
            instruction = instructions.get(task) if self.keep_instructions else None
            if not instruction:
                instruction = instruction_for(row_id, task, self.seed, question=question if task == "sqa" else None)
            row_meta = dict(base_meta)
            if task == "sqa":
                row_meta["question"] = question
            if task in instructions and not self.keep_instructions:
                row_meta["corpus_instruction"] = instructions[task]
            if task in ("emotion", "sentiment") and answers.get(task):
                row_meta["corpus_answer"] = answers[task]
            row = validate_row(
                {
                    "id": row_id, "audio": audio, "task": task, "duration": duration, "transcript": transcript,
                    "label": label, "instruction": instruction, "target": target, "split": split,
                    "speaker": speaker, "source": self.source, "meta": row_meta,
                }
            )
            made.append(row)
            self.summary.tasks[task] += 1
            if label:
                self.summary.labels.setdefault(task, Counter())[label] += 1
        if made:
            self.summary.utterances += 1
            self.summary.splits[split or "none"] += 1
        self.rows.extend(made)
        return made

    def finish(self) -> ImportSummary:
        """Write ``manifest.jsonl`` (atomically) and return the summary. No rows is an error."""
        if not self.rows:
            detail = f"; first problem: {self.summary.skipped[0].where}: {self.summary.skipped[0].reason}" if self.summary.skipped else ""
            raise UserError(f"nothing to import for {self.source} (0 usable records, {len(self.summary.skipped)} skipped){detail}")
        self.summary.rows = write_manifest(self.summary.manifest, self.rows)
        return self.summary


def wav_duration(path: Path) -> float:
    """Duration of an audio file in seconds (header only)."""
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / info.samplerate


def run_parallel(jobs: list[Callable[[], Any]], workers: int, desc: str) -> list[Any]:
    """Run callables on a thread pool (they mostly wait on subprocesses); results in input order.

    An exception is returned in place of the result, so one bad record does not stop the rest.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def guarded(job: Callable[[], Any]) -> Any:
        try:
            return job()
        except Exception as e:  # noqa: BLE001 - reported per record by the caller
            return e

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(tqdm(pool.map(guarded, jobs), total=len(jobs), desc=desc, unit="utt", leave=False))


_WORD = re.compile(r"[a-z<>]+")


def label_from_text(text: str, vocabulary: list[str]) -> str | None:
    """Extract a canonical label from an answer sentence with the shared synonym table.

    ``label_from_text("The speaker's tone sounds anger.", MELD_EMOTION) == "angry"``. Only words
    that map into ``vocabulary`` count; when several different labels appear, the last one wins
    (answer sentences put the label at the end: "... is neutral rather than happy" is rare and
    the last mention is still the better guess). None when no label word is found.
    """
    from emoreason.labels import SYNONYMS

    found = None
    for word in _WORD.findall(text.lower()):
        canon = SYNONYMS.get(word)
        if canon is None and word in vocabulary:
            canon = word
        if canon is not None and canon in vocabulary:
            found = canon
    return found
