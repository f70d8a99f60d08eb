"""MSP-Podcast (Lotfian & Busso 2019): ``Labels/labels_consensus.csv`` + ``Audios/*.wav``.

Label table columns: ``FileName``, ``EmoClass`` (consensus category: A anger, S sadness,
H happiness, U surprise, F fear, D disgust, C contempt, N neutral, O other, X no agreement),
``EmoAct`` / ``EmoVal`` / ``EmoDom`` (kept in ``meta``), ``SpkrID``, ``Gender``, ``Split_Set``
(Train, Development, Test1, Test2, Test3). Contempt, other and no-agreement clips are left out
(not in our vocabulary). Transcripts from ``Transcripts/STEM.txt`` when the copy has them.
Default split: the official one (Train -> train, Development -> dev, Test* -> test, which test set
in ``meta.official_set``). With ``--split-by speaker``, clips of unknown speakers always train.
"""
from __future__ import annotations

import csv
from pathlib import Path

from emoreason.data.importers.named import UNKNOWN_SPEAKER, Clip, Scan
from emoreason.errors import UserError

NAME = "msppodcast"
EMOTIONS: dict[str, str | None] = {"A": "angry", "S": "sad", "H": "happy", "U": "surprised", "F": "fearful",
                                   "D": "disgusted", "C": None, "N": "neutral", "O": None, "X": None}
SPLITS = {"train": "train", "development": "dev", "dev": "dev", "validation": "dev", "test1": "test",
          "test2": "test", "test3": "test", "test": "test"}
REQUIRED = ("FileName", "EmoClass", "SpkrID", "Split_Set")
UNKNOWN_SPEAKERS = {"", "unknown", "-1", "nan"}


def find_labels(root: Path) -> Path:
    """The consensus label table: ``root`` itself when it is the CSV, else ``root/Labels/labels_consensus.csv``
    (the name is also spelled ``labels_concensus.csv`` in some releases)."""
    if root.is_file():
        return root
    for name in ("labels_consensus.csv", "labels_concensus.csv"):
        for cand in (root / "Labels" / name, root / name):
            if cand.is_file():
                return cand
    raise UserError(f"{root}: no Labels/labels_consensus.csv (MSP-Podcast's consensus label table)")


def scan(root: Path) -> Scan:
    labels = find_labels(root)
    base = labels.parent.parent if labels.parent.name == "Labels" else labels.parent
    audio_dir = next((d for d in (base / "Audios", base / "Audio", base / "audios") if d.is_dir()), None)
    if audio_dir is None:
        raise UserError(f"{base}: no Audios/ folder next to {labels.relative_to(base)}")
    transcripts = base / "Transcripts"
    out = Scan()
    with labels.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise UserError(f"{labels}: missing column(s) {missing} (header: {header})")
        prev = reader.line_num
        for rec in reader:
            where = f"{labels}:{prev + 1}"
            prev = reader.line_num
            name = (rec.get("FileName") or "").strip()
            code = (rec.get("EmoClass") or "").strip().upper()
            split_name = (rec.get("Split_Set") or "").strip()
            if not name or code not in EMOTIONS or split_name.lower() not in SPLITS:
                out.skipped.append((where, f"bad row: FileName {name!r}, EmoClass {code!r}, Split_Set {split_name!r}"))
                continue
            path = audio_dir / name
            if not path.is_file():
                out.skipped.append((where, f"audio {path} not found"))
                continue
            spk = (rec.get("SpkrID") or "").strip()
            known = spk.lower() not in UNKNOWN_SPEAKERS
            txt = transcripts / f"{path.stem}.txt"
            text = txt.read_text(encoding="utf-8", errors="replace").strip() if txt.is_file() else None
            meta = {k: rec[k] for k in ("EmoAct", "EmoVal", "EmoDom", "Gender") if rec.get(k) not in (None, "")}
            meta["official_set"] = split_name
            out.clips.append(Clip(key=path.stem, path=path, code=code, label=EMOTIONS[code],
                                  speaker=spk if known else UNKNOWN_SPEAKER, transcript=text or None,
                                  split=SPLITS[split_name.lower()], meta=meta))
    return out
