"""Training: schedules as data, one accelerate loop, atomic checkpoints, exact resume.

- ``schedule``: joint / alternating ("Alt x") schedules as lists of phases
- ``sampler``: task-group batches, sharded over processes, resumable mid-epoch
- ``optim``: AdamW over named parameter groups, warmup + decay
- ``loop``: :class:`~emoreason.train.loop.Trainer`
- ``checkpoint``: ``RUN_DIR/checkpoints/step-N`` I/O
- ``metrics``: ``metrics.jsonl``, ``train.log``, TensorBoard
- ``validation``: validation loss per task, the best model
- ``recipe``: :func:`train` (config + run dir -> ``final/``) in steps, used by the CLI, demo, benchmarks
- ``cli``: ``emoreason train``

See docs/training.md.
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # ``from emoreason.train import train`` without importing torch at package import
    if name in ("train", "TrainingRecipe", "TrainResult"):
        from emoreason.train import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'emoreason.train' has no attribute {name!r}")


__all__ = ["train", "TrainingRecipe", "TrainResult"]
