"""Contamination guard: a run records the content hash of every training clip (RUN_DIR/train_clips.json,
copied into final/), and an evaluation refuses or drops test clips whose audio the model was trained on."""
import json
import shutil

import pytest

from emoreason.config import DataConfig
from emoreason.data.dataset import ManifestDataset
from emoreason.data.dummy import make_dummy_corpus
from emoreason.data.manifest import read_manifest, resolve_audio
from emoreason.errors import UserError
from emoreason.data.clip_hashes import clip_hash, hash_clips
from emoreason.train.contamination import (TRAIN_CLIPS_FILE, check_contamination, load_training_hashes, overlaps,
                                           record_training_clips)


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path / "cache"))
    manifest = make_dummy_corpus(20, tmp_path / "dummy")
    train = ManifestDataset(manifest, DataConfig().task_groups, "train")
    model_dir = tmp_path / "run" / "final"
    record_training_clips([(e.id, e.audio) for e in train.examples], tmp_path / "run")
    model_dir.mkdir(parents=True)
    shutil.copyfile(tmp_path / "run" / TRAIN_CLIPS_FILE, model_dir / TRAIN_CLIPS_FILE)
    test_rows = [r for r in read_manifest(manifest) if r.split == "test"]
    return manifest, train, model_dir, test_rows


def test_held_out_clips_pass(corpus):
    manifest, _, model_dir, test_rows = corpus
    kept, dropped = check_contamination(model_dir, test_rows, [resolve_audio(r, manifest) for r in test_rows], exclude=False)
    assert kept == test_rows and dropped == []


def test_a_training_clip_under_another_name_and_id_is_caught(corpus, tmp_path):
    """The deliberately contaminated fixture: one test row whose audio is a renamed copy of a training clip."""
    manifest, train, model_dir, test_rows = corpus
    leak = tmp_path / "elsewhere" / "innocent-name.wav"
    leak.parent.mkdir()
    shutil.copyfile(train.examples[3].audio, leak)
    rows = test_rows + [{"id": "leaked-row"}]
    paths = [resolve_audio(r, manifest) for r in test_rows] + [leak]
    with pytest.raises(UserError, match="1 evaluation clip.*leaked-row") as err:
        check_contamination(model_dir.parent, rows, paths, exclude=False)  # a run directory works too
    assert "\n" not in str(err.value)
    kept, dropped = check_contamination(model_dir, rows, paths, exclude=True)
    assert dropped == ["leaked-row"] and kept == test_rows
    assert overlaps(load_training_hashes(model_dir), {"x": leak, "y": paths[0]}) == ["x"]


def test_hash_is_of_the_decoded_audio_and_cached(corpus, tmp_path):
    _, train, model_dir, _ = corpus
    record = json.loads((model_dir / TRAIN_CLIPS_FILE).read_text())
    assert len(record["clips"]) == len({e.audio for e in train.examples}) and "float32 16 kHz" in record["hash"]
    path = train.examples[0].audio
    assert record["clips"][0]["sha256"] == clip_hash(path)
    cache = tmp_path / "cache" / "clip_hashes.json"
    assert cache.is_file() and clip_hash(path) in json.loads(cache.read_text()).values()
    # a cached hash is reused (no decode): a poisoned entry under the same key comes back
    entries = json.loads(cache.read_text())
    key = next(k for k in entries if k.startswith(str(path.resolve()) + "|"))
    cache.write_text(json.dumps({**entries, key: "cached"}))
    assert hash_clips([path]) == ["cached"]


def test_models_without_a_record_are_not_checked(tmp_path):
    rows = [{"id": "a"}]
    assert check_contamination(tmp_path, rows, ["/nonexistent.wav"], exclude=False) == (rows, [])


def test_eval_run_refuses_test_clips_the_model_was_trained_on(tmp_path, capsys):
    """`eval run --model` checks every clip against the run's train_clips.json: a test clip whose
    audio is a training clip (renamed, under another id) stops the run, naming it; with
    --exclude-training-clips it is left out and the rest is evaluated. Fails without the guard."""
    import json

    import numpy as np
    import soundfile as sf

    from emoreason.cli import main
    from emoreason.testing.tiny import save_tiny_run
    from emoreason.train.contamination import record_training_clips

    run = save_tiny_run(tmp_path / "run")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for name in ("trained", "fresh"):
        sf.write(corpus / f"{name}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    (corpus / "leaked.wav").write_bytes((corpus / "trained.wav").read_bytes())  # same audio, new name
    record_training_clips([("train/1", corpus / "trained.wav")], run / "final", cache_file=tmp_path / "h.json")
    rows = [{"id": "test/leaked", "audio": "leaked.wav", "task": "emotion", "label": "sad", "split": "test"},
            {"id": "test/fresh", "audio": "fresh.wav", "task": "emotion", "label": "happy", "split": "test"}]
    manifest = corpus / "test.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["eval", "run", "--model", str(run), "--manifest", str(manifest), "--max-new-tokens", "2", "--bootstrap", "10"]
    assert main(argv + ["--out", str(tmp_path / "refused")]) == 1
    err = capsys.readouterr().err
    assert "test/leaked" in err and "trained on" in err and len(err.strip().splitlines()) == 1
    assert main(argv + ["--out", str(tmp_path / "kept"), "--exclude-training-clips"]) == 0
    preds = [json.loads(line) for line in (tmp_path / "kept" / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == ["test/fresh"]
