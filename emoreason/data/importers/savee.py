"""SAVEE, Surrey audio-visual expressed emotion (Haq & Jackson 2009): four male speakers
(DC, JE, JK, KL), 120 utterances each.

Two layouts are read: the release's ``AudioData/DC/a01.wav`` (speaker = parent folder) and the
flat copies' ``DC_a01.wav``. Emotion prefix: a anger, d disgust, f fear, h happiness, n neutral,
sa sadness, su surprise, then a two-digit number (01-15; neutral 01-30). The release lists the
TIMIT sentences per emotion in its documentation, not per file, so clips carry no transcript:
pass a transcriber (``--transcribe``) if the teacher should quote.
"""
from __future__ import annotations

import re
from pathlib import Path

from emoreason.data.importers.named import Clip, Scan, stem_match, walk_audio

NAME = "savee"
SPEAKERS = ("DC", "JE", "JK", "KL")
FLAT = re.compile(r"(DC|JE|JK|KL)_(a|d|f|h|n|sa|su)(\d\d)")
IN_FOLDER = re.compile(r"(a|d|f|h|n|sa|su)(\d\d)")
EMOTIONS = {"a": "angry", "d": "disgusted", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprised"}


def scan(root: Path) -> Scan:
    out = Scan()
    for path in walk_audio(root):
        m = stem_match(FLAT, path)
        if m is not None:
            speaker, emo, num = m.groups()
        elif (m := stem_match(IN_FOLDER, path)) is not None and path.parent.name in SPEAKERS:
            speaker, (emo, num) = path.parent.name, m.groups()
        else:
            out.skipped.append((str(path), "not a SAVEE name (SPEAKER/e01.wav or SPEAKER_e01.wav, e = a d f h n sa su)"))
            continue
        if not 1 <= int(num) <= (30 if emo == "n" else 15):
            out.skipped.append((str(path), f"utterance number {num} out of range for emotion {emo!r}"))
            continue
        out.clips.append(Clip(key=f"{speaker}_{emo}{num}", path=path, code=emo, label=EMOTIONS[emo], speaker=speaker,
                              meta={"number": int(num)}))
    return out
