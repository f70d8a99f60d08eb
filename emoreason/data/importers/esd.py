"""ESD, the Emotional Speech Dataset (Zhou et al. 2021): 10 Mandarin (0001-0010) and 10 English
(0011-0020) speakers, 350 parallel sentences in each of five emotions.

Layout: ``SPK/SPK.txt`` (one line per utterance: ``SPK_NNNNNN<TAB>text<TAB>Emotion``) and
``SPK/{Angry,Happy,Neutral,Sad,Surprise}/[train|evaluation|test/]SPK_NNNNNN.wav``. The emotion is
the text file's (the folder's when the file has no line for the clip; a clip whose folder and
line disagree is reported). Transcripts from the text file. Only the English speakers by default
(``languages``). ESD's own train / evaluation / test folders split sentences, not speakers:
``--split-by official`` uses them (``meta.official_split``), the default is speaker-disjoint.
"""
from __future__ import annotations

import re
from pathlib import Path

from emoreason.data.importers.named import Clip, Scan, stem_match, walk_audio
from emoreason.errors import UserError

NAME = "esd"
PATTERN = re.compile(r"(\d{4})_(\d{6})")
EMOTIONS = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad", "surprise": "surprised"}
SPLIT_FOLDERS = {"train": "train", "evaluation": "dev", "test": "test"}
CHINESE_EMOTIONS = {"中立": "neutral", "生气": "angry", "快乐": "happy", "伤心": "sad", "惊喜": "surprise"}
"""Emotion words of the Mandarin speakers' text files (their lines name the emotion in Chinese)."""


def language_of(speaker: str) -> str:
    """ESD's speakers 0001-0010 speak Mandarin, 0011-0020 English."""
    return "zh" if int(speaker) <= 10 else "en"


def read_transcripts(path: Path) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str]]]:
    """``SPK.txt`` -> ({utterance id: (text, emotion word)}, bad lines). The English speakers'
    files are UTF-8; some Mandarin ones are UTF-16 or GB18030."""
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "utf-16", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UserError(f"{path}: cannot decode as UTF-8, UTF-16 or GB18030")
    table: dict[str, tuple[str, str]] = {}
    bad: list[tuple[str, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) >= 3:
            parts[-1] = CHINESE_EMOTIONS.get(parts[-1], parts[-1])
        if len(parts) < 3 or not PATTERN.fullmatch(parts[0]) or parts[-1].lower() not in EMOTIONS:
            bad.append((f"{path}:{lineno}", "not 'SPK_NNNNNN<TAB>text<TAB>Emotion'"))
            continue
        table[parts[0]] = ("\t".join(parts[1:-1]).strip(), parts[-1].lower())
    return table, bad


def scan(root: Path, languages: tuple[str, ...] = ("en",)) -> Scan:
    """Clips under ``root`` (the folder holding 0001 ... 0020, at any depth)."""
    out = Scan()
    texts: dict[str, dict[str, tuple[str, str]]] = {}
    for path in walk_audio(root):
        m = stem_match(PATTERN, path)
        if m is None:
            out.skipped.append((str(path), "not an ESD name (SPK_NNNNNN.wav, e.g. 0011_000001.wav)"))
            continue
        speaker, _ = m.groups()
        if not 1 <= int(speaker) <= 20:
            out.skipped.append((str(path), f"speaker {speaker} is not one of ESD's 0001-0020"))
            continue
        language = language_of(speaker)
        if language not in languages:
            out.leave_out(f"language {language} (speakers {'0001-0010' if language == 'zh' else '0011-0020'}): not chosen")
            continue
        spk_dir = next((p for p in path.parents if p.name == speaker), None)
        if speaker not in texts:
            txt = spk_dir / f"{speaker}.txt" if spk_dir else None
            texts[speaker], bad = read_transcripts(txt) if txt and txt.is_file() else ({}, [])
            out.skipped += bad
        folders = [p.lower() for p in path.relative_to(spk_dir or path.parent).parts[:-1]]
        folder_emotion = next((f for f in folders if f in EMOTIONS), None)
        text, line_emotion = texts[speaker].get(path.stem, (None, None))
        if folder_emotion and line_emotion and folder_emotion != line_emotion:
            out.skipped.append((str(path), f"folder says {folder_emotion}, {speaker}.txt says {line_emotion}"))
            continue
        emotion = line_emotion or folder_emotion
        if emotion is None:
            out.skipped.append((str(path), f"no emotion: not under an emotion folder and no line in {speaker}.txt"))
            continue
        split = next((SPLIT_FOLDERS[f] for f in folders if f in SPLIT_FOLDERS), None)
        out.clips.append(Clip(key=path.stem, path=path, code=emotion.capitalize(), label=EMOTIONS[emotion],
                              speaker=speaker, transcript=text or None, language=language, split=split))
    return out
