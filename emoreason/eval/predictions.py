"""Reading prediction files (JSONL) with errors that name the file and line.

Row fields: ``prediction`` (free text, required), ``reference`` (gold label or an AudioBench-style
reference sentence) and/or ``label``, optional ``task`` (emotion | sentiment | sqa | asr),
``question``, ``transcript``, ``id``; other fields are kept and passed through to scores.jsonl.
"""
from __future__ import annotations

import json
from pathlib import Path

from emoreason.errors import UserError

TASKS = ("emotion", "sentiment", "sqa", "asr")


class PredictionsError(UserError):
    """A prediction file is malformed; the message names ``file:line``."""


def read_predictions(path: str | Path) -> list[dict]:
    """All rows of a predictions JSONL, validated; each gets ``_line`` (1-based) and an ``id``."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    rows: list[dict] = []
    seen: dict[str, int] = {}
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise PredictionsError(f"{where}: not UTF-8 text") from None
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PredictionsError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise PredictionsError(f"{where}: expected a JSON object, got {type(row).__name__}")
            if "prediction" not in row:
                raise PredictionsError(f"{where}: missing field 'prediction'")
            for key in ("prediction", "reference", "label", "task", "question", "transcript"):
                if row.get(key) is not None and not isinstance(row[key], str):
                    raise PredictionsError(f"{where}: field '{key}' must be a string, got {type(row[key]).__name__}")
            if row.get("reference") is None and row.get("label") is None:
                raise PredictionsError(f"{where}: needs a 'reference' or a 'label'")
            if row.get("task") is not None and row["task"] not in TASKS:
                raise PredictionsError(f"{where}: unknown task {row['task']!r} (expected one of {', '.join(TASKS)})")
            rid = str(row.get("id") if row.get("id") is not None else f"line-{n}")
            if rid in seen:
                raise PredictionsError(f"{where}: duplicate id {rid!r} (first on line {seen[rid]})")
            seen[rid] = n
            row["id"] = rid
            row["_line"] = n
            rows.append(row)
    if not rows:
        raise PredictionsError(f"{path}: no prediction rows")
    return rows
