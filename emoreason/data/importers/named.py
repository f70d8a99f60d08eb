"""What the importers of file-named emotional-speech corpora share (RAVDESS, CREMA-D, TESS, EmoDB,
SAVEE, ESD, MSP-Podcast): clips found by a corpus's own scan, split into speaker-disjoint folds,
written as 16 kHz wavs + manifest rows, optionally transcribed.

A corpus module only knows its release: it walks the tree and turns each file name (or label-table
row) into a :class:`Clip`, or into a ``(where, reason)`` pair when the name does not follow the
scheme. :func:`import_clips` does the rest:

1. malformed names are skipped (one summary line each, by path, and a count);
2. clips whose emotion is outside our vocabulary (RAVDESS calm, EmoDB boredom, MSP-Podcast
   contempt ...) or outside ``emotions`` are left out and counted, not listed one by one;
3. splits (:class:`SplitOptions`): leave-k-speakers-out folds (seeded, whole speakers),
   explicit test speakers, EmoBox's published fold files, or the corpus's official split;
4. audio is decoded, downmixed and resampled to 16 kHz mono wav (resumable: reruns reuse wavs);
5. clips without a transcript are transcribed when a ``transcriber`` is given (cached in
   ``OUT/transcripts.json``, so a rerun does not transcribe again);
6. one row per task (emotion by default; sentiment derived from the emotion; asr where there is a
   transcript), speaker ``SOURCE/ID``, the corpus's codes in ``meta``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from emoreason.audio import AudioError, load_audio
from emoreason.data.importers.common import ImportSummary, ManifestBuilder, parse_tasks
from emoreason.data.importers.splits import fold_splits
from emoreason.errors import UserError
from emoreason.jsonl import atomic_write
from emoreason.labels import sentiment_of

SUPPORTED_TASKS = ("emotion", "sentiment", "asr")
AUDIO_EXTS = (".wav", ".flac")
TRANSCRIPTS_CACHE = "transcripts.json"
UNKNOWN_SPEAKER = "unknown"
"""Speaker id of clips whose speaker the corpus does not know; they always train."""
Transcriber = Callable[[list[np.ndarray]], list[str]]
"""16 kHz float32 waves (T,) -> one transcript each (e.g. ``WhisperASR(spec).transcribe``)."""


@dataclass
class Clip:
    """One utterance of a corpus, as its file name (or label table) describes it."""

    key: str
    """Unique id within the corpus: the file stem (``03a01Fa``, ``1001_DFA_ANG_XX``)."""
    path: Path
    """The release's audio file."""
    code: str
    """The corpus's own emotion code (``W``, ``ANG``, ``05``), kept in ``meta.code``."""
    label: str | None
    """Canonical label (:mod:`emoreason.labels`); None when the emotion is not in our vocabulary."""
    speaker: str
    """Speaker id within the corpus (``03``, ``1001``, ``OAF``)."""
    transcript: str | None = None
    language: str = "en"
    split: str | None = None
    """The corpus's official split (train / dev / test) when it has one."""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scan:
    """What a corpus module's ``scan`` found."""

    clips: list[Clip] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path or file:line, reason) of every input that does not follow the naming scheme."""
    left_out: dict[str, int] = field(default_factory=dict)
    """Inputs left out on purpose by the scan (song files, other languages), reason -> count."""

    def leave_out(self, reason: str) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + 1


@dataclass(frozen=True)
class SplitOptions:
    """How clips are split.

    ``split_by``:
      - ``speaker`` (default): leave-k-speakers-out; speakers dealt into ``folds`` groups
        (:func:`~emoreason.data.importers.splits.speaker_folds`, seeded) and group ``fold`` is test;
        or exactly ``test_speakers`` when given. ``dev_speakers`` of the rest go to dev.
      - ``emobox``: EmoBox's published fold files (``emobox``: an EmoBox checkout, its ``data/``
        folder, or the corpus's folder in it): clips in ``*_test_fold_N.jsonl`` are test, in
        ``*_valid_fold_N.jsonl`` dev, the rest train.
      - ``official``: the corpus's own split (MSP-Podcast's Split_Set, ESD's train / evaluation /
        test folders).
    """

    split_by: str = "speaker"
    folds: int = 5
    fold: int = 1
    seed: int = 0
    dev_speakers: int = 0
    test_speakers: tuple[str, ...] = ()
    emobox: Path | None = None


def walk_audio(root: Path, exts: Sequence[str] = AUDIO_EXTS) -> list[Path]:
    """Every audio file under ``root`` (recursively; hidden files and macOS ``._`` copies left
    out), sorted so that scans and the order of skipped lines are the same on every machine."""
    if not root.is_dir():
        raise UserError(f"{root}: corpus folder not found")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__MACOSX"]
        out += [Path(dirpath) / f for f in filenames if f.lower().endswith(tuple(exts)) and not f.startswith(".")]
    return sorted(out)


# ------------------------------------------------------------------------------------- splits
def _emobox_fold_files(root: Path, corpus: str, fold: int) -> dict[str, list[Path]]:
    """split -> EmoBox fold files for ``corpus`` / ``fold`` under ``root`` (see :class:`SplitOptions`)."""
    for base in (root / f"fold_{fold}", root / corpus / f"fold_{fold}", root / "data" / corpus / f"fold_{fold}"):
        if base.is_dir():
            found: dict[str, list[Path]] = {}
            for split, word in (("test", "test"), ("dev", "valid"), ("train", "train")):
                # EmoBox writes ``emodb_test_fold_1.jsonl``; some folds also carry ``emodb_test_fold1.jsonl``
                files = sorted(base.glob(f"*_{word}_fold_{fold}.jsonl")) or sorted(base.glob(f"*_{word}_fold{fold}.jsonl"))
                if files:
                    found[split] = files
            if "test" not in found:
                raise UserError(f"{base}: no *_test_fold_{fold}.jsonl (is this an EmoBox data folder?)")
            return found
    raise UserError(f"--emobox {root}: no fold_{fold} folder for {corpus} (expected {root}/data/{corpus}/fold_{fold}/ "
                    f"in an EmoBox checkout; a fold number this corpus does not have?)")


def emobox_splits(root: Path, corpus: str, fold: int) -> dict[str, str]:
    """Audio file stem -> split from EmoBox's fold files (their ``wav`` field names the release file)."""
    out: dict[str, str] = {}
    for split, files in _emobox_fold_files(root, corpus, fold).items():
        for path in files:
            with path.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        wav = json.loads(line)["wav"]
                    except (ValueError, KeyError, TypeError):
                        raise UserError(f"{path}:{lineno}: not an EmoBox record (no 'wav' field)") from None
                    out[Path(str(wav)).stem] = split
    return out


def assign_splits(clips: list[Clip], options: SplitOptions, corpus: str) -> tuple[dict[str, str], list[str]]:
    """Clip key -> split, and note lines for the summary (which speakers are held out, etc.)."""
    o = options
    notes: list[str] = []
    if o.split_by == "official":
        missing = [c.key for c in clips if c.split is None]
        if len(missing) == len(clips):
            raise UserError(f"{corpus} has no official split in this copy; use --split-by speaker")
        if missing:
            notes.append(f"{len(missing)} clip(s) without an official split went to train")
        return {c.key: c.split or "train" for c in clips}, notes + ["split: the corpus's official split"]
    if o.split_by == "emobox":
        if o.emobox is None:
            raise UserError("--split-by emobox needs --emobox DIR (a checkout of github.com/emo-box/EmoBox or its data/ folder)")
        table = emobox_splits(Path(o.emobox), corpus, o.fold)
        ours = {c.path.stem for c in clips}
        held = [s for s, v in table.items() if v != "train"]
        notes.append(f"split: EmoBox fold {o.fold} ({sum(v == 'test' for v in table.values())} test, "
                     f"{sum(v == 'dev' for v in table.values())} valid clips listed; "
                     f"{sum(1 for s in held if s not in ours)} of the held-out ones not in this import)")
        return {c.key: table.get(c.path.stem, "train") for c in clips}, notes
    if o.split_by != "speaker":
        raise UserError(f"--split-by must be speaker, emobox or official (got {o.split_by!r})")
    # clips of unknown speakers (MSP-Podcast) cannot be kept apart from anyone: they only train
    speakers = sorted({c.speaker for c in clips} - {UNKNOWN_SPEAKER})
    if not speakers:
        raise UserError(f"{corpus}: no clip has a known speaker, so no speaker-disjoint split is possible")
    if o.test_speakers:
        unknown = [s for s in o.test_speakers if s not in speakers]
        if unknown:
            raise UserError(f"--test-speakers {unknown} not in this corpus (speakers: {', '.join(speakers)})")
        rest = [s for s in speakers if s not in o.test_speakers]
        if o.dev_speakers >= len(rest):
            raise UserError(f"--dev-speakers {o.dev_speakers}: only {len(rest)} non-test speaker(s), at least one must train")
        import random

        shuffled = sorted(rest)
        random.Random(f"{o.seed}:dev").shuffle(shuffled)
        by_speaker = {s: "test" for s in o.test_speakers} | {s: "dev" for s in shuffled[:o.dev_speakers]}
        by_speaker = {s: by_speaker.get(s, "train") for s in speakers}
        how = "the --test-speakers"
    else:
        by_speaker = fold_splits(speakers, o.folds, o.fold, o.seed, o.dev_speakers)
        k = len([s for s, v in by_speaker.items() if v == "test"])
        how = f"leave-{k}-speakers-out fold {o.fold} of {o.folds} (seed {o.seed})"
    pick = lambda split: ", ".join(s for s in speakers if by_speaker[s] == split) or "-"  # noqa: E731
    notes.append(f"split: {how}: test speakers {pick('test')}; dev speakers {pick('dev')}")
    return {c.key: by_speaker.get(c.speaker, "train") for c in clips}, notes


# ------------------------------------------------------------------------------- transcripts
def transcribe_missing(builder: ManifestBuilder, items: list[tuple[Clip, str, float]], transcriber: Transcriber,
                       batch: int = 16) -> dict[str, str]:
    """Key -> transcript for every clip without one, reusing ``OUT/transcripts.json`` from an
    earlier run; the cache is rewritten (atomically) after each batch, so an interrupted run keeps
    what it finished. Reads the 16 kHz wavs this import wrote."""
    from tqdm import tqdm

    cache_path = builder.out_dir / TRANSCRIPTS_CACHE
    try:
        cache: dict[str, str] = json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.is_file() else {}
    except ValueError:
        cache = {}  # a damaged cache only costs a re-transcription
    todo = [(c, rel) for c, rel, _ in items if not c.transcript and c.key not in cache]
    for start in tqdm(range(0, len(todo), batch), desc="transcribe", unit="batch", leave=False):
        chunk = todo[start:start + batch]
        texts = transcriber([load_audio(builder.out_dir / rel) for _, rel in chunk])
        cache.update({c.key: t.strip() for (c, _), t in zip(chunk, texts, strict=True)})
        atomic_write(cache_path, json.dumps(cache, ensure_ascii=False, indent=0, sort_keys=True) + "\n")
    return cache


# ------------------------------------------------------------------------------------ import
def import_clips(
    scan: Scan,
    out_dir: str | Path,
    *,
    source: str,
    options: SplitOptions,
    tasks: str | None = None,
    emotions: Sequence[str] | None = None,
    transcriber: Transcriber | None = None,
    transcriber_name: str | None = None,
) -> ImportSummary:
    """Write a scanned corpus as ``OUT/manifest.jsonl`` + ``OUT/wavs/`` (see the module docstring).

    Args:
        scan: the corpus module's :class:`Scan`.
        source: corpus name for row ids, ``source`` and speaker prefixes (``emodb``).
        tasks: comma list among emotion, sentiment, asr (default emotion).
        emotions: keep only these canonical labels (e.g. the demo's four); None keeps all mapped ones.
        transcriber: transcribes clips the corpus has no transcript for (the teacher can then quote).
        transcriber_name: what to record in ``meta.transcript_source`` for those (``packaged:whisper-tiny.en``).
    """
    chosen = parse_tasks(tasks or "emotion", SUPPORTED_TASKS)
    builder = ManifestBuilder(out_dir, source=source, tasks=chosen, seed=options.seed)
    summary = builder.summary
    for where, reason in scan.skipped:
        builder.skip(where, reason)
    for reason, n in scan.left_out.items():
        summary.left_out[reason] += n
    keep: list[Clip] = []
    seen: dict[str, Path] = {}
    wanted = set(emotions) if emotions else None
    for clip in scan.clips:
        if clip.key in seen:
            builder.skip(str(clip.path), f"same utterance id as {seen[clip.key]}; first one kept")
            continue
        seen[clip.key] = clip.path
        if clip.label is None:
            summary.left_out[f"emotion {clip.code!r}: not in our label vocabulary"] += 1
        elif wanted is not None and clip.label not in wanted:
            summary.left_out[f"{clip.label}: not among the chosen emotions"] += 1
        else:
            keep.append(clip)
    if not keep:
        first = f"; first problem: {scan.skipped[0][0]}: {scan.skipped[0][1]}" if scan.skipped else ""
        raise UserError(f"nothing to import for {source}: no clip follows the naming scheme with a usable emotion "
                        f"({len(scan.skipped)} malformed, {sum(summary.left_out.values())} left out){first}")
    splits, notes = assign_splits(keep, options, source)
    summary.notes += notes

    from tqdm import tqdm

    written: list[tuple[Clip, str, float]] = []
    for clip in tqdm(keep, desc=f"import {source}", unit="utt"):
        try:
            rel, duration = builder.write_audio(clip.key, clip.path)
        except AudioError as e:
            builder.skip(str(clip.path), str(e))
            continue
        written.append((clip, rel, duration))
    asr: dict[str, str] = {}
    if transcriber is not None:
        asr = transcribe_missing(builder, written, transcriber)
        n = sum(1 for c, _, _ in written if not c.transcript and asr.get(c.key))
        summary.notes.append(f"transcribed {n} clip(s) without a corpus transcript with {transcriber_name or 'the ASR'}")
    for clip, rel, duration in written:
        transcript, origin = clip.transcript, "corpus"
        if not transcript and asr.get(clip.key):
            transcript, origin = asr[clip.key], transcriber_name or "asr"
        meta = {"code": clip.code, "language": clip.language, **clip.meta}
        if transcript:
            meta["transcript_source"] = origin
        if clip.split is not None:
            meta["official_split"] = clip.split
        builder.add_utterance(clip.key, rel, duration, transcript=transcript, emotion=clip.label,
                              sentiment=sentiment_of(clip.label) if clip.label else None,
                              split=splits[clip.key], speaker=f"{source}/{clip.speaker}", meta=meta)
    return builder.finish()


def stem_match(pattern: re.Pattern[str], path: Path) -> re.Match[str] | None:
    """``pattern.fullmatch`` on the file stem (names are matched whole: ``03a01Fa`` but not ``03a01Fa_copy``)."""
    return pattern.fullmatch(path.stem)
