"""Run-directory logging: ``metrics.jsonl`` (one row per step and task), ``train.log``, and the
experiment tracker (``train.report_to``: accelerate's TensorBoard / W&B / MLflow trackers).

Only the main process writes. On resume, rows after the checkpoint's step are dropped, so the file
reads as one uninterrupted run.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from emoreason.jsonl import ResumableJsonl, cut_torn_tail, iter_jsonl, write_jsonl

log = logging.getLogger("emoreason.train")


Tracker = Callable[[dict[str, float], int], None]
"""``log(values, step)``, e.g. ``accelerate.Accelerator.log`` (main process only, every tracker)."""


class MetricsWriter:
    """Appends metric rows to ``RUN_DIR/metrics.jsonl`` (flushed per step) and sends the same values
    to ``tracker`` when given (keys ``loss/<task>``, ``val_loss/<task>``, ``lr``, ``grad_norm``,
    ``samples_per_s``)."""

    def __init__(self, run_dir: Path, enabled: bool = True, tracker: Tracker | None = None, resume_step: int | None = None) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.enabled = enabled
        self.tracker = tracker
        if not enabled:
            return
        if resume_step is not None:
            # keep the rows up to the checkpoint resumed from (a kill may have left later ones, or
            # half a line: cut_torn_tail drops that, iter_jsonl skips any other unreadable line)
            cut_torn_tail(self.path)
            keep = [row for _, row in iter_jsonl(self.path) if isinstance(row.get("step"), int) and row["step"] <= resume_step]
            write_jsonl(self.path, keep)
        else:
            write_jsonl(self.path, [])
        self._file = ResumableJsonl(self.path, key=lambda row: None)  # append only: nothing to look up

    def write(self, step: int, epoch: int, phase: str, lr: float, samples_per_s: float, losses: dict[str, float],
              grad_norm: float | None = None) -> None:
        """``losses``: task -> token-mean loss of this step, plus ``"all"``; ``grad_norm``: the
        trained parameters' global L2 gradient norm before clipping (None: not measured)."""
        if not self.enabled:
            return
        extra = {} if grad_norm is None else {"grad_norm": round(grad_norm, 6)}
        for task, loss in losses.items():
            row: dict[str, Any] = {
                "step": step, "epoch": epoch, "phase": phase, "task": task, "loss": round(loss, 6),
                "lr": lr, **extra, "samples_per_s": round(samples_per_s, 3),
            }
            self._file.append(row)
        if self.tracker is not None:
            values = {f"loss/{task}": loss for task, loss in losses.items()}
            values.update(lr=lr, samples_per_s=samples_per_s, **({} if grad_norm is None else {"grad_norm": grad_norm}))
            self.tracker(values, step)

    def write_validation(self, step: int, epoch: int, phase: str, losses: dict[str, float]) -> None:
        """``losses``: task -> validation loss (token mean), plus ``"all"``; one row each with ``val_loss``."""
        if not self.enabled:
            return
        for task, loss in losses.items():
            self._file.append({"step": step, "epoch": epoch, "phase": phase, "task": task, "val_loss": round(loss, 6)})
        if self.tracker is not None:
            self.tracker({f"val_loss/{task}": loss for task, loss in losses.items()}, step)

    def close(self) -> None:
        if self.enabled:
            self._file.close()


def attach_file_log(run_dir: Path) -> logging.Handler:
    """Send the ``emoreason`` loggers to ``RUN_DIR/train.log`` (appending, so resumes add to it)."""
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("emoreason")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler
