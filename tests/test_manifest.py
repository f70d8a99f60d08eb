import json

import pytest

from emoreason.data.manifest import ManifestError, ManifestRow, read_manifest, resolve_audio, write_manifest


def test_write_read_roundtrip(tmp_path):
    rows = [
        ManifestRow(id="a", audio="wav/a.wav", task="emotion", label="happy", transcript="yay", split="train", speaker="s1"),
        {"id": "b", "audio": "wav/b.wav", "task": "asr", "transcript": "hello", "duration": 1.5, "meta": {"k": 1}},
    ]
    p = tmp_path / "m.jsonl"
    assert write_manifest(p, rows) == 2
    back = read_manifest(p)
    assert back[0].label == "happy" and back[1].duration == 1.5 and back[1].meta == {"k": 1}
    assert resolve_audio(back[0], p) == tmp_path / "wav" / "a.wav"


def test_bad_rows_name_their_line(tmp_path):
    p = tmp_path / "m.jsonl"
    good = json.dumps({"id": "a", "audio": "a.wav", "task": "emotion", "label": "sad"})
    p.write_text("\n".join([good, "{not json", json.dumps({"id": "c", "audio": "c.wav", "task": "emotion"}), good]) + "\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:2: not valid JSON"):
        read_manifest(p)
    errors = []
    rows = read_manifest(p, strict=False, on_error=lambda line, why: errors.append((line, why)))
    assert len(rows) == 2
    assert [e[0] for e in errors] == [2, 3] and "needs a 'label'" in errors[1][1]


def test_write_rejects_invalid(tmp_path):
    with pytest.raises(ManifestError, match="row 1: field 'duration'"):
        write_manifest(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav", "task": "asr", "transcript": "x", "duration": -1}])
    assert not (tmp_path / "m.jsonl").exists()
