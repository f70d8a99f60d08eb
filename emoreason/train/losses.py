"""Token-level losses shared by the training step and validation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
"""Label value of positions that are not targets (prompt, audio, padding)."""


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross entropy per example.

    logits (B, L, V), labels (B, L) aligned with the inputs (-100 = not a target) ->
    (loss sum (B,), target token count (B,)); position t predicts label t+1. Only target
    positions are upcast to fp32: with a 256k vocabulary the full (B, L, V) copy costs GBs.
    """
    sums, counts, _, _ = weighted_token_losses(logits, labels, None)
    return sums, counts


def weighted_token_losses(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`token_losses` plus a weighted version from the same cross entropies.

    ``weights`` (B, L) aligned with ``labels`` (the weight of predicting label t sits at t; None:
    all 1). Returns (loss sum (B,), token count (B,), weighted loss sum (B,), weight total (B,)):
    the training step minimises sum(weighted sums) / sum(weight totals), a weighted token mean
    (all weights 1: the plain token mean), while the plain sums are what is logged, so losses stay
    comparable between runs with different weights.
    """
    shift_labels = labels[:, 1:].to(logits.device)
    mask = shift_labels != IGNORE_INDEX
    rows, cols = mask.nonzero(as_tuple=True)
    picked = logits[:, :-1][rows, cols].float()  # (N targets, V)
    per_token = F.cross_entropy(picked, shift_labels[rows, cols], reduction="none")
    zeros = torch.zeros(labels.size(0), device=logits.device, dtype=per_token.dtype)
    sums = zeros.index_add(0, rows, per_token)
    counts = mask.sum(1)
    if weights is None:
        return sums, counts, sums, counts.to(per_token.dtype)
    w = weights[:, 1:].to(device=logits.device, dtype=per_token.dtype)[rows, cols]  # (N targets,)
    return sums, counts, zeros.index_add(0, rows, per_token * w), zeros.index_add(0, rows, w)


def first_target_position(labels: torch.Tensor) -> int:
    """Earliest position whose logits predict a target token in ``labels`` (B, L); 0 if none.

    Position t predicts label t+1, so this is (first non-ignored label column) - 1 over the batch.
    """
    has_target = (labels != IGNORE_INDEX).any(0)
    if not bool(has_target.any()):
        return 0
    return max(0, int(has_target.nonzero()[0, 0]) - 1)


def example_token_losses(logits: torch.Tensor, labels: torch.Tensor, example_index: torch.Tensor | None = None,
                         weights: torch.Tensor | None = None, num_examples: int | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Next-token cross entropy per *example*, for plain and packed batches.

    logits (R, L, V), labels (R, L); ``example_index`` (R, L) names each token's example in a
    packed batch (``emoreason.model.packing``; -1 padding), None: one example per row. ``weights``
    (R, L) per-token loss weights aligned with ``labels`` (None: all 1); ``num_examples``: E
    (default: the largest index + 1). Returns (loss sum (E,),
    target count (E,), weighted loss sum (E,), weight total (E,)), E = number of examples; the
    training step minimises sum(weighted) / sum(weight totals), the plain sums are what is logged.
    A target's example is the example of the label it predicts; the first token of an example is
    never a target, so no position predicts across an example boundary.
    """
    shift_labels = labels[:, 1:].to(logits.device)
    mask = shift_labels != IGNORE_INDEX
    rows, cols = mask.nonzero(as_tuple=True)
    picked = logits[:, :-1][rows, cols].float()  # (N targets, V)
    per_token = F.cross_entropy(picked, shift_labels[rows, cols], reduction="none")
    if example_index is None:
        owner, num = rows, labels.size(0)
    else:
        index = example_index.to(logits.device)
        owner = index[:, 1:][rows, cols]
        num = num_examples if num_examples is not None else int(index.max()) + 1
    zeros = torch.zeros(num, device=logits.device, dtype=per_token.dtype)
    sums = zeros.index_add(0, owner, per_token)
    counts = torch.zeros(num, device=logits.device, dtype=torch.long).index_add(0, owner, torch.ones_like(owner))
    if weights is None:
        return sums, counts, sums, counts.to(per_token.dtype)
    w = weights[:, 1:].to(device=logits.device, dtype=per_token.dtype)[rows, cols]  # (N targets,)
    return sums, counts, zeros.index_add(0, owner, per_token * w), zeros.index_add(0, owner, w)
