"""Run-directory logging: ``metrics.jsonl`` (one row per step and task), ``train.log``, TensorBoard.

Only the main process writes. On resume, rows after the checkpoint's step are dropped, so the file
reads as one uninterrupted run.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from emoreason.errors import UserError
from emoreason.jsonl import ResumableJsonl, cut_torn_tail, iter_jsonl, write_jsonl

log = logging.getLogger("emoreason.train")


class MetricsWriter:
    """Appends metric rows to ``RUN_DIR/metrics.jsonl`` (flushed per step) and optionally TensorBoard."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = False, resume_step: int | None = None) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
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
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("train.tensorboard=true needs the tensorboard package: pip install 'emoreason[tensorboard]'") from None
            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, step: int, epoch: int, phase: str, lr: float, samples_per_s: float, losses: dict[str, float]) -> None:
        """``losses``: task -> token-mean loss of this step, plus ``"all"``."""
        if not self.enabled:
            return
        for task, loss in losses.items():
            row: dict[str, Any] = {
                "step": step, "epoch": epoch, "phase": phase, "task": task, "loss": round(loss, 6),
                "lr": lr, "samples_per_s": round(samples_per_s, 3),
            }
            self._file.append(row)
        if self.tb is not None:
            for task, loss in losses.items():
                self.tb.add_scalar(f"loss/{task}", loss, step)
            self.tb.add_scalar("lr", lr, step)
            self.tb.add_scalar("samples_per_s", samples_per_s, step)

    def write_validation(self, step: int, epoch: int, phase: str, losses: dict[str, float]) -> None:
        """``losses``: task -> validation loss (token mean), plus ``"all"``; one row each with ``val_loss``."""
        if not self.enabled:
            return
        for task, loss in losses.items():
            self._file.append({"step": step, "epoch": epoch, "phase": phase, "task": task, "val_loss": round(loss, 6)})
        if self.tb is not None:
            for task, loss in losses.items():
                self.tb.add_scalar(f"val_loss/{task}", loss, step)

    def close(self) -> None:
        if self.enabled:
            self._file.close()
        if self.tb is not None:
            self.tb.close()


def attach_file_log(run_dir: Path) -> logging.Handler:
    """Send the ``emoreason`` loggers to ``RUN_DIR/train.log`` (appending, so resumes add to it)."""
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("emoreason")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler
