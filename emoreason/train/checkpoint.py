"""Resumable checkpoints: ``RUN_DIR/checkpoints/step-N/``, written atomically.

Layout of one checkpoint::

    trainable.safetensors   parameters of every group some phase trains (not the frozen base LLM)
    optimizer.pt            optimizer.state_dict() (optimizer-{rank}.pt per process when sharded)
    scheduler.pt            lr scheduler state_dict()
    rng-{rank}.pt           python / numpy / torch (/ cuda) RNG states of each process
    state.json              step, epoch, sampler position, world size; written last

Everything is written into ``.tmp-step-N`` and renamed to ``step-N`` once complete, so a crash
mid-write never leaves a checkpoint that looks valid. Only ``step-*`` directories with a
``state.json`` count as checkpoints.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from emoreason.errors import UserError

STATE_FILE = "state.json"
WEIGHTS_FILE = "trainable.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def rng_state() -> dict[str, Any]:
    """All RNG states of this process, as tensors and plain Python (loadable with weights_only)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first: [(step, path)]."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and (child / STATE_FILE).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def remove_partial(run_dir: str | Path) -> list[Path]:
    """Delete half-written checkpoints (``checkpoints/.tmp-step-*``) left by a crash; return them."""
    root = Path(run_dir) / "checkpoints"
    stale = sorted(root.glob(".tmp-step-*")) if root.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    scheduler_state: dict[str, Any],
    state: dict[str, Any],
    rank: int = 0,
    barrier: Callable[[], None] = lambda: None,
    keep: int = 0,
    optimizer_per_rank: bool = False,
) -> Path:
    """Write checkpoint ``step-{step}`` atomically; every process calls this (collective).

    The main process (rank 0) writes weights, optimizer, scheduler and ``state.json``; every rank
    writes its RNG state (and, with ``optimizer_per_rank``, its shard of the optimizer state as
    ``optimizer-{rank}.pt``: FSDP / DeepSpeed). ``keep > 0`` deletes all but the newest ``keep`` checkpoints afterwards.
    """
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    if rank == 0:
        if tmp.exists():  # left over by a crash
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier()
    torch.save(rng_state(), tmp / f"rng-{rank}.pt")
    if optimizer_per_rank:
        torch.save(optimizer_state, tmp / f"optimizer-{rank}.pt")
    if rank == 0:
        save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in weights.items()}, str(tmp / WEIGHTS_FILE))
        if not optimizer_per_rank:
            torch.save(optimizer_state, tmp / "optimizer.pt")
        torch.save(scheduler_state, tmp / "scheduler.pt")
    barrier()
    if rank == 0:
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, **state}, indent=1))
        if final.exists():  # a re-run of the same step (resumed, then saved again): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        if keep > 0:
            for _, old in list_checkpoints(run_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


class CheckpointDamaged(UserError):
    """A checkpoint's files cannot be read (torn, truncated, emptied); an older one may still do."""


def load_checkpoint(path: str | Path, rank: int = 0) -> dict[str, Any]:
    """Read a checkpoint: ``{"state", "weights", "optimizer", "scheduler", "rng"}`` (tensors on CPU).

    ``rng`` is this rank's state, or None when the checkpoint was written by fewer processes;
    ``optimizer`` is None when it was saved per rank and this rank has no file. A file that cannot
    be read raises :class:`CheckpointDamaged` naming it (one line).
    """
    path = Path(path)
    rng_file = path / f"rng-{rank}.pt"
    opt_file = path / "optimizer.pt"
    if not opt_file.is_file():
        opt_file = path / f"optimizer-{rank}.pt"

    def read(file: Path, how: Callable[[Path], Any]) -> Any:
        try:
            return how(file)
        except Exception as e:  # json / safetensors / torch.load errors: all mean a damaged file here
            reason = str(e).splitlines()[0][:120] if str(e) else e.__class__.__name__
            raise CheckpointDamaged(f"{file}: cannot be read ({reason})") from None

    def torch_load(file: Path) -> Any:
        return torch.load(file, map_location="cpu", weights_only=True)

    return {
        "state": read(path / STATE_FILE, lambda f: json.loads(f.read_text())),
        "weights": read(path / WEIGHTS_FILE, lambda f: load_file(str(f))),
        "optimizer": read(opt_file, torch_load) if opt_file.is_file() else None,
        "scheduler": read(path / "scheduler.pt", torch_load),
        "rng": read(rng_file, torch_load) if rng_file.is_file() else None,
    }


def _replace_dir(tmp: Path, target: Path) -> None:
    """Swap a finished directory into place (the old one, if any, is removed first)."""
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def save_model_dir(save_model: Callable[[Path], None], processor: Any, target: Path,
                   extra_files: dict[str, str] | None = None) -> None:
    """``save_model(directory)`` + ``processor.save_pretrained`` (+ small text files) into ``target``,
    built beside it in ``.tmp-<name>`` and renamed, so a crash never leaves half a model there."""
    tmp = target.with_name(f".tmp-{target.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(tmp)
    if processor is not None:
        processor.save_pretrained(tmp)
    for name, text in (extra_files or {}).items():
        (tmp / name).write_text(text)
    _replace_dir(tmp, target)


def copy_dir_atomic(source: Path, target: Path) -> None:
    """Copy a model directory to ``target`` (e.g. ``best/`` -> ``final/``) the same atomic way."""
    tmp = target.with_name(f".tmp-{target.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(source, tmp)
    _replace_dir(tmp, target)
