"""A demo plan that fits the machine (``emoreason demo --time-budget MIN``).

Before the variants train, a few warm-up steps of one variant measure this machine's step time;
from it and the budget left, each variant gets a step budget, and its schedule is shortened to fit:
fewer alternation passes first (speech / emotion blocks), keeping the final all-task pass, so every
variant still trains both sides and all tasks (the comparison the demo exists for). Only if even the
shortest schedule (one pass per side + the final pass) does not fit, ``train.max_steps`` caps it.

Why a share of the remaining budget goes to training: training is ~60 % of a demo's stage time
(docs/demo.md, per-stage table); evaluation and the analysed clip take the rest.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

TRAIN_SHARE = 0.6
"""Part of the remaining budget given to training (the rest: evaluation, analysis, report)."""
WARMUP_STEPS = 4
"""Steps of the measuring run; the first (caches, allocations) is not counted."""


def schedule_steps(config: Path, overrides: list[str]) -> int:
    """Optimizer steps the config's whole schedule takes over its training manifest (the sampler's
    batches per pass, as :class:`emoreason.train.loop.Trainer` counts them)."""
    import math

    from emoreason.config import load_config
    from emoreason.data.dataset import ManifestDataset
    from emoreason.train.recipe import schedule_of
    from emoreason.train.sampler import TaskGroupSampler
    from emoreason.train.schedule import num_passes, phase_at

    cfg = load_config(config, overrides)
    data = ManifestDataset(cfg.data.train_manifest, cfg.data.task_groups, cfg.data.train_split, cfg.data.max_audio_seconds)
    phases = schedule_of(cfg)
    sampler = TaskGroupSampler(data.groups, cfg.train.batch_size)
    steps = 0
    for epoch in range(num_passes(phases)):
        sampler.set_epoch(epoch, phase_at(phases, epoch).group)
        steps += math.ceil(len(sampler) / cfg.train.grad_accum)
    if cfg.train.max_steps > 0:
        steps = min(steps, cfg.train.max_steps)
    return steps


def measure_step_seconds(config: Path, overrides: list[str], run_dir: Path, steps: int = WARMUP_STEPS) -> float:
    """Seconds per optimizer step on this machine: median of a short training run's steps 2..n
    (from its metrics.jsonl, ``samples_per_s``)."""
    from emoreason.config import load_config
    from emoreason.train.recipe import train

    batch = load_config(config, overrides).train.batch_size
    train(config, run_dir, overrides=[*overrides, f"train.max_steps={steps}", "train.save_every_steps=0"], resume=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    per_step = {r["step"]: batch / r["samples_per_s"] for r in rows if r.get("samples_per_s")}
    timed = [s for step, s in sorted(per_step.items()) if step > 1] or list(per_step.values())
    return statistics.median(timed)


def shorter_schedules(config: Path, overrides: list[str]) -> list[list[str]]:
    """Override sets from the config's own schedule down to its shortest, longest first: alternating
    schedules drop alternation passes (final passes kept), joint ones drop passes."""
    from emoreason.config import load_config

    t = load_config(config, overrides).train
    if t.schedule == "joint":
        return [[f"train.epochs={e}"] for e in range(t.epochs, 0, -1)]
    final = t.epochs - t.alternation_epochs
    step = 2 if t.schedule == "alternating" and t.alternation_epochs % 2 == 0 else 1  # keep the sides balanced
    return [[f"train.alternation_epochs={a}", f"train.epochs={a + final}"]
            for a in range(t.alternation_epochs, 0, -step)]


def fit_variant(config: Path, overrides: list[str], max_steps: int) -> dict[str, Any]:
    """The longest schedule of ``shorter_schedules`` within ``max_steps`` steps (capped by
    ``train.max_steps`` when none fits). Returns ``{"overrides", "steps", "planned_steps"}``."""
    options = shorter_schedules(config, overrides)
    planned = schedule_steps(config, overrides)
    for extra in options:
        steps = schedule_steps(config, [*overrides, *extra])
        if steps <= max_steps:
            return {"overrides": [] if steps == planned else extra, "steps": steps, "planned_steps": planned}
    shortest = options[-1]
    capped = max(1, max_steps)
    return {"overrides": [*shortest, f"train.max_steps={capped}"], "steps": capped, "planned_steps": planned}


def plan_budget(budget_min: float, elapsed_s: float, step_s: float, variants: dict[str, tuple[Path, list[str]]]
                ) -> dict[str, Any]:
    """Step budget per variant: ``TRAIN_SHARE`` of the budget left, split evenly over the variants,
    divided by the measured step time; each variant's schedule fitted to it (:func:`fit_variant`)."""
    left = max(0.0, budget_min * 60 - elapsed_s)
    per_variant = left * TRAIN_SHARE / max(1, len(variants))
    max_steps = int(per_variant // step_s)
    fitted = {name: fit_variant(config, overrides, max_steps) for name, (config, overrides) in variants.items()}
    return {"budget_min": budget_min, "elapsed_s": round(elapsed_s, 1), "step_s": round(step_s, 3),
            "train_s_per_variant": round(per_variant, 1), "max_steps_per_variant": max_steps, "variants": fitted}


class BudgetClock:
    """Seconds since the demo command started (what ``--time-budget`` counts against)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
