"""data.max_target_tokens reaches the processor through the collator and cuts only the response."""
import numpy as np

from emoreason.data.dataset import Collator
from emoreason.model.builder import build_model
from emoreason.testing.tiny import tiny_model_config


def _example(i: int, target: str) -> dict:
    wave = (0.1 * np.random.default_rng(i).standard_normal(16000)).astype(np.float32)
    return {"id": f"r{i}", "wave": wave, "prompt": "Which emotion?", "target": target, "task": "emotion"}


def test_max_target_tokens_cuts_the_response_only():
    _, processor = build_model(tiny_model_config("sequence", dynamic_length=True))
    long_target = "The speaker sounds sad. " + "It drags on and on. " * 20
    examples = [_example(0, long_target), _example(1, "The speaker sounds happy.")]
    full = Collator(processor)(examples)
    cut = Collator(processor, max_target_tokens=12)(examples)
    kept_full = [(row != -100).sum().item() for row in full["labels"]]
    kept_cut = [(row != -100).sum().item() for row in cut["labels"]]
    assert kept_full[0] > 12 and kept_cut[0] == 12
    assert kept_cut[1] == min(kept_full[1], 12)
    # The prompt part (audio placeholders included) is identical, and the cut keeps the label sentence.
    prompt_len = int((full["labels"][0] == -100).logical_and(full["attention_mask"][0] == 1).sum())
    assert cut["input_ids"][0, :prompt_len].tolist() == full["input_ids"][0, :prompt_len].tolist()
    kept_ids = cut["labels"][0][cut["labels"][0] != -100].tolist()
    assert processor.tokenizer.decode(kept_ids).startswith("The speaker")  # byte-level tiny tokenizer: 12 bytes
    assert cut["input_ids"].shape[1] < full["input_ids"].shape[1]
