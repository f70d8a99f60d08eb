"""Start the label-anchored pooled tokens' head as a linear probe (``train.pooled_head_init: probe``).

The head of :class:`emoreason.model.adapter.LabelMixtureTokens` is a linear classifier over the
emotion encoder's pooled frames (the speech encoder's in a single-encoder model with
``model.single_encoder_pooled``). Trained only by the LLM's loss, it gets a few dozen Adam steps in
a demo-sized run, far from what a logistic regression fitted to convergence on the same features
reaches (docs/training.md, "Label accuracy"). So before the first step we fit that regression on the
training split's emotion clips and copy it into the head: the audio then enters the LLM from step 0
as (mostly) the embedding of the label the probe predicts, and training fine-tunes from there.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from emoreason.model.adapter import LabelMixtureTokens, masked_mean_std


def pooled_adapter(model: Any) -> tuple[str, LabelMixtureTokens] | None:
    """(encoder name, label-anchored pooled tokens) of the adapter that has them: the emotion
    adapter (dual encoder), or the speech adapter of a single-encoder model
    (``model.single_encoder_pooled``); None when the model has none."""
    for adapter in model.adapters.values():
        pooled = getattr(adapter, "pooled", None)
        if isinstance(pooled, LabelMixtureTokens):
            return adapter.sources[0], pooled
    return None


def pooled_head(model: Any) -> LabelMixtureTokens | None:
    """The model's label-anchored pooled tokens, or None when the model has none."""
    found = pooled_adapter(model)
    return found[1] if found else None


def _emotion_clips(dataset: Any, labels: list[str]) -> list[tuple[int, int]]:
    """(dataset index, label index) of the first row of every distinct emotion clip with a known label."""
    seen: set[str] = set()
    out = []
    for i, ex in enumerate(dataset.examples):
        if ex.task != "emotion" or ex.label not in labels or str(ex.audio) in seen:
            continue
        seen.add(str(ex.audio))
        out.append((i, labels.index(ex.label)))
    return out


@torch.no_grad()
def pooled_features(model: Any, processor: Any, dataset: Any, indices: list[int], batch_size: int = 8) -> np.ndarray:
    """(N, 2d) float32: the head's input for each clip (LayerNorm of the mean + std of the frames of
    the encoder the head pools: the emotion encoder's, or the speech encoder's in a single-encoder model).

    The frames come through ``model._encode``, so a frame cache attached to the model
    (``train.feature_cache``; the recipe attaches it before this fit) serves and keeps them: the
    training pass then reuses these clips' frames instead of encoding them again."""
    source, head = pooled_adapter(model)
    rows = []
    for start in range(0, len(indices), batch_size):
        items = [dataset[i] for i in indices[start:start + batch_size]]
        batch = processor(waves=[np.asarray(e["wave"], dtype=np.float32) for e in items],
                          prompts=[e["prompt"] for e in items], targets=[e["target"] for e in items])
        frames, mask = model._encode(source, batch[f"{source}_features"].to(model.device),
                                     batch.get(f"{source}_attention_mask"))
        stats = masked_mean_std(frames, mask).to(head.norm.weight.dtype)
        rows.append(head.norm(stats).float().cpu().numpy())
    return np.concatenate(rows)


def init_head_from_probe(model: Any, processor: Any, dataset: Any, labels: list[str], seed: int = 0,
                         c: float = 1.0) -> dict[str, Any] | None:
    """Fit a logistic regression (sklearn, L2, ``c``) on the training clips' pooled features and copy
    its weights into every one of the head's ``n`` label heads. Labels without a training clip get
    a large negative bias (the probe never predicts them either). Returns a summary (clips, classes,
    training accuracy of the probe), or None when the model has no label-anchored head or the data
    has fewer than two labelled emotion classes."""
    from sklearn.linear_model import LogisticRegression

    head = pooled_head(model)
    if head is None:
        return None
    clips = _emotion_clips(dataset, labels)
    classes = sorted({y for _, y in clips})
    if len(classes) < 2:
        return None
    x = pooled_features(model, processor, dataset, [i for i, _ in clips])
    y = np.array([y for _, y in clips])
    probe = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
    k, d = head.num_labels, x.shape[1]
    weight = np.zeros((k, d), dtype=np.float32)
    bias = np.full(k, -10.0, dtype=np.float32)
    if len(probe.classes_) == 2:  # sklearn's binary form: one row for classes_[1] against classes_[0]
        weight[probe.classes_[1]] = probe.coef_[0] / 2
        weight[probe.classes_[0]] = -probe.coef_[0] / 2
        bias[probe.classes_[1]], bias[probe.classes_[0]] = probe.intercept_[0] / 2, -probe.intercept_[0] / 2
    else:
        for row, cls in enumerate(probe.classes_):
            weight[cls], bias[cls] = probe.coef_[row], probe.intercept_[row]
    ref = head.head.weight
    with torch.no_grad():
        head.head.weight.copy_(torch.from_numpy(np.tile(weight, (head.n, 1))).to(ref.device, ref.dtype))
        head.head.bias.copy_(torch.from_numpy(np.tile(bias, head.n)).to(ref.device, ref.dtype))
    summary = {"clips": len(clips), "classes": [labels[c] for c in classes], "train_accuracy": float(probe.score(x, y))}
    print(f"emoreason train: pooled label head initialised from a linear probe on {summary['clips']} clips "
          f"({', '.join(summary['classes'])}; probe training accuracy {100 * summary['train_accuracy']:.1f} %)",
          file=sys.stderr)
    return summary
