"""Classification metrics over canonical labels: per-class accuracy (recall), weighted and
unweighted averages (paper Table 6), macro-F1, confusion matrix.

Table 6's "Wt Avg" weights each class's accuracy by its number of samples, which equals overall
accuracy; "Unwt Avg" is the plain mean of per-class accuracies (balanced accuracy). Predictions
that commit to no label count as wrong and appear in the confusion matrix's "none" column.
"""
from __future__ import annotations

from collections import Counter

NONE = "none"


def classification_metrics(gold: list[str], pred: list[str | None], labels: list[str] | None = None) -> dict:
    """Per-class accuracy / precision / recall / F1, averages and the confusion matrix.

    ``labels``: class order (default: gold labels by frequency, then predicted-only labels).
    Returns ``{"labels", "per_class": {label: {"n", "accuracy", "precision", "recall", "f1"}},
    "weighted_accuracy", "unweighted_accuracy", "macro_f1", "confusion": [[int]] (rows gold in
    ``labels`` order, columns ``labels + ["none"]``), "n"}`` with accuracies in percent.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    pred_ = [p if p else NONE for p in pred]
    if labels is None:
        counts = Counter(gold)
        labels = [l for l, _ in counts.most_common()]
        labels += sorted({p for p in pred_ if p not in counts and p != NONE})
    cols = labels + [NONE]
    index = {l: i for i, l in enumerate(cols)}
    confusion = [[0] * len(cols) for _ in labels]
    for g, p in zip(gold, pred_):
        if g in index and g != NONE:
            confusion[index[g]][index.get(p, index[NONE])] += 1
    per_class: dict[str, dict[str, float]] = {}
    for i, label in enumerate(labels):
        tp = confusion[i][i]
        n = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        recall = tp / n if n else 0.0
        precision = tp / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"n": n, "accuracy": 100 * recall, "precision": 100 * precision,
                            "recall": 100 * recall, "f1": 100 * f1}
    present = [l for l in labels if per_class[l]["n"] > 0]
    total = sum(per_class[l]["n"] for l in present)
    correct = sum(confusion[i][i] for i in range(len(labels)))
    return {
        "labels": labels,
        "per_class": per_class,
        "weighted_accuracy": 100 * correct / total if total else 0.0,
        "unweighted_accuracy": sum(per_class[l]["accuracy"] for l in present) / len(present) if present else 0.0,
        "macro_f1": sum(per_class[l]["f1"] for l in present) / len(present) if present else 0.0,
        "confusion": confusion,
        "confusion_columns": cols,
        "n": total,
    }
