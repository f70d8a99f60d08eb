"""EmoDB, the Berlin database of emotional speech (Burkhardt et al. 2005): ``wav/03a01Fa.wav``.

File name: speaker (2 digits: 03 08 09 10 11 12 13 14 15 16), text code (a01 ... b10, ten fixed
German sentences, below), emotion letter (German initial: W Aerger = anger, L Langeweile =
boredom, E Ekel = disgust, A Angst = fear, F Freude = happiness, T Trauer = sadness, N neutral),
version letter. Boredom is not in our vocabulary and is left out. Transcripts: the German
sentence of the text code (``meta.language = de``; the LLM still answers in English).
"""
from __future__ import annotations

import re
from pathlib import Path

from emoreason.data.importers.named import Clip, Scan, stem_match, walk_audio

NAME = "emodb"
PATTERN = re.compile(r"(\d\d)([ab]\d\d)([A-Z])([a-z])")
SPEAKERS = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male", "12": "male",
            "13": "female", "14": "female", "15": "male", "16": "female"}
TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
EMOTIONS: dict[str, str | None] = {"W": "angry", "L": None, "E": "disgusted", "A": "fearful", "F": "happy",
                                   "T": "sad", "N": "neutral"}
CODE_NAMES = {"W": "anger (Ärger)", "L": "boredom (Langeweile)", "E": "disgust (Ekel)", "A": "fear (Angst)",
              "F": "happiness (Freude)", "T": "sadness (Trauer)", "N": "neutral"}


def scan(root: Path) -> Scan:
    out = Scan()
    for path in walk_audio(root):
        m = stem_match(PATTERN, path)
        if m is None:
            out.skipped.append((str(path), "not an EmoDB name (speaker, text code, emotion letter, version: 03a01Fa)"))
            continue
        speaker, text, emo, version = m.groups()
        problems = [what for what, ok in (("speaker", speaker in SPEAKERS), ("text", text in TEXTS),
                                          ("emotion letter", emo in EMOTIONS)) if not ok]
        if problems:
            out.skipped.append((str(path), f"unknown {', '.join(problems)} code in {path.stem}"))
            continue
        out.clips.append(Clip(key=path.stem, path=path, code=CODE_NAMES[emo], label=EMOTIONS[emo], speaker=speaker,
                              transcript=TEXTS[text], language="de",
                              meta={"text": text, "version": version, "gender": SPEAKERS[speaker]}))
    return out
