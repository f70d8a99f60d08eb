"""Optimizer (AdamW over named parameter groups) and the learning-rate schedule (warmup + decay)."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def build_optimizer(
    groups: dict[str, list[nn.Parameter]],
    keys: list[str],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    group_lr: dict[str, float] | None = None,
) -> torch.optim.AdamW:
    """One AdamW whose param groups are the model's parameter groups ``keys`` (tagged ``name``),
    each at ``group_lr[key]`` when given, else ``lr``.

    A parameter whose ``.grad`` is None is skipped by AdamW's step (no update, no moment change,
    no weight decay): that is how frozen groups stay untouched during another group's phase.
    """
    group_lr = group_lr or {}
    param_groups = [{"params": groups[k], "name": k, "lr": group_lr.get(k, lr)} for k in keys if groups[k]]
    if not param_groups:
        raise ValueError("no trainable parameters: every group of the schedule is empty")
    return torch.optim.AdamW(param_groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def lr_lambda(kind: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the base lr at optimizer step ``s`` (0-based): linear warmup to 1, then
    ``cosine`` / ``linear`` decay to 0 at ``total_steps``, or ``constant``."""
    total_steps = max(total_steps, 1)

    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if kind == "linear":
            return 1.0 - progress
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        raise ValueError(f"unknown lr schedule {kind!r}")

    return fn
