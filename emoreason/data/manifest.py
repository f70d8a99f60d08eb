"""The manifest contract (ARCHITECTURE.md): one JSONL row per utterance / task instance.

Rows are validated on read and on write. A bad row is reported with its line number and reason;
readers either raise (``strict=True``) or skip it and report it (``on_error`` callback), so an
import never silently loses or silently accepts data.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from emoreason.errors import UserError
from emoreason.jsonl import atomic_open
from emoreason.text.reserved import reserved_token_in

MANIFEST_VERSION = 1
KNOWN_TASKS = {"asr", "sqa", "emotion", "sentiment", "st", "caption"}
SPLITS = {"train", "dev", "test"}


class ManifestError(UserError):
    """A manifest row is invalid; the message names the file and line."""


@dataclass
class ManifestRow:
    """One utterance / task instance. ``audio`` is relative to the manifest's directory (or absolute)."""

    id: str
    audio: str
    task: str
    duration: float | None = None
    transcript: str | None = None
    label: str | None = None
    instruction: str | None = None
    target: str | None = None
    split: str | None = None
    speaker: str | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if v is not None and not (k == "meta" and not v)}
        return json.dumps(d, ensure_ascii=False)


_FIELDS = {f for f in ManifestRow.__dataclass_fields__}
_STR_FIELDS = {"id", "audio", "task", "transcript", "label", "instruction", "target", "split", "speaker", "source"}
_TEXT_FIELDS = ("transcript", "instruction", "target")
"""Fields that become prompt or target text: they must not hold the audio marker tokens."""


def validate_row(data: Any) -> ManifestRow:
    """dict -> ManifestRow; raise ManifestError(reason) without location (callers add it)."""
    if not isinstance(data, dict):
        raise ManifestError(f"row is a {type(data).__name__}, expected a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise ManifestError(f"unknown field(s) {sorted(unknown)} (put free fields under 'meta')")
    for req in ("id", "audio", "task"):
        if not data.get(req):
            raise ManifestError(f"missing required field '{req}'")
    for k in _STR_FIELDS:
        if k in data and data[k] is not None and not isinstance(data[k], str):
            raise ManifestError(f"field '{k}' must be a string, got {type(data[k]).__name__}")
    dur = data.get("duration")
    if dur is not None:
        if isinstance(dur, bool) or not isinstance(dur, (int, float)) or not dur > 0 or dur != dur:
            raise ManifestError(f"field 'duration' must be a positive number, got {dur!r}")
    if "meta" in data and data["meta"] is not None and not isinstance(data["meta"], dict):
        raise ManifestError("field 'meta' must be an object")
    split = data.get("split")
    if split is not None and split not in SPLITS:
        raise ManifestError(f"field 'split' must be one of {sorted(SPLITS)}, got {split!r}")
    for k in _TEXT_FIELDS:
        token = reserved_token_in(data.get(k))
        if token is not None:
            raise ManifestError(f"field '{k}' contains {token!r}, a token reserved for the audio")
    for k, v in (data.get("meta") or {}).items():
        if isinstance(v, str) and reserved_token_in(v) is not None:
            raise ManifestError(f"field 'meta.{k}' contains {reserved_token_in(v)!r}, a token reserved for the audio")
    task = data["task"]
    if task in ("emotion", "sentiment") and not data.get("label"):
        raise ManifestError(f"task '{task}' needs a 'label'")
    if task == "asr" and data.get("transcript") is None and data.get("target") is None:
        raise ManifestError("task 'asr' needs a 'transcript' or 'target'")
    row = dict(data)
    if row.get("meta") is None:
        row.pop("meta", None)
    if dur is not None:
        row["duration"] = float(dur)
    return ManifestRow(**row)


def iter_manifest(
    path: str | Path,
    strict: bool = True,
    on_error: Callable[[int, str], None] | None = None,
) -> Iterator[tuple[int, ManifestRow]]:
    """Yield (line_number, row). Bad rows raise ManifestError("file:line: reason") when ``strict``;
    otherwise they are passed to ``on_error(line, reason)`` and skipped. Blank lines are ignored.

    ``path`` may also be a ``datasets`` directory, a parquet file or ``hf:ID`` (with an optional
    ``#field=column,...`` mapping): its rows are written once as a manifest (``emoreason.data.hf_source``)
    and read from there; their audio paths are absolute."""
    from emoreason.data.hf_source import is_dataset_source, materialize

    if is_dataset_source(path):
        path = materialize(str(path))
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                try:
                    data = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise ManifestError("not UTF-8 text") from None
                except json.JSONDecodeError as e:
                    raise ManifestError(f"not valid JSON ({e.msg} at column {e.colno})") from None
                row = validate_row(data)
            except ManifestError as e:
                if strict:
                    raise ManifestError(f"{path}:{lineno}: {e}") from None
                if on_error is not None:
                    on_error(lineno, str(e))
                continue
            yield lineno, row


def read_manifest(path: str | Path, strict: bool = True, on_error: Callable[[int, str], None] | None = None) -> list[ManifestRow]:
    """All valid rows of a manifest (see :func:`iter_manifest`)."""
    return [row for _, row in iter_manifest(path, strict=strict, on_error=on_error)]


def resolve_audio(row: ManifestRow, manifest_path: str | Path) -> Path:
    """Absolute path of a row's audio (relative paths are relative to the manifest's folder)."""
    p = Path(row.audio)
    return p if p.is_absolute() else Path(manifest_path).resolve().parent / p


def write_manifest(path: str | Path, rows: Iterable[ManifestRow | dict]) -> int:
    """Validate and write rows atomically (temp file + rename). Returns the number written."""
    path = Path(path)
    n = 0
    with atomic_open(path) as f:  # a bad row or a crash leaves the old file as it was
        for i, row in enumerate(rows, 1):
            if isinstance(row, dict):
                try:
                    row = validate_row(row)
                except ManifestError as e:
                    raise ManifestError(f"{path}: row {i}: {e}") from None
            else:
                validate_row(json.loads(row.to_json()))
            f.write(row.to_json() + "\n")
            n += 1
    return n
