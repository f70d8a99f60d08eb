"""The training recipe called from Python (``emoreason.train.train``), with validation: val_loss
rows per task in metrics.jsonl, the best model kept in best/, and final/ taken from it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from emoreason.config import load_config
from emoreason.configs import config_path
from emoreason.errors import UserError
from emoreason.train import train

TINY = config_path("tiny")
BASE = ["data.train_manifest=dummy:20", "train.schedule=joint", "train.epochs=1", "train.max_steps=4",
        "train.save_every_steps=0"]


def test_train_from_python_validates_and_keeps_the_best(tmp_path):
    out = tmp_path / "run"
    overrides = BASE + ["data.eval_manifest=dummy:20", "data.eval_split=dev", "train.eval_every_steps=2",
                        "train.final_from_best=true"]
    result = train(load_config(TINY, overrides), out, cache_dir=tmp_path / "cache")
    assert result.final == out / "final" and result.steps == 4
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val_loss" in r]
    assert sorted({r["step"] for r in val}) == [2, 4]  # every 2 steps (the last step included)
    assert {r["task"] for r in val} >= {"all"} and all(r["val_loss"] > 0 for r in val)
    overall = {r["step"]: r["val_loss"] for r in val if r["task"] == "all"}
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["step"] == min(overall, key=overall.get)
    assert best["val_loss"] == pytest.approx(overall[best["step"]], abs=1e-6)
    assert (out / "final" / "trainable.safetensors").read_bytes() == (out / "best" / "trainable.safetensors").read_bytes()
    # training rows still have their own shape
    assert set(next(r for r in rows if "loss" in r)) == {"step", "epoch", "phase", "task", "loss", "lr", "grad_norm", "samples_per_s"}
    # the contamination record: every training clip's hash, in the run and in each model directory it wrote
    record = json.loads((out / "train_clips.json").read_text())
    assert len(record["clips"]) == 16  # dummy:20 -> 16 train clips
    assert (out / "final" / "train_clips.json").read_bytes() == (out / "best" / "train_clips.json").read_bytes() \
        == (out / "train_clips.json").read_bytes()


def test_validation_does_not_change_the_training_run(tmp_path):
    plain = train(TINY, tmp_path / "a", overrides=BASE, cache_dir=tmp_path / "cache")
    validated = train(TINY, tmp_path / "b", overrides=BASE + ["data.eval_manifest=dummy:20", "train.eval_every_steps=1"],
                      cache_dir=tmp_path / "cache")

    def losses(run: Path) -> list[float]:
        return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]

    assert losses(plain.final.parent) == losses(validated.final.parent)


def test_final_from_best_needs_validation_data(tmp_path):
    with pytest.raises(UserError, match="final_from_best.* needs data.eval_manifest"):
        train(TINY, tmp_path / "r", overrides=BASE + ["train.final_from_best=true"])


def test_empty_validation_split_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no rows with split 'nope'"):
        train(TINY, tmp_path / "r", overrides=BASE + ["data.eval_manifest=dummy:20", "data.eval_split=nope"],
              cache_dir=tmp_path / "cache")
