"""The loop computes logits only from the first target-predicting position; losses are unchanged."""
import numpy as np
import torch

from emoreason.data.dataset import Collator
from emoreason.model.builder import build_model
from emoreason.testing.tiny import tiny_model_config
from emoreason.train.losses import first_target_position, token_losses


def test_first_target_position():
    labels = torch.full((2, 8), -100)
    assert first_target_position(labels) == 0
    labels[0, 5:7] = 3
    labels[1, 4:6] = 3
    assert first_target_position(labels) == 3


def test_kept_logits_give_the_same_losses():
    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config("sequence", dynamic_length=True))
    model.eval()
    rng = np.random.default_rng(0)
    examples = [
        {"id": f"r{i}", "wave": (0.1 * rng.standard_normal(n)).astype(np.float32), "prompt": "Which emotion?",
         "target": t, "task": "emotion"}
        for i, (n, t) in enumerate([(16000, "The speaker sounds sad."), (32000, "The speaker sounds happy, clearly.")])
    ]
    batch = Collator(processor)(examples)
    labels = batch.pop("labels")
    for key in ("tasks", "ids"):
        batch.pop(key)
    start = first_target_position(labels)
    assert start > 10  # the prompt (audio placeholders + instruction) is skipped
    with torch.no_grad():
        full = model(**batch).logits
        kept = model(**batch, logits_to_keep=labels.shape[1] - start).logits
    assert kept.shape[1] == labels.shape[1] - start
    s_full, c_full = token_losses(full, labels)
    s_kept, c_kept = token_losses(kept, labels[:, start:])
    assert torch.equal(c_full, c_kept)
    torch.testing.assert_close(s_kept, s_full, rtol=1e-5, atol=1e-5)
