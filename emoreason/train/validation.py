"""Validation during training: the token-mean loss per task on a held-out manifest, and the
best-so-far model it selects (``RUN_DIR/best/``, copied to ``final/`` with ``train.final_from_best``).

Every process evaluates the whole validation set in the same order (no sharding, no collective), so
the numbers are identical on all ranks and need no reduction; validation sets are small next to
training sets. The RNG state is forked around it, so validating does not change the training run.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from emoreason.train.losses import first_target_position, token_losses

BEST_DIR = "best"
BEST_FILE = "best.json"
_NOT_MODEL_INPUTS = ("labels", "tasks", "ids", "loss_weights")


@torch.no_grad()
def validation_losses(model: torch.nn.Module, batches: Iterable[dict[str, Any]], device: torch.device,
                      autocast: Callable[[], Any], max_batches: int = 0) -> dict[str, float]:
    """Token-mean loss per task over ``batches`` (+ ``"all"``: the mean over every target token).

    ``batches``: collated dicts with ``labels (B, L)`` and ``tasks`` (list of B names);
    ``max_batches`` > 0 stops after that many. The model is put in eval mode and restored.
    """
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    try:
        with torch.random.fork_rng(devices=[]):
            for i, batch in enumerate(batches):
                if max_batches and i >= max_batches:
                    break
                inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items() if k not in _NOT_MODEL_INPUTS}
                labels = batch["labels"].to(device)
                start = first_target_position(labels)
                with autocast():
                    logits = model(**inputs, logits_to_keep=labels.shape[1] - start).logits
                row_sums, row_counts = token_losses(logits, labels[:, start:])
                for task, s, c in zip(batch["tasks"], row_sums.tolist(), row_counts.tolist()):
                    sums[task] = sums.get(task, 0.0) + s
                    counts[task] = counts.get(task, 0) + int(c)
    finally:
        model.train(was_training)
    out = {t: sums[t] / counts[t] for t in sorted(sums) if counts[t] > 0}
    total = sum(counts.values())
    if total:
        out["all"] = sum(sums.values()) / total
    return out


def best_loss(run_dir: Path) -> float | None:
    """Validation loss of the model in ``RUN_DIR/best`` (None: no best model yet)."""
    path = run_dir / BEST_DIR / BEST_FILE
    if not path.is_file():
        return None
    try:
        return float(json.loads(path.read_text())["val_loss"])
    except (ValueError, KeyError, TypeError):
        return None  # a foreign or damaged marker: the next validation replaces the model


def best_marker(step: int, loss: float) -> str:
    """Contents of ``best/best.json``."""
    return json.dumps({"step": step, "val_loss": loss}) + "\n"
