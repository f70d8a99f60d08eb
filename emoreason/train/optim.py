"""Optimizer (AdamW over named parameter groups) and the learning-rate schedule (warmup + decay),
per parameter group and scoped to the whole run, to each group's active steps, or to each phase."""
from __future__ import annotations

import math
from typing import Callable, Hashable, Sequence

import torch
from torch import nn

LR_SCOPES = ("run", "group", "phase")
"""What one warmup + decay cycle spans (``train.lr_schedule_scope``, docs/training.md):
``run`` every optimizer step of the run, the same multiplier for every group (one global clock);
``group`` the steps in which that parameter group is trained (its clock stops while it is frozen);
``phase`` each phase separately, for each group the phase trains (a group warms up again at the
start of every phase it is in; its AdamW moments carry over)."""


def build_optimizer(
    groups: dict[str, list[nn.Parameter]],
    keys: list[str],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    group_lr: dict[str, float] | None = None,
    own_lr: dict[str, tuple[list[nn.Parameter], float]] | None = None,
) -> torch.optim.AdamW:
    """One AdamW whose param groups are the model's parameter groups ``keys`` (tagged ``name``),
    each at ``group_lr[key]`` when given, else ``lr``.

    ``own_lr``: key -> (some of that group's parameters, their lr). Those parameters get a param
    group of their own with the same ``name``, so phases freeze / train them with their group and
    the lr schedule applies the same multipliers; only the base lr differs (``train.pooled_head_lr``).

    A parameter whose ``.grad`` is None is skipped by AdamW's step (no update, no moment change,
    no weight decay): that is how frozen groups stay untouched during another group's phase.
    """
    group_lr, own_lr = group_lr or {}, own_lr or {}
    param_groups = []
    for k in keys:
        own, own_rate = own_lr.get(k, ([], 0.0))
        own_ids = {id(p) for p in own}
        rest = [p for p in groups[k] if id(p) not in own_ids]
        param_groups += [{"params": rest, "name": k, "lr": group_lr.get(k, lr)}] if rest else []
        param_groups += [{"params": own, "name": k, "lr": own_rate}] if own else []
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


def _table(values: list[float]) -> Callable[[int], float]:
    """A precomputed multiplier per optimizer step (0 past the end). A closure on purpose: LambdaLR
    would save a callable object's ``__dict__`` (the whole table) in every checkpoint and restore it
    over the one rebuilt from the config (e.g. after a changed ``train.max_steps``)."""
    return lambda step: values[step] if step < len(values) else 0.0


def group_lr_lambdas(
    kind: str,
    warmup_ratio: float,
    scope: str,
    plan: Sequence[tuple[Hashable, frozenset[str], int]],
    names: Sequence[str],
) -> list[Callable[[int], float]]:
    """One lr multiplier function per optimizer param group ``names`` (in the optimizer's order).

    Args:
        kind: ``cosine`` | ``linear`` | ``constant`` (see :func:`lr_lambda`).
        warmup_ratio: warmup steps = ``int(warmup_ratio * n)`` of each cycle of ``n`` steps.
        scope: ``run`` | ``group`` | ``phase`` (:data:`LR_SCOPES`).
        plan: the run's optimizer steps in order, as runs of ``(phase id, active group names, steps)``
            (one per pass; passes of one phase share its id), already cut at ``train.max_steps``.

    A group's multiplier is 0 at steps where it is frozen (the loop zeroes their lr anyway).
    """
    total = sum(n for _, _, n in plan)
    if scope == "run":  # the same function as before per-group scopes existed: old runs reproduce exactly
        fn = lr_lambda(kind, total, int(warmup_ratio * total))
        return [fn] * len(names)
    if scope not in LR_SCOPES:
        raise ValueError(f"unknown lr schedule scope {scope!r} (expected one of {LR_SCOPES})")
    out: list[Callable[[int], float]] = []
    for name in names:
        cycles: dict[Hashable, list[int]] = {}  # cycle -> the global steps it spans, in order
        start = 0
        for phase_id, active, n in plan:
            if name in active:
                cycles.setdefault(phase_id if scope == "phase" else None, []).extend(range(start, start + n))
            start += n
        values = [0.0] * total
        for steps in cycles.values():
            fn = lr_lambda(kind, len(steps), int(warmup_ratio * len(steps)))
            for i, step in enumerate(steps):
                values[step] = fn(i)
        out.append(_table(values))
    return out


def build_lr_scheduler(optimizer: torch.optim.Optimizer, kind: str, warmup_ratio: float, scope: str,
                       plan: Sequence[tuple[Hashable, frozenset[str], int]]) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with one multiplier per param group (:func:`group_lr_lambdas`); its ``state_dict``
    (step count, base lrs) is what checkpoints keep, the multipliers are rebuilt from the config."""
    names = [g.get("name", str(i)) for i, g in enumerate(optimizer.param_groups)]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, group_lr_lambdas(kind, warmup_ratio, scope, plan, names))
