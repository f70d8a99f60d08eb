"""Dataset sources as manifests: a real `save_to_disk` DatasetDict and a parquet file built here,
column mappings (spec suffix and data.columns), ClassLabel names, split names, reuse, clean errors."""
from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

datasets = pytest.importorskip("datasets")

from emoreason.audio import load_audio  # noqa: E402
from emoreason.config import DataConfig  # noqa: E402
from emoreason.data.dataset import ManifestDataset  # noqa: E402
from emoreason.data.dummy import resolve_manifest  # noqa: E402
from emoreason.data.hf_source import DatasetSourceError, is_dataset_source, split_spec  # noqa: E402
from emoreason.data.manifest import read_manifest, resolve_audio  # noqa: E402


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _tone(freq: float, seconds: float, sr: int = 22050) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _wav_bytes(freq: float, seconds: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(freq, seconds), 22050, format="WAV")
    return buf.getvalue()


def _audio_dataset(cells: list[dict], labels: list[int], texts: list[str]):
    """A Dataset with a real ``Audio`` column (cast from {bytes, path}: building it directly would
    make datasets encode through torchcodec) and a ClassLabel column."""
    feats = datasets.Features({"speech": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                               "emotion": datasets.ClassLabel(names=["neutral", "happy", "sad"]),
                               "text": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"speech": cells, "emotion": labels, "text": texts}, features=feats)
    return ds.cast_column("speech", datasets.Audio())


def test_save_to_disk_dataset_dict_with_mapping(tmp_path):
    cells = [{"bytes": _wav_bytes(200, 1.0), "path": None}, {"bytes": _wav_bytes(300, 1.5), "path": None}]
    if shutil.which("ffmpeg"):  # an m4a clip in the dataset: decoded through the ffmpeg fallback
        src = tmp_path / "clip.wav"
        sf.write(src, _tone(250, 1.2), 22050)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(src), "-c:a", "aac", str(tmp_path / "clip.m4a")], check=True)
        cells.append({"bytes": (tmp_path / "clip.m4a").read_bytes(), "path": "clip.m4a"})
    n = len(cells)
    dd = datasets.DatasetDict({
        "train": _audio_dataset(cells, [1, 2, 0][:n], ["hi there", "oh no", "fine"][:n]),
        "validation": _audio_dataset(cells[:1], [0], ["well"]),
    })
    dd.save_to_disk(str(tmp_path / "crema"))
    spec = f"{tmp_path / 'crema'}#audio=speech,label=emotion,transcript=text,task==emotion"
    assert is_dataset_source(spec) and not is_dataset_source(tmp_path / "m.jsonl")
    rows = read_manifest(spec)
    assert [(r.split, r.label, r.task, r.transcript) for r in rows] == (
        [("train", lab, "emotion", t) for lab, t in zip(["happy", "sad", "neutral"][:n], ["hi there", "oh no", "fine"][:n])]
        + [("dev", "neutral", "emotion", "well")])
    assert len({r.id for r in rows}) == len(rows)
    # the audio is what was in the dataset, at 16 kHz
    first = load_audio(resolve_audio(rows[0], spec))
    np.testing.assert_allclose(first, load_audio(cells[0]["bytes"]), atol=1e-4)
    assert [r.duration for r in rows[:2]] == [1.0, 1.5]
    if n == 3:
        assert abs(rows[2].duration - 1.2) < 0.1


def test_parquet_with_paths_and_fields_named_like_the_manifest(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "clips").mkdir()
    for i, f in enumerate((180, 240)):
        sf.write(tmp_path / "clips" / f"{i}.wav", _tone(f, 1.0 + i), 22050)
    table = pa.table({"id": ["a", "b"], "audio": ["clips/0.wav", "clips/1.wav"], "task": ["asr", "emotion"],
                      "transcript": ["hello", None], "label": [None, "angry"], "split": ["train", "test"]})
    pq.write_table(table, tmp_path / "rows.parquet")
    rows = read_manifest(tmp_path / "rows.parquet")  # no mapping needed
    assert [(r.id, r.task, r.transcript, r.label, r.split) for r in rows] == [
        ("a", "asr", "hello", None, "train"), ("b", "emotion", None, "angry", "test")]
    assert load_audio(rows[1].audio).size == 32000


def test_training_reads_a_dataset_with_data_columns(tmp_path, cache):
    _audio_dataset([{"bytes": _wav_bytes(200 + 50 * i, 1.0), "path": None} for i in range(4)], [0, 1, 2, 1],
                   ["a", "b", "c", "d"]).save_to_disk(str(tmp_path / "ds"))
    columns = {"audio": "speech", "label": "emotion", "task": "=emotion"}
    manifest = resolve_manifest(str(tmp_path / "ds"), columns=columns)
    ds = ManifestDataset(manifest, DataConfig().task_groups, split="train")
    assert len(ds) == 4 and ds.tasks == ["emotion"] and ds[2]["target"] and ds[2]["wave"].shape == (16000,)
    # unchanged source and mapping: the written manifest is reused, not rebuilt
    stamp = manifest.stat().st_mtime_ns
    assert resolve_manifest(str(tmp_path / "ds"), columns=columns) == manifest and manifest.stat().st_mtime_ns == stamp
    # another mapping is another manifest
    assert resolve_manifest(str(tmp_path / "ds"), columns={**columns, "transcript": "text"}) != manifest


def test_errors_are_one_line_and_leave_nothing_half_written(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    _audio_dataset([{"bytes": _wav_bytes(200, 1.0), "path": None}, {"bytes": b"not audio at all" * 10, "path": None}],
                   [0, 1], ["a", "b"]).save_to_disk(str(tmp_path / "ds"))
    base = str(tmp_path / "ds")
    cases = [
        (f"{base}", "no 'audio' column (columns: emotion, speech, text); map one with"),
        (f"{base}#audio=speech", "no 'task' column"),
        (f"{base}#audio=voice,task==emotion", "no column(s) ['voice']"),
        (f"{base}#audio=speech,mood=emotion", "unknown manifest field(s) ['mood']"),
        (f"{base}#audio", "column mapping item 'audio' is not field=column"),
        (f"{base}#audio=speech,label=emotion,task==emotion", "(row 1): not a readable audio file"),
        ("hf:nobody/no-such-dataset#task==emotion", "hf:nobody/no-such-dataset: could not load the dataset"),
        (str(tmp_path / "missing.parquet"), "parquet file not found"),
    ]
    for spec, message in cases:
        with pytest.raises(DatasetSourceError) as err:
            read_manifest(spec)
        assert message in str(err.value) and "\n" not in str(err.value), (spec, str(err.value))
    assert not cache.exists() or not any(p.name.startswith(".") for p in (cache / "datasets").iterdir())


def test_a_jsonl_manifest_with_a_hash_in_its_name_is_still_a_manifest(tmp_path):
    path = tmp_path / "take#2.jsonl"
    path.write_text('{"id": "a", "audio": "a.wav", "task": "asr", "transcript": "hi"}\n')
    assert not is_dataset_source(path) and [r.id for r in read_manifest(path)] == ["a"]


def test_split_spec():
    assert split_spec("d#audio=speech, task==emotion") == ("d", {"audio": "speech", "task": "=emotion"})
    assert split_spec("plain.jsonl") == ("plain.jsonl", {})
