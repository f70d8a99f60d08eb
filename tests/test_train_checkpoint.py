"""Checkpoint I/O: atomic layout, what counts as complete, pruning, RNG round trip."""
import random

import numpy as np
import torch

from emoreason.train.checkpoint import (
    latest_checkpoint, list_checkpoints, load_checkpoint, remove_partial, rng_state, save_checkpoint, set_rng_state,
)


def _save(run, step, keep=0):
    return save_checkpoint(run, step, {"w": torch.full((2,), float(step))}, {"opt": step}, {"sched": step},
                           {"epoch": 1, "cursor": step}, keep=keep)


def test_save_load_and_only_complete_checkpoints_count(tmp_path):
    path = _save(tmp_path, 3)
    assert path == tmp_path / "checkpoints" / "step-3"
    assert {p.name for p in path.iterdir()} == {"trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng-0.pt", "state.json"}
    ckpt = load_checkpoint(path)
    assert ckpt["state"] == {"step": 3, "epoch": 1, "cursor": 3}
    assert torch.equal(ckpt["weights"]["w"], torch.full((2,), 3.0))
    assert ckpt["optimizer"] == {"opt": 3} and ckpt["rng"] is not None
    # a crash mid-write leaves a temp dir or a step dir without state.json: neither is a checkpoint
    (tmp_path / "checkpoints" / ".tmp-step-9").mkdir()
    (tmp_path / "checkpoints" / "step-8").mkdir()
    assert latest_checkpoint(tmp_path) == path
    assert latest_checkpoint(tmp_path / "nothing") is None
    assert [p.name for p in remove_partial(tmp_path)] == [".tmp-step-9"]
    assert not (tmp_path / "checkpoints" / ".tmp-step-9").exists() and path.is_dir()


def test_keep_prunes_oldest(tmp_path):
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]


def test_rng_round_trip_through_a_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.save(rng_state(), tmp_path / "rng.pt")
    first = (random.random(), float(np.random.rand()), torch.rand(3).tolist())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), float(np.random.rand()), torch.rand(3).tolist()) == first
