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
    shift_labels = labels[:, 1:].to(logits.device)
    mask = shift_labels != IGNORE_INDEX
    rows, cols = mask.nonzero(as_tuple=True)
    picked = logits[:, :-1][rows, cols].float()  # (N targets, V)
    per_token = F.cross_entropy(picked, shift_labels[rows, cols], reduction="none")
    sums = torch.zeros(labels.size(0), device=logits.device, dtype=per_token.dtype).index_add(0, rows, per_token)
    return sums, mask.sum(1)


def first_target_position(labels: torch.Tensor) -> int:
    """Earliest position whose logits predict a target token in ``labels`` (B, L); 0 if none.

    Position t predicts label t+1, so this is (first non-ignored label column) - 1 over the batch.
    """
    has_target = (labels != IGNORE_INDEX).any(0)
    if not bool(has_target.any()):
        return 0
    return max(0, int(has_target.nonzero()[0, 0]) - 1)
