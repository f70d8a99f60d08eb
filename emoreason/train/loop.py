"""The one training loop: phases from the schedule, accelerate for devices / processes / precision,
token-weighted loss, gradient accumulation and clipping, checkpoints and exact resume.

    trainer = Trainer(model, dataset, collate_fn, phases, cfg.train, run_dir, processor=processor)
    trainer.fit()

The loss of an optimizer step is the mean over *all* target tokens of its global batch (all
micro batches of all processes), so 2 processes x micro batch b/2 compute the same gradient as
1 process x b, and gradient accumulation equals a larger batch.

Over 400 lines on purpose: the Trainer is the one loop, and its checkpoint / resume / validation
hooks read best next to the step they interrupt. Losses, validation, checkpoint files, the sampler
and the metrics writer live in their own modules.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from emoreason.config import TrainConfig
from emoreason.errors import UserError
from emoreason.hardware import auto_mixed_precision
from emoreason.train.losses import IGNORE_INDEX, first_target_position, token_losses, weighted_token_losses  # noqa: F401 (token_losses: re-exported)
from emoreason.train.checkpoint import (CheckpointDamaged, copy_dir_atomic, latest_checkpoint, list_checkpoints,
                                        load_checkpoint, remove_partial, save_checkpoint, save_model_dir, set_rng_state)
from emoreason.train.metrics import MetricsWriter, attach_file_log
from emoreason.train.optim import build_lr_scheduler, build_optimizer
from emoreason.train.sampler import TaskGroupSampler
from emoreason.train.losses import example_token_losses
from emoreason.train.validation import BEST_DIR, BEST_FILE, best_loss, best_marker, validation_losses
from emoreason.train.schedule import Phase, num_passes, phase_at, trainable_keys

if TYPE_CHECKING:
    from emoreason.model.frame_cache import FrameCache

log = logging.getLogger("emoreason.train")
_NOT_MODEL_INPUTS = ("labels", "tasks", "ids", "loss_weights", "emotion_label_ids")


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` on a GPU that supports it or a CPU with native bf16, else ``no`` (fp32)
    (:func:`emoreason.hardware.auto_mixed_precision`); others pass through."""
    if precision != "auto":
        return precision
    return auto_mixed_precision()


class PackedCollate:
    """``collate_fn`` followed by :func:`emoreason.model.packing.pack_batch` (``train.packing``):
    picklable, so DataLoader workers can run it."""

    def __init__(self, collate_fn: Callable[[list[dict]], dict[str, Any]]) -> None:
        self.collate_fn = collate_fn

    def __call__(self, examples: list[dict]) -> dict[str, Any]:
        from emoreason.model.packing import pack_batch

        return pack_batch(self.collate_fn(examples))


class SplitCollate:
    """``train.length_split``: the micro batch's examples (longest first, as the sampler yields them
    with ``row_lengths``) cut into ``parts`` contiguous sub-batches, each collated (and packed with
    ``pack``) on its own; returns the list. Rows of similar length meet, so each sub-batch pads to
    its own longest row instead of the batch's. Picklable, for DataLoader workers."""

    def __init__(self, collate_fn: Callable[[list[dict]], dict[str, Any]], parts: int, pack: bool) -> None:
        self.collate_fn = PackedCollate(collate_fn) if pack else collate_fn
        self.parts = parts

    def __call__(self, examples: list[dict]) -> list[dict[str, Any]]:
        size = math.ceil(len(examples) / self.parts)
        return [self.collate_fn(examples[k : k + size]) for k in range(0, len(examples), size)]


def set_phase(groups: dict[str, list[nn.Parameter]], active: set[str]) -> None:
    """``requires_grad`` True exactly for the parameters of the ``active`` groups."""
    for key, params in groups.items():
        for p in params:
            p.requires_grad_(key in active)
            p.grad = None


def _pooled_head_lr(model: nn.Module, lr: float | None, keys: list[str]
                    ) -> dict[str, tuple[list[nn.Parameter], float]] | None:
    """``train.pooled_head_lr`` as ``build_optimizer``'s ``own_lr``: the label-anchored head's
    parameters (inside the group of the adapter that holds them: ``emotion_adapter``, or
    ``speech_adapter`` with ``model.single_encoder_pooled``) at their own lr; None when the option is
    unset, the model has no such head or the schedule never trains that adapter."""
    from emoreason.train.head_init import pooled_adapter

    found = pooled_adapter(model) if lr is not None else None
    if found is None or f"{found[0]}_adapter" not in keys:
        return None
    source, head = found
    return {f"{source}_adapter": (list(head.parameters()), float(lr))}


def _as_list(batch: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A loader item as its list of sub-batches (one unless :class:`SplitCollate` made it)."""
    return batch if isinstance(batch, list) else [batch]


def _target_weight(batch: dict[str, Any]) -> float:
    """Total loss weight of a micro batch's targets: its target token count, or the sum of its
    ``loss_weights`` over target positions (the collator's ``label_weight``)."""
    mask = batch["labels"][:, 1:] != IGNORE_INDEX
    weights = batch.get("loss_weights")
    return float(mask.sum()) if weights is None else float(weights[:, 1:][mask].sum())


@dataclass
class StepResult:
    """What one optimizer step did (returned by :meth:`Trainer.fit`, logged to metrics.jsonl)."""

    step: int
    epoch: int
    phase: str
    loss: float
    task_losses: dict[str, float]
    lr: float
    samples_per_s: float
    grad_norm: float | None = None
    """Global L2 norm of the trained parameters' gradients before clipping (None where the backend
    clips itself, e.g. DeepSpeed)."""


def attach_frame_cache(model: nn.Module, directory: str | Path | None, max_memory_mb: float) -> FrameCache | None:
    """Serve ``model``'s frozen encoders from a new :class:`~emoreason.model.frame_cache.FrameCache`
    (``train.feature_cache``: ``directory`` None keeps it in memory only). None when the model has
    no frozen encoder to serve, or no ``use_frame_cache`` (not an ``AudioLLM``)."""
    if not hasattr(model, "use_frame_cache"):
        return None
    from emoreason.model.frame_cache import FrameCache

    cache = FrameCache(directory, max_memory_mb)
    return cache if model.use_frame_cache(cache) else None


class Trainer:
    """Runs the schedule's phases over a dataset with one model (see module docstring).

    Args:
        model: an ``AudioLLM`` (or anything with ``parameter_groups()`` and ``forward(**batch).logits``;
            :meth:`save_final` saves it); the trainer sets ``requires_grad`` on every parameter.
        dataset: map-style, with ``groups`` (task group per index) and ``tasks`` (sorted names).
        collate_fn: examples -> batch dict with ``labels (B, L)`` and ``tasks`` (see ``Collator``).
        phases: from :func:`emoreason.train.schedule.build_schedule`.
        train: optimisation settings (lr, batch, accumulation, precision, checkpoint cadence ...).
        run_dir: where checkpoints, metrics.jsonl, train.log and final/ go.
        processor: saved next to the model in ``final/`` when given.
        accelerator: an ``accelerate.Accelerator``; built from ``train`` when None.
        num_workers: DataLoader worker processes.
        save_model: ``save_model(model, directory)`` writes a model directory (``final/``, ``best/``),
            e.g. the builder's ``save_pretrained`` with the run's model config; None: ``model.save_pretrained``.
        eval_dataset: validation rows (same item format as ``dataset``); their loss per task is
            logged every ``train.eval_every_steps`` steps (0: at each pass end) and selects the
            best model (``RUN_DIR/best``; ``final/`` with ``train.final_from_best``).
        lengths: token length of every example: with ``train.group_by_length`` the sampler draws
            length-grouped batches, with ``train.length_split`` > 1 each batch runs as sub-batches
            of similar rows (:class:`SplitCollate`); None: neither (plain shuffled batches, run whole).
        frame_cache: a frame cache already serving the model's frozen encoders
            (:func:`attach_frame_cache`; the recipe attaches it before the probe fit of
            ``train.pooled_head_init`` so that the fit's clips are not encoded again); None: the
            trainer attaches one itself when ``train.feature_cache`` is on.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Any,
        collate_fn: Callable[[list[dict]], dict[str, Any]],
        phases: list[Phase],
        train: TrainConfig,
        run_dir: str | Path,
        processor: Any = None,
        accelerator: Any = None,
        num_workers: int = 0,
        save_model: Callable[[nn.Module, Path], None] | None = None,
        eval_dataset: Any = None,
        lengths: list[int] | None = None,
        frame_cache: FrameCache | None = None,
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        if train.length_split > 1 and lengths is None:
            raise ValueError("train.length_split > 1 needs the rows' lengths")
        self.train = train
        self.phases = phases
        self.num_epochs = num_passes(phases)
        self.run_dir = Path(run_dir)
        self.processor = processor
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.num_workers = num_workers
        self.eval_dataset = eval_dataset
        self.save_model = save_model or (lambda model, directory: model.save_pretrained(directory))
        if train.final_from_best and eval_dataset is None:
            raise UserError("train.final_from_best needs validation data (data.eval_manifest)")
        self.tasks: list[str] = list(dataset.tasks)
        present = set(dataset.groups)
        for phase in phases:
            if phase.group is not None and phase.group not in present:
                raise UserError(
                    f"the {phase.name} phase trains on {phase.group} tasks, but the data has none (tasks: "
                    f"{', '.join(self.tasks)}); add such rows, change data.task_groups, or use train.schedule=joint"
                )
        if accelerator is None:
            # Phases freeze different groups: DDP must tolerate parameters without a gradient.
            ddp = DistributedDataParallelKwargs(find_unused_parameters=len({p.param_groups for p in phases}) > 1)
            # accelerate only picks gloo multi-CPU when told cpu=True; a torchrun/`accelerate launch
            # --multi_gpu` start on a machine without GPUs should still run distributed.
            cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
            accelerator = Accelerator(mixed_precision=resolve_precision(train.precision), kwargs_handlers=[ddp], cpu=cpu,
                                      log_with=None if train.report_to == "none" else train.report_to,
                                      project_dir=str(self.run_dir))
        self.acc = accelerator
        set_seed(train.seed)

        self.groups = {k: list(v) for k, v in model.parameter_groups().items()}
        self.keys = trainable_keys(phases, set(self.groups))
        for p in model.parameters():  # the trainer owns requires_grad: base weights stay frozen
            p.requires_grad_(False)
        set_phase({k: self.groups[k] for k in self.keys}, set(self.keys))  # all trainable while wrapping (DDP)
        names = {id(p): n for n, p in model.named_parameters()}
        self.param_names = {k: [names[id(p)] for p in self.groups[k]] for k in self.keys}
        if train.gradient_checkpointing:
            if not hasattr(model, "gradient_checkpointing_enable"):
                raise UserError("train.gradient_checkpointing: this model has no gradient_checkpointing_enable()")
            model.gradient_checkpointing_enable()  # LLM + trainable encoders, non-reentrant

        if frame_cache is None and train.feature_cache:
            frame_cache = attach_frame_cache(model, train.feature_cache_dir, train.feature_cache_memory_mb)
        self.frame_cache = frame_cache
        self.cached_encoders: list[str] = list(model.cached_encoders) if frame_cache is not None else []

        self._check_backend(phases)
        optimizer = build_optimizer(self.groups, self.keys, train.lr, train.betas, train.weight_decay, train.group_lr,
                                    own_lr=_pooled_head_lr(model, train.pooled_head_lr, self.keys))
        self.model, self.optimizer = self.acc.prepare(model, optimizer)
        # FSDP swaps parameters for views into its flat buffers: take the groups again.
        self.groups = {k: list(v) for k, v in self.acc.unwrap_model(self.model).parameter_groups().items()}
        self.sampler = TaskGroupSampler(
            dataset.groups, train.batch_size, self.acc.num_processes, self.acc.process_index, train.seed,
            lengths if train.group_by_length else None, group_window=train.length_group_batches,
            row_lengths=lengths if train.length_split > 1 else None,
        )
        plan = self._step_plan()
        self.total_steps = sum(n for _, _, n in plan)
        # Not prepared by accelerate: its scheduler wrapper steps once per process.
        self.scheduler = build_lr_scheduler(optimizer, train.lr_schedule, train.warmup_ratio, train.lr_schedule_scope, plan)
        self.loader_generator = torch.Generator()  # keeps DataLoader iterators off the global RNG

    # ------------------------------------------------------------------------------------------
    def _step_plan(self) -> list[tuple[int, frozenset[str], int]]:
        """Optimizer steps of the schedule (capped by ``max_steps``) as one ``(phase index, trained
        groups, steps)`` per pass: what the per-group lr schedule (``optim.group_lr_lambdas``) needs."""
        plan, left = [], self.train.max_steps if self.train.max_steps > 0 else math.inf
        for epoch in range(self.num_epochs):
            phase = phase_at(self.phases, epoch)
            self.sampler.set_epoch(epoch, phase.group)
            steps = min(math.ceil(len(self.sampler) / self.train.grad_accum), left)
            plan.append((self.phases.index(phase), frozenset(phase.param_groups) & set(self.keys), int(steps)))
            left -= steps
        self.sampler.set_epoch(0, None)
        return plan

    def _loader(self) -> torch.utils.data.DataLoader:
        if self.train.length_split > 1:
            collate: Callable[[list[dict]], Any] = SplitCollate(self.collate_fn, self.train.length_split, self.train.packing)
        else:
            collate = PackedCollate(self.collate_fn) if self.train.packing else self.collate_fn
        return torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self.sampler, collate_fn=collate, num_workers=self.num_workers,
            generator=self.loader_generator,
        )

    def _check_backend(self, phases: list[Phase]) -> None:
        """Refuse combinations the sharded backends cannot run faithfully (see emoreason/configs/accelerate/)."""
        from accelerate.utils import DistributedType

        if self.acc.distributed_type == DistributedType.DEEPSPEED:
            if len({p.param_groups for p in phases}) > 1:
                raise UserError("DeepSpeed steps frozen parameters with zero gradients: use train.schedule=joint, or DDP/FSDP for alternating")
            if self.train.grad_accum > 1:
                raise UserError("with DeepSpeed set train.grad_accum=1 (DeepSpeed's gradient_accumulation_steps accumulates)")
            # We shard batches ourselves (no prepared DataLoader), so tell DeepSpeed the micro batch.
            self.acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = self.train.batch_size

    @property
    def _fsdp(self) -> bool:
        from accelerate.utils import DistributedType

        return self.acc.distributed_type == DistributedType.FSDP

    @property
    def _sharded_optimizer(self) -> bool:
        """Whether each process holds only part of the optimizer state (then every rank saves its own)."""
        from accelerate.utils import DistributedType

        return self.acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Name -> tensor of every parameter some phase trains (under FSDP: gathered, complete on
        rank 0 only; a collective call)."""
        names = [n for k in self.keys for n in self.param_names[k]]
        if self._fsdp:
            full = self.acc.get_state_dict(self.model)
            return {n: full[n] for n in names if n in full}
        params = dict(self.acc.unwrap_model(self.model).named_parameters())
        return {n: params[n] for n in names}

    def _load_trainable(self, weights: dict[str, torch.Tensor]) -> None:
        if self._fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel, StateDictType

            with FullyShardedDataParallel.state_dict_type(self.model, StateDictType.FULL_STATE_DICT):
                self.model.load_state_dict(weights, strict=False)
            return
        params = dict(self.acc.unwrap_model(self.model).named_parameters())
        with torch.no_grad():
            for name, tensor in weights.items():
                params[name].copy_(tensor)

    # ------------------------------------------------------------------------------------------
    def _save(self, step: int, epoch: int, cursor: int) -> None:
        if epoch != self.sampler.epoch:  # a pass just ended: the next one starts at its first batch
            self.sampler.set_epoch(epoch, phase_at(self.phases, epoch).group if epoch < self.num_epochs else None)
        self.sampler.start = cursor  # the running loader iterator has already read its start
        save_checkpoint(
            self.run_dir, step, self.trainable_state(), self.optimizer.state_dict(), self.scheduler.state_dict(),
            {"sampler": self.sampler.state_dict(), "world_size": self.acc.num_processes},
            rank=self.acc.process_index, barrier=self.acc.wait_for_everyone, keep=self.train.keep_checkpoints,
            optimizer_per_rank=self._sharded_optimizer,
        )
        if self.acc.is_main_process:
            log.info("checkpoint step-%d (epoch %d, batch %d)", step, epoch, cursor)

    def _restore_newest_readable(self) -> tuple[Path, tuple[int, int, int]]:
        """Restore the newest checkpoint that can be read; a damaged one (a crash or a full disk
        while it was written over) is skipped with a warning and the one before it is used."""
        damaged: list[str] = []
        for _, path in reversed(list_checkpoints(self.run_dir)):
            try:
                return path, self._restore(path)
            except CheckpointDamaged as e:
                log.warning("checkpoint %s is damaged, trying the one before it: %s", path.name, e)
                print(f"emoreason train: warning: {e}; falling back to the checkpoint before it", file=sys.stderr)
                damaged.append(str(e))
        raise UserError(f"no readable checkpoint in {self.run_dir / 'checkpoints'} ({damaged[0]}); "
                        "move the checkpoints away to start over")

    def _restore(self, path: Path) -> tuple[int, int, int]:
        """Load a checkpoint into model / optimizer / scheduler / RNG; return (step, epoch, cursor)."""
        ckpt = load_checkpoint(path, self.acc.process_index)
        written_by = ckpt["state"].get("world_size")
        if written_by != self.acc.num_processes:
            # The sampler position counts micro batches of a global batch that depends on it.
            raise UserError(f"{path} was written by {written_by} process(es), this run has {self.acc.num_processes}: resume with the same number")
        expected = {n for k in self.keys for n in self.param_names[k]}
        if set(ckpt["weights"]) != expected:
            missing = sorted(expected - set(ckpt["weights"]))[:3]
            if set(ckpt["weights"]) < expected:  # nothing foreign, only holes: a damaged file, not another model
                raise CheckpointDamaged(f"{path}: {len(expected - set(ckpt['weights']))} weights missing (e.g. {missing})")
            raise UserError(f"{path}: checkpoint does not match this model/schedule (e.g. missing {missing})")
        if ckpt["optimizer"] is None:
            raise UserError(f"{path}: no optimizer state for process {self.acc.process_index} (resume with the same number of processes)")
        self._load_trainable(ckpt["weights"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        state = ckpt["state"]
        if ckpt["rng"] is not None:
            set_rng_state(ckpt["rng"])
        self.sampler.load_state_dict(state["sampler"])
        return int(state["step"]), self.sampler.epoch, self.sampler.start

    # ------------------------------------------------------------------------------------------
    def _labelled_clips(self, micro: list[dict[str, Any]]) -> torch.Tensor | None:
        """Emotion rows with a gold label in the step's global batch (all micro batches, all
        processes): what the auxiliary pooled-label loss is averaged over. None when it is off."""
        if not self.train.pooled_label_loss_weight:
            return None
        local = sum(int((b["emotion_label_ids"] >= 0).sum()) for b in micro if "emotion_label_ids" in b)
        return self.acc.reduce(torch.tensor(float(local), device=self.acc.device), reduction="sum").clamp(min=1.0)

    def _pooled_label_loss(self, batch: dict[str, Any], logits: torch.Tensor | None,
                           clip_norm: torch.Tensor | None) -> torch.Tensor | None:
        """Auxiliary loss of the label-anchored pooled tokens' head (``train.pooled_label_loss_weight``):
        cross entropy of its (B, n, K) ``logits`` from this micro batch's forward (the model output's
        ``label_logits``) against each emotion row's gold label, summed and divided by the step's
        labelled clips (``clip_norm``) times n."""
        ids = batch.get("emotion_label_ids")
        if clip_norm is None or ids is None or not bool((ids >= 0).any()):
            return None
        if logits is None or not logits.requires_grad:  # emotion adapter frozen in this phase
            return None
        n = logits.shape[1]
        target = ids.to(logits.device).repeat_interleave(n)
        ce = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target, ignore_index=-100, reduction="sum")
        return self.train.pooled_label_loss_weight * ce * self.acc.num_processes / (clip_norm * n)

    def _micro_step(self, batch: dict[str, Any], norm: torch.Tensor, sync: bool,
                    clip_norm: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Forward + backward of one micro batch; returns per-example (loss sums, token counts), tasks."""
        inputs = {k: (v.to(self.acc.device) if torch.is_tensor(v) else v) for k, v in batch.items() if k not in _NOT_MODEL_INPUTS}
        labels = batch["labels"].to(self.acc.device)
        ctx = contextlib.nullcontext() if sync else self.acc.no_sync(self.model)
        with ctx:
            start = first_target_position(labels)
            with self.acc.autocast():
                # Logits only from the first position that predicts a target: the LM head over the
                # prompt (audio tokens, instruction) is wasted work, ~20% of a SmolLM2 step.
                out = self.model(**inputs, logits_to_keep=labels.shape[1] - start)
            logits = out.logits
            index, weights = batch.get("example_index"), batch.get("loss_weights")
            sums, counts, weighted, _ = example_token_losses(
                logits, labels[:, start:], None if index is None else index[:, start:].to(self.acc.device),
                None if weights is None else weights[:, start:], num_examples=len(batch["tasks"]))
            # DDP averages gradients over processes: scale so the result is the global (weighted) token mean.
            loss = weighted.sum() * self.acc.num_processes / norm
            # only AudioLLM's output carries the pooled head's logits (the loop also trains other models)
            aux = self._pooled_label_loss(batch, getattr(out, "label_logits", None), clip_norm)
            self.acc.backward(loss if aux is None else loss + aux)
        return sums.detach(), counts, batch["tasks"]

    def _reduce_task_losses(self, records: list[tuple[torch.Tensor, torch.Tensor, list[str]]]) -> dict[str, float]:
        """Token-mean loss per task over all processes' micro batches of a step (+ ``all``)."""
        table = torch.zeros(len(self.tasks), 2, device=self.acc.device, dtype=torch.float64)
        index = {t: i for i, t in enumerate(self.tasks)}
        for sums, counts, tasks in records:
            for s, c, t in zip(sums.tolist(), counts.tolist(), tasks):
                table[index[t], 0] += s
                table[index[t], 1] += c
        table = self.acc.reduce(table, reduction="sum")
        out = {t: float(table[i, 0] / table[i, 1]) for t, i in index.items() if table[i, 1] > 0}
        out["all"] = float(table[:, 0].sum() / table[:, 1].sum().clamp(min=1))
        return out

    def fit(self, resume: str | Path | bool | None = "auto", stop_after: int | None = None) -> list[StepResult]:
        """Run (or continue) the schedule.

        ``resume``: ``"auto"`` continues from the latest checkpoint in the run directory if any;
        a path resumes from that checkpoint; False/None starts fresh. ``stop_after``: return after
        this many optimizer steps in total (simulates an interruption; checkpoints as usual).
        Returns the steps this call ran.
        """
        ckpt = latest_checkpoint(self.run_dir) if resume == "auto" else (Path(resume) if resume else None)
        step, epoch, cursor = (0, 0, 0)
        if resume == "auto" and ckpt is not None:
            ckpt, (step, epoch, cursor) = self._restore_newest_readable()
        elif ckpt is not None:
            step, epoch, cursor = self._restore(ckpt)
        main = self.acc.is_main_process
        handler = None
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            handler = attach_file_log(self.run_dir)
            for stale in remove_partial(self.run_dir):
                log.info("removed half-written %s", stale)
            log.info(
                "%d optimizer steps over %d passes on %d process(es), precision %s; phases: %s",
                self.total_steps, self.num_epochs, self.acc.num_processes, self.acc.mixed_precision,
                "; ".join(f"{p.name} passes {p.start_epoch}-{p.end_epoch - 1} on {p.group or 'all'} tasks "
                          f"-> {','.join(k for k in p.param_groups if k in self.keys)}" for p in self.phases),
            )
            if ckpt is not None:
                log.info("resuming from %s (step %d, epoch %d, batch %d)", ckpt, step, epoch, cursor)
        tracker = self._start_trackers() if self.acc.log_with else None
        writer = MetricsWriter(self.run_dir, main, tracker, resume_step=step if ckpt is not None else None)
        results: list[StepResult] = []
        try:
            results = self._run(step, epoch, cursor, writer, stop_after)
        finally:
            writer.close()
            if tracker is not None:
                # Not acc.end_training(): that also destroys the process group, which save_final's
                # barriers still need. close() does that part.
                for t in self.acc.trackers:
                    t.finish()
            if handler is not None:
                logging.getLogger("emoreason").removeHandler(handler)
                handler.close()
        return results

    def _start_trackers(self) -> Callable[[dict[str, float], int], None]:
        """Start accelerate's trackers (``train.report_to``) with the train config as hyperparameters;
        returns ``log(values, step)`` for the metrics writer."""
        from emoreason.config import to_dict

        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in to_dict(self.train).items()}
        # TensorBoard writes to project_dir/project_name: RUN_DIR/tensorboard, where it always was.
        name = "tensorboard" if self.train.report_to == "tensorboard" else "emoreason"
        self.acc.init_trackers(name, config=hparams, init_kwargs={"wandb": {"name": self.run_dir.name},
                                                                  "mlflow": {"run_name": self.run_dir.name}})
        return lambda values, step: self.acc.log(values, step=step)

    def _run(self, step: int, epoch: int, cursor: int, writer: MetricsWriter, stop_after: int | None) -> list[StepResult]:
        from tqdm.auto import tqdm

        t = self.train
        results: list[StepResult] = []
        bar = tqdm(total=self.total_steps, initial=step, desc="train", disable=not self.acc.is_main_process, dynamic_ncols=True)
        self.model.train()
        done = step >= self.total_steps
        while epoch < self.num_epochs and not done:
            phase = phase_at(self.phases, epoch)
            active = set(phase.param_groups) & set(self.keys)
            set_phase({k: self.groups[k] for k in self.keys}, active)
            self.sampler.set_epoch(epoch, phase.group)
            n_micro = len(self.sampler)
            self.sampler.start = cursor
            batches = iter(self._loader())
            while cursor < n_micro:
                if stop_after is not None and step >= stop_after:
                    bar.close()
                    return results
                tic = time.perf_counter()
                taken = min(t.grad_accum, n_micro - cursor)  # sampler micro batches of this step
                # with train.length_split each comes as a list of sub-batches: all are this step's
                micro = [sub for _ in range(taken) for sub in _as_list(next(batches))]
                local_tokens = sum(_target_weight(b) for b in micro)
                norm = self.acc.reduce(torch.tensor(float(local_tokens), device=self.acc.device), reduction="sum").clamp(min=1.0)
                clip_norm = self._labelled_clips(micro)
                records = [self._micro_step(b, norm, sync=(j == len(micro) - 1), clip_norm=clip_norm) for j, b in enumerate(micro)]
                params = [p for k in active for p in self.groups[k]]
                # max_norm inf: no clipping, but the norm is measured the same way (all processes, shards)
                norm_before = self.acc.clip_grad_norm_(params, t.max_grad_norm if t.max_grad_norm > 0 else math.inf)
                grad_norm = float(norm_before) if norm_before is not None else None
                lr = next((g["lr"] for g in self.optimizer.param_groups if g["name"] in active), 0.0)  # first trained group's
                # Frozen groups have no gradient, so AdamW skips them; lr 0 makes that hold for any
                # backend that materialises zero gradients (the scheduler resets lr right after).
                for group in self.optimizer.param_groups:
                    if group["name"] not in active:
                        group["lr"] = 0.0
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                cursor += taken
                step += 1
                losses = self._reduce_task_losses(records)
                samples = sum(len(b["tasks"]) for b in micro) * self.acc.num_processes
                res = StepResult(step, epoch, phase.name, losses["all"], losses, lr, samples / (time.perf_counter() - tic), grad_norm)
                results.append(res)
                if step % max(t.log_every, 1) == 0 or step == 1:
                    writer.write(step, epoch, phase.name, lr, res.samples_per_s, losses, grad_norm)
                bar.update(1)
                bar.set_postfix({"phase": phase.name, **{k: f"{v:.3f}" for k, v in losses.items()}})
                done = step >= self.total_steps
                pass_end = cursor >= n_micro
                if self.eval_dataset is not None and (
                        (t.eval_every_steps > 0 and step % t.eval_every_steps == 0) or done
                        or (t.eval_every_steps == 0 and pass_end)):
                    self._validate(step, epoch, phase.name, writer)
                if t.save_every_steps > 0 and step % t.save_every_steps == 0 and cursor < n_micro and not done:
                    self._save(step, epoch, cursor)
                if done:
                    break
            if cursor >= n_micro:
                if self.acc.is_main_process:
                    log.info("pass %d done (phase %s, step %d, loss %.4f)", epoch, phase.name, step, results[-1].loss if results else float("nan"))
                epoch, cursor = epoch + 1, 0
            self._save(step, epoch, cursor)
        bar.close()
        if self.frame_cache is not None and self.acc.is_main_process:
            log.info("frozen-encoder frames (%s): %d clips encoded (%.1f s), %d reused from the cache, %d evicted from memory",
                     ", ".join(self.cached_encoders), self.frame_cache.misses, self.frame_cache.encode_seconds,
                     self.frame_cache.hits, self.frame_cache.evicted)
        return results

    def _validate(self, step: int, epoch: int, phase: str, writer: MetricsWriter) -> dict[str, float]:
        """Validation loss per task (logged); a new best overall loss saves ``RUN_DIR/best``."""
        loader = torch.utils.data.DataLoader(self.eval_dataset, batch_size=self.train.batch_size,
                                             collate_fn=self.collate_fn, num_workers=self.num_workers)
        losses = validation_losses(self.model, loader, self.acc.device, self.acc.autocast, self.train.eval_max_batches)
        writer.write_validation(step, epoch, phase, losses)
        best = best_loss(self.run_dir)
        if "all" in losses and (best is None or losses["all"] < best):
            self._save_model(BEST_DIR, {BEST_FILE: best_marker(step, losses["all"])})
        if self.acc.is_main_process:
            log.info("validation at step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
        return losses

    # ------------------------------------------------------------------------------------------
    def _save_model(self, name: str, extra_files: dict[str, str] | None = None) -> Path:
        """``RUN_DIR/<name>`` from the model and processor, atomically (every process calls this)."""
        self.acc.wait_for_everyone()
        target = self.run_dir / name
        if self.acc.is_main_process:
            save_model_dir(lambda d: self.save_model(self.acc.unwrap_model(self.model), d), self.processor, target, extra_files)
            log.info("saved %s", target)
        self.acc.wait_for_everyone()
        return target

    def close(self) -> None:
        """Destroy the distributed process group (after :meth:`save_final`), if this process made
        one. Left for the interpreter's exit, gloo's worker threads can abort the process after a
        successful run (``terminate called without an active exception``, exit -6 under torchrun;
        pytorch/pytorch PR 179291 describes the race). Call it on success only.

        A barrier first: every rank has finished its last collective before any tears the group
        down (destroying while a peer is still inside one can hang both; pytorch issue 75097)."""
        if self.acc.num_processes > 1:
            self.acc.wait_for_everyone()
        self.acc.state.destroy_process_group()

    def save_final(self) -> Path:
        """``RUN_DIR/final``: the trained model (``train.final_from_best``: the one with the lowest
        validation loss, ``RUN_DIR/best``), atomically."""
        best = self.run_dir / BEST_DIR
        if not (self.train.final_from_best and (best / BEST_FILE).is_file()):
            return self._save_model("final")
        self.acc.wait_for_everyone()
        final = self.run_dir / "final"
        if self.acc.is_main_process:
            copy_dir_atomic(best, final)
            log.info("saved %s (the best model by validation loss: %s)", final, (best / BEST_FILE).read_text().strip())
        self.acc.wait_for_everyone()
        return final
