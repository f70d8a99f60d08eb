"""Damaged weights: a model directory missing or holding incomplete weights refuses to load with
one line; a damaged newest training checkpoint falls back to the one before it."""
from __future__ import annotations

import shutil

import pytest
from safetensors.torch import load_file, save_file

from emoreason.cli import main
from emoreason.errors import UserError
from emoreason.model.builder import load_pretrained

from .conftest import TRAIN


@pytest.fixture()
def model_dir(tiny_run, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(tiny_run / "final", target)
    return target


def _drop_half(path):
    state = load_file(str(path))
    keep = dict(list(state.items())[: len(state) // 2])
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(keep, str(path), metadata=meta)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "trainable.safetensors").unlink(), "no trainable.safetensors"),
    (lambda d: save_file({}, str(d / "trainable.safetensors")), "trained weights are missing"),
    (lambda d: _drop_half(d / "trainable.safetensors"), "trained weights are missing"),
    (lambda d: (d / "trainable.safetensors").write_bytes(b"\x00" * 7), "not a readable safetensors file"),
    (lambda d: _drop_half(d / "random_base.safetensors"), "trained weights are missing"),
    (lambda d: (d / "random_base.safetensors").unlink(), "no random_base.safetensors"),
])
def test_incomplete_model_refuses_to_load(model_dir, damage, message):
    damage(model_dir)
    with pytest.raises(UserError, match=message) as err:
        load_pretrained(model_dir)
    assert "\n" not in str(err.value)


def test_analyze_with_empty_weights_is_one_line_exit_1(model_dir, tmp_path, capsys):
    from emoreason.audio import save_audio
    from emoreason.testing.fixtures import tone

    save_audio(tmp_path / "a.wav", tone(0.5))
    save_file({}, str(model_dir / "trainable.safetensors"))
    assert main(["analyze", "--model", str(model_dir), str(tmp_path / "a.wav"), "--max-new-tokens", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained weights are missing" in err[0]


@pytest.mark.parametrize("victim", ["trainable.safetensors", "optimizer.pt", "state.json"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(finished_run, tmp_path, capsys, victim):
    """Damage the newest checkpoint of a finished run and drop its final model: the rerun resumes
    from the older checkpoint (with a warning) and ends with the uninterrupted run's weights."""
    ref, run = finished_run / "ref", tmp_path / "run"
    shutil.copytree(ref, run)
    ckpts = sorted((run / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))
    assert len(ckpts) == 2
    (ckpts[-1] / victim).write_bytes(b"{torn")  # a crash or a full disk mid-write
    shutil.rmtree(run / "final")
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--cache-dir", str(finished_run / "cache"), *TRAIN]) == 0
    err = capsys.readouterr().err
    assert "falling back" in err and victim in err
    a, b = load_file(str(ref / "final" / "trainable.safetensors")), load_file(str(run / "final" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_no_readable_checkpoint_is_one_line(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run / "ref", run)
    for ckpt in (run / "checkpoints").iterdir():
        (ckpt / "trainable.safetensors").write_bytes(b"")
    shutil.rmtree(run / "final")
    assert main(["train", "--out", str(run), "--cache-dir", str(finished_run / "cache"), *TRAIN]) == 1
    assert "no readable checkpoint" in capsys.readouterr().err.strip().splitlines()[-1]
