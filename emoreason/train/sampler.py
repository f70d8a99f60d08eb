"""Task-group sampler: per epoch, a seeded shuffle of the phase's examples, cut into global batches
and sharded over processes; resumable mid-epoch.

Global batch = ``micro_batch * num_replicas``. Every process computes the same permutation (seed,
epoch) and takes its own slice of each global batch, so one process with micro batch ``b`` sees
exactly the examples two processes with ``b/2`` see together. A last incomplete global batch is
filled by wrapping around to the start of the permutation (every replica gets full batches, and
the result does not depend on the number of replicas).
"""
from __future__ import annotations

import math
from typing import Iterator

import torch


class TaskGroupSampler:
    """Batch sampler yielding this replica's micro batches (lists of dataset indices).

    ``groups[i]`` is the task group of example ``i``. :meth:`set_epoch` picks the epoch and the
    group filter (None = all). Iteration starts at micro batch ``start`` (:meth:`load_state_dict`).
    """

    def __init__(self, groups: list[str], micro_batch: int, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        if micro_batch < 1:
            raise ValueError("micro_batch must be >= 1")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.groups = list(groups)
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

    def __iter__(self) -> Iterator[list[int]]:
        order = self.indices()
        total = len(self) * self.global_batch
        order = (order * math.ceil(total / len(order)))[:total]  # wrap the last global batch
        lo = self.rank * self.micro_batch
        for b in range(self.start, len(self)):
            chunk = order[b * self.global_batch : (b + 1) * self.global_batch]
            yield chunk[lo : lo + self.micro_batch]

    def state_dict(self) -> dict[str, int | str | None]:
        return {"epoch": self.epoch, "group": self.group, "start": self.start, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Resume at micro batch ``state["start"]`` of epoch ``state["epoch"]``."""
        self.seed = int(state["seed"])
        self.set_epoch(int(state["epoch"]), state["group"])
        self.start = int(state["start"])
