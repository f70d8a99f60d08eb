"""TESS, the Toronto emotional speech set (Dupuis & Pichora-Fuller 2010): two speakers (OAF, the
older talker; YAF, the younger) say "Say the word ___" with 200 target words in seven emotions.

Layout: ``OAF_angry/OAF_back_angry.wav`` ... (folder names vary between copies; only the file name
is read): ``SPEAKER_WORD_EMOTION`` with emotion angry, disgust, fear, happy, neutral, ps
(pleasant surprise), sad. Transcript: "Say the word WORD." With only two speakers, a
speaker-disjoint split trains on one and tests on the other.
"""
from __future__ import annotations

import re
from pathlib import Path

from emoreason.data.importers.named import Clip, Scan, stem_match, walk_audio

NAME = "tess"
PATTERN = re.compile(r"(OAF|YAF)_([A-Za-z']+)_([A-Za-z_]+)", re.IGNORECASE)
EMOTIONS = {"angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy", "neutral": "neutral",
            "ps": "surprised", "pleasant_surprise": "surprised", "pleasant_surprised": "surprised", "sad": "sad"}


def scan(root: Path) -> Scan:
    out = Scan()
    for path in walk_audio(root):
        m = stem_match(PATTERN, path)
        emo = m.group(3).lower() if m else None
        if m is None or emo not in EMOTIONS:
            out.skipped.append((str(path), "not a TESS name (OAF|YAF_WORD_EMOTION, emotion one of "
                                           "angry, disgust, fear, happy, neutral, ps, sad)"))
            continue
        speaker, word = m.group(1).upper(), m.group(2).lower()
        out.clips.append(Clip(key=path.stem, path=path, code=emo, label=EMOTIONS[emo], speaker=speaker,
                              transcript=f"Say the word {word}.", meta={"word": word}))
    return out
