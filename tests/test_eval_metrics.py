"""Classification metrics on a hand-computed example, bootstrap CIs, WER normaliser and corpus WER."""
import pytest

from emoreason.eval.bootstrap import bootstrap_ci
from emoreason.eval.metrics import classification_metrics
from emoreason.eval.wer import corpus_wer, normalize


def test_per_class_and_macro_f1_hand_computed():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", None, "c"]
    m = classification_metrics(gold, pred)
    assert m["labels"] == ["a", "b", "c"]
    assert m["per_class"]["a"]["accuracy"] == pytest.approx(200 / 3)
    assert m["per_class"]["a"]["precision"] == pytest.approx(100)
    assert m["per_class"]["a"]["f1"] == pytest.approx(80)
    assert m["per_class"]["b"]["f1"] == pytest.approx(50)
    assert m["per_class"]["c"]["f1"] == pytest.approx(100)
    assert m["weighted_accuracy"] == pytest.approx(400 / 6)  # Table 6 "Wt Avg" = overall accuracy
    assert m["unweighted_accuracy"] == pytest.approx((200 / 3 + 50 + 100) / 3)
    assert m["macro_f1"] == pytest.approx((80 + 50 + 100) / 3)
    assert m["confusion_columns"] == ["a", "b", "c", "none"]
    assert m["confusion"] == [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]


def test_metrics_with_fixed_label_order_skip_absent_classes_in_averages():
    m = classification_metrics(["x", "x"], ["x", "y"], labels=["x", "y"])
    assert m["per_class"]["y"]["n"] == 0
    assert m["unweighted_accuracy"] == pytest.approx(50)  # only x is present


def test_bootstrap_ci_contains_mean_and_is_seeded():
    values = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 5
    a = bootstrap_ci(values, resamples=500, seed=3, scale=100)
    b = bootstrap_ci(values, resamples=500, seed=3, scale=100)
    assert a == b
    assert a["mean"] == pytest.approx(70)
    assert a["low"] < a["mean"] < a["high"]
    assert 50 < a["low"] and a["high"] < 90
    assert bootstrap_ci([], seed=0)["n"] == 0


@pytest.mark.parametrize("raw,expected", [
    ("HELLO   World", "hello world"),
    ("Uh, I've got 20 apples [laughter] and 3 <unk> pears!", "i have got twenty apples and three pears"),
    ("Um... er, ah", "empty"),  # only hesitations
    ("", "empty"),
    ("(noise) we'll see", "we will see"),  # bracketed span dropped, contraction expanded
    ("The 10 dogs; 4 cats.", "the ten dogs four cats"),  # digits to words, punctuation gone
])
def test_normalizer_steps(raw, expected):
    assert normalize(raw) == expected


def test_corpus_wer_is_pooled_not_averaged():
    refs = ["the cat sat on the mat", "hello world"]
    hyps = ["the cat sit on mat", "hello world"]
    w = corpus_wer(refs, hyps)
    assert (w["substitutions"], w["deletions"], w["insertions"], w["hits"]) == (1, 1, 0, 6)
    assert w["wer"] == pytest.approx(2 / 8)  # mean of per-utterance WERs would be (2/6 + 0) / 2
    assert corpus_wer(["Hello, World!"], ["hello world"])["wer"] == 0
