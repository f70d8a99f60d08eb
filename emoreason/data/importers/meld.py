"""MELD's own release: ``{train,dev,test}_sent_emo.csv`` + clips ``dia{D}_utt{U}.mp4``.

CSV columns: Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season,
Episode, StartTime, EndTime. Clips are found in the audio folder as ``dia{D}_utt{U}`` with any of
.wav / .flac / .mp4 / .mkv; video containers are converted to 16 kHz mono wav with ffmpeg (run on
a thread pool: each job waits on its own ffmpeg process). Each utterance gives an emotion row
(7 classes) and a sentiment row (3 classes), plus an ASR row when asked (``--tasks``).
"""
from __future__ import annotations

import csv
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from emoreason.audio import AudioError
from emoreason.data.importers.common import ImportSummary, ManifestBuilder, parse_tasks, run_parallel
from emoreason.errors import UserError
from emoreason.labels import MELD_EMOTION, SENTIMENT, normalize_label

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
AUDIO_EXTS = (".wav", ".flac", ".mp4", ".mkv", ".m4a")
SUPPORTED_TASKS = ("emotion", "sentiment", "asr")


@dataclass
class _Clip:
    where: str
    key: str
    source: Path
    transcript: str
    emotion: str
    sentiment: str
    speaker: str
    meta: dict


def split_of_csv(path: Path) -> str | None:
    """``train_sent_emo.csv`` -> "train"; MELD's dev file is ``dev_sent_emo.csv``."""
    head = path.name.lower().split("_")[0]
    return {"train": "train", "dev": "dev", "val": "dev", "valid": "dev", "test": "test"}.get(head)


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line, row)]). MELD CSVs are UTF-8 in most copies, cp1252 in some."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            with path.open(encoding=encoding, newline="") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])  # reads the header line
                rows = []
                prev = reader.line_num
                for row in reader:
                    rows.append((prev + 1, row))  # the line this record starts on (quoted fields may span lines)
                    prev = reader.line_num
                return header, rows
        except UnicodeDecodeError:
            continue
    raise UserError(f"{path}: cannot decode the CSV as UTF-8 or cp1252")


def find_clip(audio_dir: Path, key: str) -> Path | None:
    """The clip file for ``dia3_utt1``, preferring ready wav over video."""
    for ext in AUDIO_EXTS:
        p = audio_dir / f"{key}{ext}"
        if p.is_file():
            return p
    return None


def ffmpeg_to_wav(src: Path, dst: Path, timeout: float = 120.0) -> None:
    """Extract 16 kHz mono 16-bit wav from any container ffmpeg reads (atomic write)."""
    tmp = dst.with_name(dst.stem + ".part.wav")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-vn", "-ac", "1", "-ar", "16000",
           "-c:a", "pcm_s16le", "-bitexact", "-f", "wav", str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise UserError("ffmpeg is not installed (needed to extract audio from MELD mp4 clips)") from None
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise AudioError(f"{src}: ffmpeg timed out after {timeout:.0f} s") from None
    if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size <= 44:
        tmp.unlink(missing_ok=True)
        reason = (proc.stderr.strip().splitlines() or ["no audio stream"])[-1]
        raise AudioError(f"{src}: ffmpeg could not extract audio ({reason})")
    os.replace(tmp, dst)


def import_meld(
    csv_paths: list[str | Path],
    audio_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str | None = None,
    tasks: str | None = "emotion,sentiment",
    seed: int = 0,
    workers: int = 4,
) -> ImportSummary:
    """Import MELD CSV(s) and their clips into ``out_dir``.

    Args:
        csv_paths: one or more ``*_sent_emo.csv`` files; the split comes from the file name
            (train / dev / test) unless ``split`` is given.
        audio_dir: folder holding ``dia{D}_utt{U}.{mp4,wav,...}`` (or a folder per CSV with the
            same name stem: ``train_splits/`` etc. are searched below it too).
        tasks: comma list among emotion, sentiment, asr.
        workers: concurrent ffmpeg processes.
    """
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise UserError(f"{audio_dir}: audio folder not found")
    builder = ManifestBuilder(out_dir, source="meld", tasks=parse_tasks(tasks, SUPPORTED_TASKS), seed=seed)
    clips: list[tuple[_Clip, str | None]] = []
    search_dirs = [audio_dir] + sorted(p for p in audio_dir.iterdir() if p.is_dir())
    for csv_path in map(Path, csv_paths):
        if not csv_path.is_file():
            raise UserError(f"{csv_path}: CSV not found")
        header, records = _read_csv(csv_path)
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise UserError(f"{csv_path}: missing MELD column(s) {missing} (header: {header})")
        csv_split = split or split_of_csv(csv_path)
        for line, rec in records:
            where = f"{csv_path}:{line}"
            try:
                dia, utt = int(rec["Dialogue_ID"]), int(rec["Utterance_ID"])
                emotion = normalize_label(rec["Emotion"] or "", MELD_EMOTION)
                sentiment = normalize_label(rec["Sentiment"] or "", SENTIMENT)
            except (ValueError, TypeError) as e:  # UserError is a ValueError
                builder.skip(where, str(e) if isinstance(e, UserError) else f"bad Dialogue_ID / Utterance_ID ({e})")
                continue
            key = f"{csv_split or 'all'}_dia{dia}_utt{utt}"
            clip = next((c for d in search_dirs if (c := find_clip(d, f"dia{dia}_utt{utt}"))), None)
            if clip is None and not builder.has_audio(key):
                builder.skip(where, f"no clip dia{dia}_utt{utt}{{{','.join(AUDIO_EXTS)}}} in {audio_dir}")
                continue
            meta = {k: rec.get(k) for k in ("Season", "Episode", "StartTime", "EndTime", "Sr No.") if rec.get(k)}
            meta.update(dialogue=dia, utterance=utt)
            transcript = (rec["Utterance"] or "").strip() or None
            speaker = (rec["Speaker"] or "").strip() or None
            clips.append((_Clip(where, key, clip or Path(), transcript, emotion, sentiment,
                                f"meld/{speaker}" if speaker else None, meta), csv_split))

    def convert(c: _Clip):
        dst = builder.out_dir / builder.wav_rel(c.key)
        if dst.is_file():
            return "reused"
        if c.source.suffix.lower() in (".wav", ".flac"):
            return "decode"  # done on the main thread through load_audio
        ffmpeg_to_wav(c.source, dst)
        return "ffmpeg"

    results = run_parallel([lambda c=c: convert(c) for c, _ in clips], workers, "extract audio")
    for (c, csv_split), res in zip(clips, results):
        where = c.where
        if isinstance(res, Exception):
            if isinstance(res, UserError) and not isinstance(res, AudioError):
                raise res  # e.g. ffmpeg missing: nothing else will work either
            builder.skip(where, str(res))
            continue
        try:
            if res == "ffmpeg":
                audio, duration = builder.adopt_audio(c.key)
            else:
                audio, duration = builder.write_audio(c.key, c.source)
        except AudioError as e:
            builder.skip(where, str(e))
            continue
        builder.add_utterance(c.key, audio, duration, transcript=c.transcript, emotion=c.emotion,
                              sentiment=c.sentiment, split=csv_split, speaker=c.speaker, meta=c.meta)
    return builder.finish()
