"""95% intervals beyond the headline: balanced (unweighted) accuracy, the classification averages
and the quote scores in metrics.json, and their cells in the comparison and per-class tables."""
from __future__ import annotations

import numpy as np
import pytest

from emoreason.eval.bootstrap import bootstrap_balanced_ci, bootstrap_ci
from emoreason.eval.compare import with_ci
from emoreason.eval.report import class_table, quote_table
from emoreason.eval.summary import summarize


def test_balanced_ci_is_the_mean_of_class_means_and_seeded():
    # class a: 3 of 4 right, class b: 1 of 2 right -> balanced (75 + 50) / 2 = 62.5, plain 4/6
    hits, gold = [1, 1, 1, 0, 1, 0], ["a", "a", "a", "a", "b", "b"]
    ci = bootstrap_balanced_ci(hits * 10, gold * 10, resamples=400, seed=1, scale=100)
    assert ci["mean"] == pytest.approx(62.5) and ci["n"] == 60
    assert ci["low"] < 62.5 < ci["high"] and ci == bootstrap_balanced_ci(hits * 10, gold * 10, resamples=400, seed=1, scale=100)
    # a single class: the same number as the plain bootstrap of the mean (same resamples)
    one = bootstrap_balanced_ci([1, 0, 1, 1] * 5, ["x"] * 20, resamples=300, seed=2)
    plain = bootstrap_ci([1, 0, 1, 1] * 5, resamples=300, seed=2)
    assert (one["mean"], one["low"], one["high"]) == pytest.approx((plain["mean"], plain["low"], plain["high"]))
    # resampled classes that vanish are left out of that resample's mean (never divide by zero)
    rare = bootstrap_balanced_ci([1] * 19 + [0], ["a"] * 19 + ["b"], resamples=200, seed=0, scale=100)
    assert rare["mean"] == pytest.approx(50) and 0 <= rare["low"] <= rare["high"] <= 100 and np.isfinite(rare["low"])
    assert bootstrap_balanced_ci([], [])["n"] == 0
    with pytest.raises(ValueError):
        bootstrap_balanced_ci([1, 0], ["a"])


def _row(i: int, gold: str, pred: str | None, g: float | None = None) -> dict:
    row = {"id": str(i), "task": "emotion", "gold": gold, "pred_label": pred, "score": float(gold == pred),
           "quotes": ["x"] if g is not None else [], "reference": gold, "prediction": ""}
    if g is not None:
        row.update(groundedness=g, relevance=2 - g)
    return row


def test_metrics_json_carries_intervals_for_accuracies_and_quotes():
    # gold alternates angry / sad; the answer says sad except every third clip: angry 1/3 right, sad 2/3
    rows = [_row(i, "sad" if i % 2 else "angry", "sad" if i % 3 else "angry", g=float(i % 3) if i < 12 else None)
            for i in range(60)]
    m = summarize(rows, seed=0, resamples=300)["tasks"]["emotion"]
    cls, q = m["classification"], m["quotes"]
    assert cls["weighted_accuracy"] == pytest.approx(50) and cls["unweighted_accuracy"] == pytest.approx(50)
    for key in ("weighted_accuracy", "unweighted_accuracy"):
        assert cls["ci"][key]["low"] < cls[key] < cls["ci"][key]["high"]
    assert q["n_judged"] == 12 and q["groundedness"] == pytest.approx(50 * np.mean([i % 3 for i in range(12)]))
    for key in ("groundedness", "relevance"):
        assert q["ci"][key]["low"] <= q[key] <= q["ci"][key]["high"] and q["ci"][key]["high"] > q["ci"][key]["low"]
    # the tables show "value [low, high]"; metrics.json from before the intervals: the value alone
    assert with_ci(cls, "weighted_accuracy") == f"50.0 [{cls['ci']['weighted_accuracy']['low']:.1f}, " \
                                                f"{cls['ci']['weighted_accuracy']['high']:.1f}]"
    assert with_ci({"weighted_accuracy": 61.0}, "weighted_accuracy") == "61.0" and with_ci(None, "x") == "-"
    assert class_table(cls).totals[1][2] == with_ci(cls, "weighted_accuracy")
    assert quote_table({"tasks": {"emotion": m}}).rows[0][3] == with_ci(q, "groundedness")  # after task, mode, quotation
    # no quote judged: no groundedness, no interval
    plain = summarize([_row(i, "sad", "sad") for i in range(4)], resamples=50)["tasks"]["emotion"]["quotes"]
    assert "groundedness" not in plain and "ci" not in plain and with_ci(plain, "groundedness") == "-"
