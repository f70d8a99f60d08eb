"""RAVDESS, speech part (Livingstone & Russo 2018): ``Actor_NN/03-01-EE-II-SS-RR-AA.wav``.

The seven two-digit fields of a file name: modality (03 = audio-only), vocal channel (01 = speech,
02 = song), emotion, intensity (01 normal, 02 strong), statement (01 / 02), repetition (01 / 02),
actor (01-24; odd = male, even = female). Emotions: 01 neutral, 02 calm, 03 happy, 04 sad,
05 angry, 06 fearful, 07 disgust, 08 surprised. Calm is not in our vocabulary and is left out
unless ``calm_as="neutral"``. Song files (vocal channel 02) are left out (the speech part only).
Transcripts: the two fixed statements. Speaker: the actor number.
"""
from __future__ import annotations

import re
from pathlib import Path

from emoreason.data.importers.named import Clip, Scan, stem_match, walk_audio

NAME = "ravdess"
PATTERN = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
EMOTIONS: dict[str, str | None] = {"01": "neutral", "02": None, "03": "happy", "04": "sad", "05": "angry",
                                   "06": "fearful", "07": "disgusted", "08": "surprised"}
CODE_NAMES = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
              "07": "disgust", "08": "surprised"}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
INTENSITY = {"01": "normal", "02": "strong"}


def scan(root: Path, calm_as: str | None = None) -> Scan:
    """Clips of the speech part under ``root`` (any folder depth). ``calm_as``: None (leave calm
    out) or ``neutral`` (count calm as neutral, a common merge)."""
    out = Scan()
    for path in walk_audio(root):
        m = stem_match(PATTERN, path)
        if m is None:
            out.skipped.append((str(path), "not a RAVDESS name (MM-VV-EE-II-SS-RR-AA, seven two-digit fields)"))
            continue
        modality, channel, emo, intensity, statement, rep, actor = m.groups()
        if channel == "02":
            out.leave_out("song (vocal channel 02): the speech part only")
            continue
        problems = [what for what, ok in (
            ("modality", modality in ("01", "02", "03")), ("vocal channel", channel == "01"), ("emotion", emo in EMOTIONS),
            ("intensity", intensity in INTENSITY), ("statement", statement in STATEMENTS), ("repetition", rep in ("01", "02")),
            ("actor", 1 <= int(actor) <= 24)) if not ok]
        if problems:
            out.skipped.append((str(path), f"unknown {', '.join(problems)} code in {path.stem}"))
            continue
        label = EMOTIONS[emo] if emo != "02" else calm_as
        out.clips.append(Clip(
            key=path.stem, path=path, code=CODE_NAMES[emo], label=label, speaker=actor,
            transcript=STATEMENTS[statement],
            meta={"intensity": INTENSITY[intensity], "repetition": int(rep),
                  "gender": "male" if int(actor) % 2 else "female"}))
    return out
