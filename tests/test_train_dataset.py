"""Generated dummy corpora, the manifest dataset (split / task-group filtering, errors naming the
line) and the collator."""
import json

import numpy as np
import pytest
from train_fakes import FakeProcessor

from emoreason.audio import load_audio
from emoreason.data.dataset import Collator, ManifestDataset, task_to_group
from emoreason.data.manifest import ManifestError, read_manifest
from emoreason.errors import UserError
from emoreason.data.dummy import make_dummy_corpus, parse_dummy_spec, resolve_manifest

GROUPS = {"speech": ["asr", "sqa"], "emotion": ["emotion", "sentiment"]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_dummy_corpus(20, tmp_path_factory.mktemp("dummy"))


def test_dummy_corpus_is_a_valid_deterministic_manifest(corpus, tmp_path):
    rows = read_manifest(corpus)
    assert len(rows) == 20
    assert {r.task for r in rows} == {"asr", "sqa", "emotion", "sentiment"}
    assert [sum(r.split == s for r in rows) for s in ("train", "dev", "test")] == [16, 2, 2]
    assert len({r.speaker for r in rows}) == 4
    assert all(r.target and r.transcript for r in rows)
    wave = load_audio(corpus.parent / rows[0].audio)
    assert wave.dtype == np.float32 and wave.size / 16000 == pytest.approx(rows[0].duration, abs=1e-3)
    again = make_dummy_corpus(20, tmp_path)  # same (N, seed) elsewhere: same rows and samples
    assert again.read_text() == corpus.read_text()
    assert np.array_equal(load_audio(again.parent / rows[0].audio), wave)
    assert make_dummy_corpus(20, corpus.parent.parent) == corpus  # cached: reused, not rebuilt


def test_dummy_acoustics_carry_the_label(corpus):
    """Angry clips are louder than sad ones (the label is audible, not just written down)."""
    rows = [r for r in read_manifest(corpus) if r.task == "emotion"]
    rms = {r.label: float(np.sqrt(np.mean(load_audio(corpus.parent / r.audio) ** 2))) for r in rows}
    assert rms["angry"] > rms["happy"] > rms["sad"]


def test_dummy_spec_parsing(tmp_path):
    assert parse_dummy_spec("dummy:7") == 7 and parse_dummy_spec("data/m.jsonl") is None
    with pytest.raises(UserError, match="dummy:N"):
        parse_dummy_spec("dummy:x")
    assert resolve_manifest("dummy:3", tmp_path).is_file()


def test_dataset_filters_split_and_maps_groups(corpus):
    ds = ManifestDataset(corpus, GROUPS, split="train")
    assert len(ds) == 16 and ds.tasks == ["asr", "emotion", "sentiment", "sqa"]
    item = ds[0]
    assert set(item) == {"id", "wave", "prompt", "target", "task", "group", "label", "transcript"}
    assert item["label"] is None or item["task"] in ("emotion", "sentiment")
    assert item["group"] == task_to_group(GROUPS)[item["task"]]
    # the transcript rides along for the tasks that may take it in context (emotion, sentiment) only
    assert all((ds[i]["transcript"] is not None) == (ds[i]["task"] in ("emotion", "sentiment")) for i in range(len(ds)))
    assert ds.groups.count("speech") == ds.groups.count("emotion") == 8
    assert len(ManifestDataset(corpus, GROUPS, split=None)) == 20
    short = ManifestDataset(corpus, GROUPS, max_audio_seconds=0.1)
    assert short[0]["wave"].size == 1600


def test_task_outside_every_group_names_the_line(corpus, tmp_path):
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: task 'asr' is in no group"):
        ManifestDataset(corpus, {"speech": ["sqa"], "emotion": ["emotion", "sentiment"]})
    with pytest.raises(UserError, match="in both"):
        task_to_group({"speech": ["asr"], "emotion": ["asr"]})


def test_bad_rows_and_missing_manifest(tmp_path):
    bad = tmp_path / "m.jsonl"
    bad.write_text(json.dumps({"id": "a", "audio": "a.wav", "task": "asr", "transcript": "hi"}) + "\n{oops\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:2: not valid JSON"):
        ManifestDataset(bad, GROUPS, split=None)
    with pytest.raises(ManifestError, match="manifest not found"):
        ManifestDataset(tmp_path / "nope.jsonl", GROUPS)
    with pytest.raises(UserError, match="no rows with split 'train'"):
        ManifestDataset(_one_row(tmp_path), GROUPS, split="train")


def _one_row(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "a", "audio": "a.wav", "task": "asr", "transcript": "hi", "split": "test"}) + "\n")
    return path


def test_collator_calls_processor_and_keeps_tasks(corpus):
    ds = ManifestDataset(corpus, GROUPS)
    batch = Collator(FakeProcessor())([ds[0], ds[1], ds[2]])
    assert batch["input_ids"].shape[0] == 3 and batch["labels"].shape == batch["input_ids"].shape
    assert batch["tasks"] == [ds.examples[i].task for i in range(3)]
    assert batch["ids"] == [ds.examples[i].id for i in range(3)]


def test_rows_whose_teacher_target_failed_its_checks_are_left_out(corpus, tmp_path):
    rows = [json.loads(l) for l in corpus.read_text().splitlines()]
    for r in rows:
        r["audio"] = str(corpus.parent / r["audio"])
    train = [r for r in rows if r["split"] == "train"]
    train[0]["meta"] = {"teacher_check": {"ok": False, "problems": ["label contradicts gold"]}}
    train[1]["meta"] = {"teacher_check": {"ok": True, "problems": []}}
    flagged = tmp_path / "flagged.jsonl"
    flagged.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = ManifestDataset(flagged, GROUPS)
    assert len(ds) == 15 and ds.skipped_flagged == 1
    assert train[0]["id"] not in {e.id for e in ds.examples} and train[1]["id"] in {e.id for e in ds.examples}
    kept = ManifestDataset(flagged, GROUPS, skip_flagged_targets=False)
    assert len(kept) == 16 and kept.skipped_flagged == 0
    only = tmp_path / "only.jsonl"
    only.write_text(json.dumps(train[0]) + "\n")
    with pytest.raises(UserError, match="1 left out because their teacher target failed"):
        ManifestDataset(only, GROUPS)
