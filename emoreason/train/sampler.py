"""Task-group sampler: per epoch, a seeded shuffle of the phase's examples, cut into global batches
and sharded over processes; resumable mid-epoch.

Global batch = ``micro_batch * num_replicas``. Every process computes the same permutation (seed,
epoch) and takes its own slice of each global batch, so one process with micro batch ``b`` sees
exactly the examples two processes with ``b/2`` see together. A last incomplete global batch is
filled by wrapping around to the start of the permutation (every replica gets full batches, and
the result does not depend on the number of replicas).

Length grouping (``lengths`` given): the shuffled order is cut into windows of
``group_window`` global batches (``train.length_group_batches``), each window sorted by row length and cut into batches, and the
batches of the epoch shuffled again. Rows of a batch then have similar lengths, so padding (or
packing's leftover room, ``emoreason.model.packing``) shrinks; which rows meet in a batch is still
random beyond the window.

Rows sorted within each batch (``row_lengths`` given, for ``train.length_split``): each micro
batch's indices are yielded longest first; which rows form a batch does not change.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

GROUP_WINDOW = 8
"""Default global batches per length-sorted window (length grouping)."""


class TaskGroupSampler:
    """Batch sampler yielding this replica's micro batches (lists of dataset indices).

    ``groups[i]`` is the task group of example ``i``. :meth:`set_epoch` picks the epoch and the
    group filter (None = all). Iteration starts at micro batch ``start`` (:meth:`load_state_dict`).
    ``lengths[i]``: example ``i``'s length in tokens; given, batches are length-grouped in windows of
    ``group_window`` global batches (module docstring). ``row_lengths``: the same kind of lengths;
    given, each micro batch's rows are yielded longest first (its rows unchanged).
    """

    def __init__(self, groups: list[str], micro_batch: int, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 lengths: list[int] | None = None, group_window: int = GROUP_WINDOW,
                 row_lengths: list[int] | None = None) -> None:
        if micro_batch < 1:
            raise ValueError("micro_batch must be >= 1")
        if group_window < 1:
            raise ValueError("group_window must be >= 1")
        self.group_window = group_window
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.groups = list(groups)
        if lengths is not None and len(lengths) != len(self.groups):
            raise ValueError(f"{len(lengths)} lengths for {len(self.groups)} examples")
        self.lengths = None if lengths is None else list(lengths)
        if row_lengths is not None and len(row_lengths) != len(self.groups):
            raise ValueError(f"{len(row_lengths)} row lengths for {len(self.groups)} examples")
        self.row_lengths = None if row_lengths is None else list(row_lengths)
        self.micro_batch = micro_batch
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.group: str | None = None
        self.start = 0

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.num_replicas

    def set_epoch(self, epoch: int, group: str | None) -> None:
        """Select the epoch (reshuffles) and the task group; restarts at the first batch."""
        self.epoch = epoch
        self.group = group
        self.start = 0

    def indices(self) -> list[int]:
        """The epoch's example order (same on every replica)."""
        pool = [i for i, g in enumerate(self.groups) if self.group is None or g == self.group]
        if not pool:
            raise ValueError(f"no examples in task group {self.group!r}")
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(len(pool), generator=gen).tolist()
        return [pool[i] for i in perm]

    def __len__(self) -> int:
        """Micro batches per epoch for this replica (equal on all replicas)."""
        n = sum(1 for g in self.groups if self.group is None or g == self.group)
        return math.ceil(n / self.global_batch)

    def _length_grouped(self, order: list[int]) -> list[int]:
        """``order`` (whole global batches) with each window of ``group_window`` global batches
        sorted by length (longest first), then its global batches in a seeded random order."""
        size, lengths = self.global_batch, self.lengths
        window = self.group_window * size
        order = [i for w in range(0, len(order), window)
                 for i in sorted(order[w : w + window], key=lambda i: -lengths[i])]
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + 7_919)
        batches = torch.randperm(len(order) // size, generator=gen).tolist()
        return [i for b in batches for i in order[b * size : (b + 1) * size]]

    def __iter__(self) -> Iterator[list[int]]:
        order = self.indices()
        total = len(self) * self.global_batch
        order = (order * math.ceil(total / len(order)))[:total]  # wrap the last global batch
        if self.lengths is not None:
            order = self._length_grouped(order)
        lo = self.rank * self.micro_batch
        for b in range(self.start, len(self)):
            chunk = order[b * self.global_batch : (b + 1) * self.global_batch]
            mine = chunk[lo : lo + self.micro_batch]
            if self.row_lengths is not None:
                mine = sorted(mine, key=lambda i: -self.row_lengths[i])  # stable: ties keep their order
            yield mine

    def state_dict(self) -> dict[str, int | str | None]:
        return {"epoch": self.epoch, "group": self.group, "start": self.start, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Resume at micro batch ``state["start"]`` of epoch ``state["epoch"]``."""
        self.seed = int(state["seed"])
        self.set_epoch(int(state["epoch"]), state["group"])
        self.start = int(state["start"])
