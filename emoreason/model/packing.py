"""Sequence packing for training: several short rows of a right-padded processor batch share one
sequence, with attention confined to each row.

A training batch pads every row to the batch's longest; with clips of 1-5 s and targets of 5-60
tokens a batch of 8 computes up to twice the tokens it learns from. :func:`pack_batch` places rows
first-fit-decreasing into sequences no longer than the longest row (so no attention matrix grows),
and records for every token which example it belongs to (``example_index``, -1 on padding). The
model (:meth:`emoreason.model.audiollm.AudioLLM.forward`) turns that into position ids that restart
at 0 for each example and a block-diagonal causal 4-D attention mask, so each packed example sees
exactly the tokens and positions it saw alone: losses and logits equal the unpacked batch's
(``tests/test_train_packing.py``).

Why an explicit 4-D mask and not transformers' packed-sequence detection from ``position_ids``:
that path only runs when the 2-D mask is None and infers boundaries from position resets, which a
padding tail continuing the last row's positions would silently join. The additive float mask works
on the eager and sdpa paths of every HF decoder.

Examples are reordered so that, read row-major, the packed placeholders come in example order: the
audio tokens (one clip per example) fill them in that order (``AudioLLM.embed``). Per-example
entries (features, ``tasks``, ``ids``) are reordered the same way.
"""
from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -100
_TOKEN_KEYS = ("input_ids", "attention_mask", "labels", "loss_weights")
"""(B, L) entries laid out per token; ``loss_weights`` (per-token loss weights) travels with its labels."""
_TOKEN_FILL = {"attention_mask": 0, "labels": IGNORE_INDEX, "loss_weights": 1.0}


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins of example indices, each summing to <= ``capacity``; longest first, each into the first
    bin with room. Bins come out in creation order, examples within a bin in placement order."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        if lengths[i] > capacity:
            raise ValueError(f"row {i} has {lengths[i]} tokens, more than the capacity {capacity}")
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return bins


def pack_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """Right-padded training batch (B rows) -> packed batch (P <= B rows, same length L).

    Token entries (``input_ids``, ``attention_mask``, ``labels``, ``loss_weights``) become (P, L);
    ``example_index`` (P, L) int64 names each token's example (0..B-1 in the new order, -1 on
    padding). Entries with a leading dimension B (features, their masks) and the ``tasks`` / ``ids``
    lists are reordered to the packed order. When no two rows fit in one, the batch comes back
    unchanged (no ``example_index``). A batch without ``labels`` (a prompt batch for
    generation, left-padded) is refused: only training batches are packed. Padding takes the
    batch's own pad id (its value must only be a valid id: padding is masked and has no target).
    """
    if "labels" not in batch:
        raise ValueError("pack_batch packs training batches (with labels, right-padded)")
    mask = batch["attention_mask"]
    n, length = mask.shape
    lengths = mask.sum(1).tolist()
    if any(not bool(mask[i, : lengths[i]].all()) for i in range(n)):
        raise ValueError("pack_batch needs right-padded rows")
    bins = first_fit_decreasing(lengths, length)
    if len(bins) == n:  # nothing shares a row: the plain batch is the same work with a cheaper mask
        return batch
    shortest = min(range(n), key=lambda i: lengths[i])
    pad_token_id = int(batch["input_ids"][shortest, -1]) if lengths[shortest] < length else 0
    order = [i for b in bins for i in b]
    out: dict[str, Any] = {}
    packed_index = torch.full((len(bins), length), -1, dtype=torch.long)
    for key in _TOKEN_KEYS:
        if key not in batch:
            continue
        src = batch[key]
        fill = pad_token_id if key == "input_ids" else _TOKEN_FILL[key]
        out[key] = torch.full((len(bins), length), fill, dtype=src.dtype)
    new_id = {old: new for new, old in enumerate(order)}
    for row, members in enumerate(bins):
        at = 0
        for old in members:
            end = at + lengths[old]
            for key in _TOKEN_KEYS:
                if key in out:
                    out[key][row, at:end] = batch[key][old, : lengths[old]]
            packed_index[row, at:end] = new_id[old]
            at = end
    out["example_index"] = packed_index
    perm = torch.tensor(order, dtype=torch.long)
    for key, value in batch.items():
        if key in out or key in _TOKEN_KEYS:
            continue
        if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == n:
            out[key] = value.index_select(0, perm)
        elif isinstance(value, list) and len(value) == n:
            out[key] = [value[i] for i in order]
        else:
            out[key] = value
    return out


def packed_positions(example_index: torch.Tensor) -> torch.Tensor:
    """(P, L) example index (-1 padding) -> (P, L) int64 position ids restarting at 0 per example
    (padding continues from 0 too; its outputs are never read)."""
    pos = torch.arange(example_index.shape[1], device=example_index.device).expand_as(example_index)
    starts = torch.ones_like(example_index, dtype=torch.bool)
    starts[:, 1:] = example_index[:, 1:] != example_index[:, :-1]
    # position of the segment start each token belongs to: running max over start positions
    start_pos = torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=1).values
    return pos - start_pos


def packed_attention_mask(example_index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(P, L) example index -> additive (P, 1, L, L) mask: 0 where query i may attend key j (same
    example, j <= i), the dtype's minimum elsewhere. Padding tokens attend to themselves only, so
    no softmax row is empty."""
    length = example_index.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=example_index.device).tril()
    same = example_index.unsqueeze(2) == example_index.unsqueeze(1)  # (P, L, L)
    allowed = same & causal & (example_index.unsqueeze(1) >= 0)
    allowed |= torch.eye(length, dtype=torch.bool, device=example_index.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=example_index.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask.unsqueeze(1)


def token_efficiency(attention_masks: list[torch.Tensor]) -> tuple[int, int]:
    """(tokens computed, useful tokens) over batches' (rows, L) attention masks: computed counts
    every position of every row, useful only the real (mask 1) ones."""
    computed = sum(int(m.numel()) for m in attention_masks)
    useful = sum(int(m.sum()) for m in attention_masks)
    return computed, useful
