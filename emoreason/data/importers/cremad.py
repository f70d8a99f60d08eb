"""CREMA-D (Cao et al. 2014): ``AudioWAV/AAAA_SSS_EEE_LL.wav``.

Actor 1001-1091, sentence code (12 fixed sentences, below), emotion ANG / DIS / FEA / HAP / NEU /
SAD, level LO / MD / HI / XX (unspecified). Transcripts: the sentence of the code. Speaker: the
actor. The release's known empty file (``1076_MTI_SAD_XX``) fails to decode and is reported.
"""
from __future__ import annotations

import re
from pathlib import Path

from emoreason.data.importers.named import Clip, Scan, stem_match, walk_audio

NAME = "cremad"
PATTERN = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})")
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
EMOTIONS = {"ANG": "angry", "DIS": "disgusted", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}


def scan(root: Path) -> Scan:
    """Clips under ``root`` (the release's ``AudioWAV`` folder or any folder above it)."""
    out = Scan()
    for path in walk_audio(root):
        m = stem_match(PATTERN, path)
        if m is None:
            out.skipped.append((str(path), "not a CREMA-D name (AAAA_SSS_EEE_LL, e.g. 1001_DFA_ANG_XX)"))
            continue
        actor, sentence, emo, level = m.groups()
        problems = [what for what, ok in (("actor", 1001 <= int(actor) <= 1091), ("sentence", sentence in SENTENCES),
                                          ("emotion", emo in EMOTIONS), ("level", level in LEVELS)) if not ok]
        if problems:
            out.skipped.append((str(path), f"unknown {', '.join(problems)} code in {path.stem}"))
            continue
        out.clips.append(Clip(key=path.stem, path=path, code=emo, label=EMOTIONS[emo], speaker=actor,
                              transcript=SENTENCES[sentence], meta={"sentence": sentence, "level": LEVELS[level]}))
    return out
