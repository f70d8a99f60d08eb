"""Any CSV / TSV / JSONL table with a column mapping: ``--map audio=path,emotion=label,transcript=text``.

Our fields (left of ``=``): ``audio`` (required; paths relative to the table's folder), ``id``,
``emotion`` (alias ``label``), ``sentiment``, ``transcript``, ``speaker``, ``split``, ``question``,
``answer``. Unmapped fields whose column name equals the field name (or ``label``) are picked up too.
Rows are made for every task the mapped fields support (or the ``tasks`` given); sentiment is
derived from the emotion label when asked for and not mapped.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from emoreason.audio import AudioError
from emoreason.data.importers.common import ALL_TASKS, ImportSummary, ManifestBuilder, parse_tasks, safe_name
from emoreason.data.importers.splits import assign_groups
from emoreason.errors import UserError
from emoreason.labels import SENTIMENT, VOCABULARIES, normalize_label, sentiment_of

FIELDS = ("audio", "id", "emotion", "sentiment", "transcript", "speaker", "split", "question", "answer")
ALIASES = {"label": "emotion"}
SPLIT_NAMES = {"train": "train", "training": "train", "dev": "dev", "valid": "dev", "validation": "dev",
               "val": "dev", "test": "test", "eval": "test"}


def parse_mapping(text: str | None) -> dict[str, str]:
    """``"audio=path,label=emotion"`` -> {"audio": "path", "emotion": "emotion"} (our field -> column)."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise UserError(f"--map entry {part!r} is not FIELD=COLUMN")
        ours, col = (s.strip() for s in part.split("=", 1))
        ours = ALIASES.get(ours, ours)
        if ours not in FIELDS:
            raise UserError(f"--map field {ours!r} unknown (fields: {', '.join(FIELDS)}; 'label' means emotion)")
        mapping[ours] = col
    return mapping


def read_table(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """(where, record) for each row of a CSV/TSV/JSONL file; a bad JSONL line yields (where, reason str)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    yield f"{path}:{lineno}", f"not valid JSON ({e.msg})"
                    continue
                yield f"{path}:{lineno}", rec if isinstance(rec, dict) else "not a JSON object"
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            reader.fieldnames  # noqa: B018 - reads the header line, so line_num counts from it
            prev = reader.line_num
            for rec in reader:
                yield f"{path}:{prev + 1}", rec  # the line this record starts on
                prev = reader.line_num
    else:
        raise UserError(f"{path}: unknown table format {suffix!r} (use .csv, .tsv or .jsonl)")


def import_generic(
    table: str | Path,
    out_dir: str | Path,
    *,
    mapping: dict[str, str],
    tasks: str | None = None,
    vocabulary: str | None = None,
    split: str = "train",
    split_by: str = "none",
    test_fraction: float = 0.1,
    dev_fraction: float = 0.1,
    source: str | None = None,
    seed: int = 0,
) -> ImportSummary:
    """Import a table into ``out_dir``; see the module docstring.

    Args:
        mapping: our field -> column name (:func:`parse_mapping`).
        vocabulary: restrict emotion labels to a named vocabulary (iemocap, meld, emotion2vec).
        split: split for rows without a mapped split column (when ``split_by`` is ``none``).
        split_by: ``none`` | ``random`` | ``speaker``: seeded held-out shares instead of ``split``.
        source: corpus name for ids and ``source`` (default: the table's file stem).
    """
    table = Path(table)
    if not table.is_file():
        raise UserError(f"{table}: table not found")
    mapping = dict(mapping)
    records = list(read_table(table))
    first = next((r for _, r in records if isinstance(r, dict)), {})
    for f in FIELDS:  # a column literally named like our field needs no mapping
        if f not in mapping and f in first:
            mapping[f] = f
    for alias, ours in ALIASES.items():
        if ours not in mapping and alias in first:
            mapping[ours] = alias
    if "audio" not in mapping:
        raise UserError("the table needs an audio column: --map audio=COLUMN")
    missing = [c for c in mapping.values() if first and c not in first]
    if missing:
        raise UserError(f"{table}: mapped column(s) {missing} not in the table (columns: {sorted(first)})")
    available = tuple(t for t in ALL_TASKS if (
        (t == "emotion" and "emotion" in mapping) or (t == "sentiment" and ("sentiment" in mapping or "emotion" in mapping))
        or (t == "asr" and "transcript" in mapping) or (t == "sqa" and {"question", "answer"} <= set(mapping))))
    if not available:
        raise UserError("the mapping supports no task: map emotion, sentiment, transcript or question+answer")
    default_tasks = tuple(t for t in available if t != "sentiment" or "sentiment" in mapping)
    chosen = parse_tasks(tasks, available) if tasks else default_tasks
    vocab = VOCABULARIES[vocabulary] if vocabulary else None
    name = safe_name(source or table.stem).lower()
    builder = ManifestBuilder(out_dir, source=name, tasks=chosen, seed=seed)

    def get(rec: dict, field: str) -> str | None:
        col = mapping.get(field)
        val = rec.get(col) if col else None
        return str(val).strip() if val is not None and str(val).strip() else None

    parsed: list[tuple[str, str, dict[str, Any]]] = []
    for i, (where, rec) in enumerate(records):
        if isinstance(rec, str):
            builder.skip(where, rec)
            continue
        try:
            audio_ref = get(rec, "audio")
            if not audio_ref:
                raise UserError("empty audio path")
            fields: dict[str, Any] = {"transcript": get(rec, "transcript"), "speaker": get(rec, "speaker"),
                                      "question": get(rec, "question"), "answer": get(rec, "answer")}
            emo = get(rec, "emotion")
            if emo:
                fields["emotion"] = normalize_label(emo, vocab)
            sent = get(rec, "sentiment")
            if sent:
                fields["sentiment"] = normalize_label(sent, SENTIMENT)
            elif "sentiment" in chosen and fields.get("emotion"):
                fields["sentiment"] = sentiment_of(fields["emotion"])
            row_split = get(rec, "split")
            if row_split:
                if row_split.lower() not in SPLIT_NAMES:
                    raise UserError(f"unknown split {row_split!r} (use train, dev or test)")
                fields["split"] = SPLIT_NAMES[row_split.lower()]
            key = safe_name(get(rec, "id") or Path(audio_ref).stem or f"row{i}")
        except UserError as e:
            builder.skip(where, str(e))
            continue
        audio_path = Path(audio_ref)
        if not audio_path.is_absolute():
            audio_path = table.parent / audio_path
        fields["_audio"] = audio_path
        parsed.append((where, key, fields))

    if split_by == "none":
        split_of = lambda key, f: f.get("split") or split  # noqa: E731
    elif split_by in ("random", "speaker"):
        group = (lambda key, f: key) if split_by == "random" else (lambda key, f: f.get("speaker") or "?")
        assigned = assign_groups([group(k, f) for _, k, f in parsed], test_fraction, dev_fraction, seed,
                                 at_least_one=split_by == "speaker")
        split_of = lambda key, f: assigned[group(key, f)]  # noqa: E731
    else:
        raise UserError(f"--split-by must be none, random or speaker (got {split_by!r})")

    from tqdm import tqdm

    seen: set[str] = set()
    for where, key, fields in tqdm(parsed, desc=f"import {name}", unit="utt"):
        if key in seen:
            builder.skip(where, f"duplicate id {key!r}")
            continue
        seen.add(key)
        audio_path = fields.pop("_audio")
        row_split = split_of(key, fields)
        fields.pop("split", None)
        try:
            audio, duration = builder.write_audio(key, audio_path)
        except AudioError as e:
            builder.skip(where, str(e))
            continue
        builder.add_utterance(key, audio, duration, split=row_split, **fields)
    return builder.finish()
