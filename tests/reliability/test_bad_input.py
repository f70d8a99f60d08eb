"""Bad input fails before any work with one line naming where it is: the literal audio marker in
prompts and manifests, missing or corrupt training clips, unknown labels, duplicate ids."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from emoreason.cli import main
from emoreason.data.manifest import ManifestError, read_manifest
from emoreason.errors import UserError
from emoreason.inference.generation import make_plan

from .conftest import write_manifest

SHORT = ["train.epochs=2", "train.alternation_epochs=1", "train.save_every_steps=100"]


@pytest.mark.parametrize("prompt, question, what", [
    ("Describe <audio> please.", None, "the prompt"),
    ("{question}", "What is <audio_end>?", "the question"),
])
def test_plan_refuses_audio_markers(prompt, question, what):
    task = "sqa" if question else "emotion"
    with pytest.raises(UserError, match=f"{what} contains '<audio") as err:
        make_plan(task, ["angry", "sad"] if task == "emotion" else [], prompt, question, 8, "none")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("field, value", [("instruction", "Listen to <audio> and answer."),
                                          ("target", "The speaker is angry <audio_start>"),
                                          ("meta", {"question": "what is <audio>?"})])
def test_manifest_refuses_audio_markers_with_file_line(tmp_path, field, value):
    path = write_manifest(tmp_path, n=4, r2={field: value})
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:3: field '(meta\.)?" + field.split("_")[0]) as err:
        read_manifest(path)
    assert "reserved for the audio" in str(err.value)


def test_analyze_cli_prompt_with_audio_marker_is_one_line(tiny_run, tmp_path, capsys):
    from emoreason.audio import save_audio
    from emoreason.testing.fixtures import tone

    save_audio(tmp_path / "a.wav", tone(0.5))
    code = main(["analyze", "--model", str(tiny_run), str(tmp_path / "a.wav"), "--prompt", "hear <audio>",
                 "--max-new-tokens", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "'<audio>'" in err[0]


def test_server_prompt_with_audio_marker_is_400(tiny_run):
    from fastapi.testclient import TestClient

    from emoreason.inference.engine import Engine
    from emoreason.inference.server import create_app
    from emoreason.testing.fixtures import tone

    buf = io.BytesIO()
    sf.write(buf, tone(0.5), 16000, format="WAV")
    client = TestClient(create_app(Engine.load(tiny_run, device="cpu"), max_new_tokens=2))
    r = client.post("/analyze", files={"file": ("a.wav", buf.getvalue(), "audio/wav")}, data={"prompt": "hi <audio> there"})
    assert r.status_code == 400 and "reserved for the audio" in r.text
    r = client.post("/analyze", files={"file": ("a.wav", buf.getvalue(), "audio/wav")},
                    data={"task": "sqa", "question": "<audio_end>?"})
    assert r.status_code == 400


def _train(tmp_path, manifest, *extra):
    return main(["train", "--config", "tiny", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                 *SHORT, f"data.train_manifest={manifest}", *extra])


def test_train_refuses_an_audio_marker_before_the_first_step(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "d", r3={"instruction": "What about <audio>?"})
    assert _train(tmp_path, manifest) == 1
    err = capsys.readouterr().err
    assert f"{manifest}:4:" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.unlink(), "file not found"),
    (lambda p: p.write_bytes(b""), "file is empty"),
    (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4), "not a readable audio file"),
])
def test_train_checks_every_clip_up_front_and_can_skip(tmp_path, capsys, damage, reason):
    manifest = write_manifest(tmp_path / "d", n=10)
    damage(tmp_path / "d" / "c7.wav")
    assert _train(tmp_path, manifest) == 1
    err = capsys.readouterr().err
    assert f"{manifest}:8:" in err and reason in err and "skip_bad_audio" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training started
    if reason != "file not found":
        return  # one training run with skipping is enough
    assert _train(tmp_path, manifest, "data.skip_bad_audio=true") == 0
    err = capsys.readouterr().err
    assert "left out" in err and f"{manifest}:8:" in err
    assert (tmp_path / "run" / "final" / "trainable.safetensors").is_file()


def test_clip_damaged_past_its_header_names_the_row(tmp_path):
    from emoreason.data.dataset import ManifestDataset

    manifest = write_manifest(tmp_path, n=4)
    sf.write(tmp_path / "c1.wav", np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")  # a sound header, bad samples
    ds = ManifestDataset(manifest, {"speech": ["asr"], "emotion": ["emotion"]})
    assert ds.check_audio() == []  # only decoding finds it
    with pytest.raises(UserError, match=r"manifest\.jsonl:2:"):
        ds[1]


def test_train_refuses_unknown_labels_and_duplicate_ids(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "a", r1={"label": "bored"})
    assert _train(tmp_path, manifest) == 1
    err = capsys.readouterr().err
    assert f"{manifest}:2:" in err and "'bored'" in err and "model.labels" in err
    manifest = write_manifest(tmp_path / "b", r5={"id": "c2"})
    assert _train(tmp_path, manifest) == 1
    assert f"{manifest}:6: duplicate id 'c2' (first on line 3)" in capsys.readouterr().err
