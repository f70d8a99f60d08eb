"""train.label_loss_weight: the label's tokens weigh more in the loss, checked by hand on tiny batches."""
import math

import numpy as np
import pytest
import torch

from emoreason.data.dataset import Collator, label_token_span
from emoreason.model.builder import build_model
from emoreason.model.processing import build_tiny_tokenizer
from emoreason.testing.tiny import tiny_model_config
from emoreason.train.losses import token_losses, weighted_token_losses


def test_weighted_token_losses_by_hand():
    # Two rows, vocabulary 2, zero logits except where set: every CE is ln(1 + e^-x) for a logit gap x.
    logits = torch.zeros(2, 4, 2)
    logits[0, 0, 1] = 2.0   # predicts labels[0, 1] = 1: ce = ln(1 + e^-2)
    logits[0, 1, 0] = 1.0   # predicts labels[0, 2] = 1: ce = ln(1 + e^1)
    labels = torch.tensor([[-100, 1, 1, -100], [-100, -100, 0, 0]])  # row 1: two ln 2 tokens
    weights = torch.tensor([[1.0, 5.0, 1.0, 1.0], [1.0, 1.0, 1.0, 3.0]])
    a, b, ln2 = math.log(1 + math.exp(-2)), math.log(1 + math.e), math.log(2)
    sums, counts, wsums, wtotals = weighted_token_losses(logits, labels, weights)
    assert counts.tolist() == [2, 2]
    assert sums.tolist() == pytest.approx([a + b, 2 * ln2], rel=1e-6)
    assert wsums.tolist() == pytest.approx([5 * a + b, ln2 + 3 * ln2], rel=1e-6)
    assert wtotals.tolist() == pytest.approx([6.0, 4.0])
    # the step's loss: weighted token mean over the batch
    assert (wsums.sum() / wtotals.sum()).item() == pytest.approx((5 * a + b + 4 * ln2) / 10, rel=1e-6)
    # no weights: the plain token losses, unchanged
    s, c, ws, wt = weighted_token_losses(logits, labels, None)
    ref_s, ref_c = token_losses(logits, labels)
    assert torch.equal(s, ref_s) and torch.equal(ws, ref_s) and c.tolist() == ref_c.tolist() == wt.tolist()


def test_label_token_span_finds_the_whole_word():
    tok = build_tiny_tokenizer()  # one byte = one token
    target = "The speaker sounds sad. Saddest words: sad."
    assert label_token_span(tok, target, "sad") == (18, 22)  # " sad" (the space belongs to the word's token)
    assert label_token_span(tok, "Sad, clearly.", "sad") == (0, 3)
    assert label_token_span(tok, "The speaker is unhappy.", "happy") is None  # not a whole word
    assert label_token_span(tok, "No label here.", "angry") is None


def _batch(label_weight, targets, labels):
    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config("sequence", dynamic_length=True))
    rng = np.random.default_rng(0)
    examples = [{"id": f"r{i}", "wave": (0.1 * rng.standard_normal(16000)).astype(np.float32), "prompt": "Which emotion?",
                 "target": t, "task": "emotion" if l else "asr", "label": l} for i, (t, l) in enumerate(zip(targets, labels))]
    return model, Collator(processor, label_weight=label_weight)(examples)


def test_collator_weights_the_label_tokens_only():
    targets = ["The speaker sounds sad. It is slow.", "hello there"]
    _, plain = _batch(1.0, targets, ["sad", None])
    assert "loss_weights" not in plain  # weight 1: the batch is what it always was
    model, batch = _batch(4.0, targets, ["sad", None])
    w, labels = batch["loss_weights"], batch["labels"]
    assert w.shape == labels.shape
    first = int((labels[0] != -100).nonzero()[0])
    heavy = (w[0] == 4.0).nonzero().flatten().tolist()
    assert heavy == list(range(first + 18, first + 22))  # " sad" in the byte tokenizer
    assert bytes(labels[0, heavy].tolist()).decode() == " sad"
    assert torch.all(w[1] == 1.0)  # an ASR row has no label
    # and the loop's loss is the weighted mean of the model's token cross entropies
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "tasks", "ids", "loss_weights")}
    with torch.no_grad():
        logits = model(**inputs).logits
    _, counts, wsums, wtotals = weighted_token_losses(logits, labels, w)
    assert wtotals.tolist() == pytest.approx([counts[0].item() + 3 * 4, counts[1].item()])
