"""Hugging Face ``datasets`` and parquet as manifest sources.

Wherever a manifest path is taken (``data.train_manifest``, ``data.eval_manifest``, ``--manifest`` of
every verb), these also work:

    data/my_ds                 a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
    data/train.parquet         a parquet file (a Hugging Face export or any table with an audio column)
    hf:owner/name              a hub dataset id (needs the network or the local datasets cache;
                               offline it fails with one line)

optionally followed by a column mapping ``#field=column,field=column`` (manifest field = the
dataset's column; ``field==value`` gives every row a constant), e.g.
``data/crema#audio=speech,label=emotion,task==emotion``. ``data.columns`` in a config gives the same
mapping as a dict. Without a mapping, columns named like manifest fields are used as they are.

The rows are written once as an ordinary manifest (``manifest.jsonl`` + 16 kHz wav files, absolute
paths) under ``$EMOREASON_CACHE/datasets/<fingerprint>/`` and reused while the source is unchanged, so
everything downstream reads plain manifests. Audio is decoded by :func:`emoreason.audio.load_audio`
(soundfile, then ffmpeg), never by ``datasets``' own decoder: ``Audio`` columns are read with
``decode=False`` (encoded bytes / path), which keeps torchcodec out of it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from emoreason.audio import AudioError, load_audio, resample, save_audio, to_mono, validate_wave
from emoreason.errors import UserError
from emoreason.jsonl import write_jsonl

HUB_PREFIX = "hf:"
MAPPING_SEP = "#"
FIELDS = ("id", "audio", "task", "duration", "transcript", "label", "instruction", "target", "split", "speaker", "source")
"""Manifest fields a column can fill (``emoreason.data.manifest.ManifestRow``; ``meta`` is not mapped)."""
SPLIT_NAMES = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}
"""Hugging Face split names -> manifest ``split`` values."""


class DatasetSourceError(UserError):
    """A dataset source could not be read; the message names it."""


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"data/x#audio=speech,task==emotion"`` -> (``"data/x"``, {"audio": "speech", "task": "=emotion"})."""
    if MAPPING_SEP not in spec:
        return spec, {}
    source, _, raw = spec.partition(MAPPING_SEP)
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        field, eq, column = item.partition("=")
        if not eq or not field or not column:
            raise DatasetSourceError(f"{spec}: column mapping item {item!r} is not field=column (or field==constant)")
        mapping[field.strip()] = column.strip()
    return source, mapping


def is_dataset_source(spec: str | Path) -> bool:
    """Whether ``spec`` names a datasets directory, a parquet file or a hub id (not a JSONL manifest)."""
    if Path(spec).is_file() and not str(spec).endswith(".parquet"):  # a manifest, even with '#' in its name
        return False
    source = str(spec).partition(MAPPING_SEP)[0]
    if source.startswith(HUB_PREFIX) or source.endswith(".parquet"):
        return True
    path = Path(source)
    return path.is_dir() and any((path / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _fingerprint(source: str, mapping: dict[str, str]) -> str:
    """Changes when the source's files or the mapping change (so the cached manifest is rebuilt)."""
    h = hashlib.sha256(json.dumps([os.path.abspath(source) if not source.startswith(HUB_PREFIX) else source,
                                   sorted(mapping.items())]).encode())
    path = Path(source)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if f != path else f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _load(source: str) -> list[tuple[str | None, Any]]:
    """[(split name or None, datasets.Dataset)] for a directory, a parquet file or a hub id."""
    try:
        import datasets
    except ImportError:
        raise DatasetSourceError(f"{source}: reading datasets needs the datasets package: pip install datasets") from None
    try:
        if source.startswith(HUB_PREFIX):
            loaded = datasets.load_dataset(source[len(HUB_PREFIX):])
        elif source.endswith(".parquet"):
            if not Path(source).is_file():
                raise DatasetSourceError(f"{source}: parquet file not found")
            import pyarrow.parquet as pq

            loaded = datasets.Dataset(pq.read_table(source))  # in memory: no copy into the datasets cache
        else:
            loaded = datasets.load_from_disk(source)
    except DatasetSourceError:
        raise
    except Exception as e:  # offline hub, corrupt files, ...: one line naming the source
        reason = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise DatasetSourceError(f"{source}: could not load the dataset ({e.__class__.__name__}: {reason})") from None
    if isinstance(loaded, datasets.DatasetDict):
        return list(loaded.items())
    return [(None, loaded)]


def _undecoded(ds: Any) -> Any:
    """``Audio`` columns as {bytes, path} (our decoder reads them; datasets' would need torchcodec)."""
    import datasets

    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Audio) and feature.decode:
            ds = ds.cast_column(name, datasets.Audio(decode=False))
    return ds


def _audio_wave(value: Any, base: Path, where: str) -> np.ndarray:
    """An audio cell -> 16 kHz mono float32 (T,): {bytes, path}, {array, sampling_rate}, a path, or bytes."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return load_audio(bytes(value["bytes"]))
        if value.get("array") is not None:
            wave = to_mono(np.asarray(value["array"], dtype=np.float32).T if np.ndim(value["array"]) == 2 else
                           np.asarray(value["array"], dtype=np.float32))
            return validate_wave(resample(wave, int(value.get("sampling_rate") or 16000)), where)
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return load_audio(bytes(value))
    if isinstance(value, str) and value:
        path = Path(value)
        return load_audio(path if path.is_absolute() else base / path)
    raise AudioError(f"{where}: no audio in this row (got {type(value).__name__})")


def _cell(row: dict[str, Any], column: str, features: Any) -> Any:
    """A row's value of ``column`` (``=x``: the constant x); ClassLabel ids become their names."""
    if column.startswith("="):
        return column[1:]
    value = row[column]
    feature = features.get(column)
    if value is not None and hasattr(feature, "int2str") and isinstance(value, int):
        return feature.int2str(value)
    return value


def _rows(source: str, mapping: dict[str, str], out: Path) -> Iterator[dict[str, Any]]:
    """Manifest rows (dicts) with absolute wav paths under ``out/wav``; decodes and writes the audio."""
    base = Path(source).parent if source.endswith(".parquet") else Path(source)
    name = Path(source.rstrip("/")).stem if not source.startswith(HUB_PREFIX) else source[len(HUB_PREFIX):].replace("/", "_")
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise DatasetSourceError(f"{source}: column mapping names unknown manifest field(s) {unknown} (fields: {', '.join(FIELDS)})")
    for split, ds in _load(source):
        ds = _undecoded(ds)
        columns = set(ds.column_names)
        fields = {f: mapping.get(f, f) for f in FIELDS if f in mapping or f in columns}
        missing = sorted(c for c in fields.values() if not c.startswith("=") and c not in columns)
        if missing:
            raise DatasetSourceError(f"{source}: no column(s) {missing} (columns: {', '.join(sorted(columns))}); "
                                     f"map them with {source}#field=column")
        if "audio" not in fields:
            raise DatasetSourceError(f"{source}: no 'audio' column (columns: {', '.join(sorted(columns))}); "
                                     f"map one with {source}#audio=COLUMN")
        if "task" not in fields:
            raise DatasetSourceError(f"{source}: no 'task' column; give every row one with {source}#task==emotion "
                                     f"(or asr, sqa, sentiment, ...)")
        for index, row in enumerate(ds):
            where = f"{source} ({split + ' ' if split else ''}row {index})"
            out_row = {f: _cell(row, c, ds.features) for f, c in fields.items() if f != "audio"}
            out_row = {k: (str(v) if k not in ("duration",) and v is not None else v) for k, v in out_row.items() if v is not None}
            out_row.setdefault("id", f"{name}-{split or 'all'}-{index:06d}")
            if "split" not in out_row:
                out_row["split"] = SPLIT_NAMES.get(split or "train", split)
            try:
                wave = _audio_wave(row[fields["audio"]], base, where)
            except AudioError as e:  # "<bytes>: ..." says nothing about which row: name it
                raise DatasetSourceError(f"{where}: {str(e).removeprefix('<bytes>: ')}") from None
            wav = out / "wav" / f"{hashlib.sha1(out_row['id'].encode()).hexdigest()[:16]}.wav"
            save_audio(wav, wave)
            out_row["audio"] = str(wav)
            out_row["duration"] = round(wave.size / 16000, 3)
            yield out_row


def default_cache_dir() -> Path:
    """``$EMOREASON_CACHE/datasets`` or ``~/.cache/emoreason/datasets``."""
    root = os.environ.get("EMOREASON_CACHE") or Path.home() / ".cache" / "emoreason"
    return Path(root) / "datasets"


def materialize(spec: str, columns: dict[str, str] | None = None, cache_dir: str | Path | None = None) -> Path:
    """Write (or reuse) the manifest of a dataset source; return its ``manifest.jsonl`` path.

    ``columns``: manifest field -> column (``=value`` for a constant), merged under the spec's own
    ``#...`` mapping. Built in a temporary sibling and renamed into place: a failure (a row that
    does not decode, a bad mapping) leaves no half-written manifest behind.
    """
    source, mapping = split_spec(spec)
    mapping = {**(columns or {}), **mapping}
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / _fingerprint(source, mapping)
    manifest = final / "manifest.jsonl"
    if manifest.is_file():
        return manifest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        (tmp / "wav").mkdir()
        # rows point at their final place: the folder is renamed as a whole below
        rows = [dict(r, audio=str(final / "wav" / Path(r["audio"]).name)) for r in _rows(source, mapping, tmp)]
        if not rows:
            raise DatasetSourceError(f"{source}: the dataset has no rows")
        write_jsonl(tmp / "manifest.jsonl", rows)
        try:
            os.rename(tmp, final)
        except OSError:
            if not manifest.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest
