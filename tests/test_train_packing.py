"""Sequence packing (emoreason.model.packing): packed batches give the unpacked batch's logits,
losses and gradients on the tiny model; placeholders, labels and per-token weights stay with their example."""
import numpy as np
import pytest
import torch

from emoreason.data.dataset import Collator
from emoreason.model.builder import build_model
from emoreason.model.packing import first_fit_decreasing, pack_batch, packed_positions, token_efficiency
from emoreason.testing.tiny import tiny_model_config
from emoreason.train.losses import example_token_losses, first_target_position, token_losses

# (seconds of audio, target): one long row and short ones that fit beside each other in its length
ROWS = [(0.5, "Sad."), (8.0, "The speaker sounds happy: the pitch rises and the voice is loud and quick."),
        (0.6, "Angry, clearly."), (0.4, "Neutral."), (1.0, "It sounds calm to me.")]
TASKS = ["emotion", "asr", "sentiment", "emotion", "sqa"]


def _examples():
    rng = np.random.default_rng(0)
    return [{"id": f"r{i}", "wave": (0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32),
             "prompt": "Which emotion?", "target": t, "task": TASKS[i]} for i, (s, t) in enumerate(ROWS)]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config("sequence", dynamic_length=True))
    return model, processor


def test_first_fit_decreasing():
    assert first_fit_decreasing([3, 9, 4, 2, 5], 9) == [[1], [4, 2], [0, 3]]
    assert first_fit_decreasing([4, 4], 4) == [[0], [1]]
    with pytest.raises(ValueError, match="capacity"):
        first_fit_decreasing([5], 4)


def test_packed_positions_restart_per_example():
    index = torch.tensor([[0, 0, 0, 1, 1, -1], [2, 2, 3, 3, 3, 3]])
    assert packed_positions(index).tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 0, 1, 2, 3]]


def test_pack_batch_keeps_each_example(tiny):
    _, processor = tiny
    examples = _examples()
    batch = Collator(processor)(examples)
    batch["loss_weights"] = torch.rand(batch["labels"].shape)
    packed = pack_batch(batch)
    n, length = batch["input_ids"].shape
    assert packed["input_ids"].shape[1] == length and packed["input_ids"].shape[0] < n
    computed, useful = token_efficiency([packed["attention_mask"]])
    assert useful == int(batch["attention_mask"].sum()) and computed < batch["attention_mask"].numel()
    index = packed["example_index"]
    flat = index[index >= 0]
    assert torch.equal(flat, flat.sort().values)  # row-major order is example order (placeholder fill order)
    order = [int(i[1:]) for i in packed["ids"]]
    assert sorted(order) == list(range(n)) and packed["tasks"] == [TASKS[i] for i in order]
    for new, old in enumerate(order):
        real = batch["attention_mask"][old].bool()
        here = index == new
        assert torch.equal(packed["input_ids"][here], batch["input_ids"][old][real])
        assert torch.equal(packed["labels"][here], batch["labels"][old][real])
        assert torch.equal(packed["loss_weights"][here], batch["loss_weights"][old][real])
        placeholders = int((packed["input_ids"][here] == processor.audio_id).sum())
        assert placeholders == processor.num_audio_tokens(examples[old]["wave"].size)
        assert torch.equal(packed["speech_features"][new], batch["speech_features"][old])
        assert torch.equal(packed["emotion_attention_mask"][new], batch["emotion_attention_mask"][old])
    assert not bool((packed["labels"][index < 0] != -100).any())


def test_pack_batch_refuses_prompt_batches(tiny):
    _, processor = tiny
    batch = processor(waves=[np.zeros(8000, np.float32)], prompts=["Which emotion?"])
    with pytest.raises(ValueError, match="training batches"):
        pack_batch(batch)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_and_losses_equal_unpacked(tiny, attn):
    model, processor = tiny
    model.llm.set_attn_implementation(attn)
    model.eval()
    batch = Collator(processor)(_examples())
    packed = pack_batch(batch)
    order = [int(i[1:]) for i in packed["ids"]]
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "tasks", "ids")}
    packed_inputs = {k: v for k, v in packed.items() if k not in ("labels", "tasks", "ids")}
    try:
        with torch.no_grad():
            plain = model(**inputs).logits
            together = model(**packed_inputs).logits
    finally:
        model.llm.set_attn_implementation("sdpa")
    for new, old in enumerate(order):
        real = batch["attention_mask"][old].bool()
        torch.testing.assert_close(together[packed["example_index"] == new], plain[old][real], rtol=1e-4, atol=1e-4)
    sums, counts = token_losses(plain, batch["labels"])
    p_sums, p_counts, _, _ = example_token_losses(together, packed["labels"], packed["example_index"])
    assert torch.equal(p_counts, counts[order])
    torch.testing.assert_close(p_sums, sums[order], rtol=1e-4, atol=1e-4)


def test_packed_gradients_equal_unpacked(tiny):
    model, processor = tiny
    model.train()
    params = [p for group in model.parameter_groups().values() for p in group]
    for p in params:
        p.requires_grad_(True)
    batch = Collator(processor)(_examples())

    def grads(b):
        model.zero_grad(set_to_none=True)
        labels = b["labels"]
        start = first_target_position(labels)
        inputs = {k: v for k, v in b.items() if k not in ("labels", "tasks", "ids")}
        logits = model(**inputs, logits_to_keep=labels.shape[1] - start).logits
        index = b.get("example_index")
        _, _, weighted, _ = example_token_losses(logits, labels[:, start:], None if index is None else index[:, start:])
        weighted.sum().backward()
        return [p.grad.clone() for p in params]

    for plain, packed in zip(grads(batch), grads(pack_batch(batch))):
        torch.testing.assert_close(packed, plain, rtol=1e-4, atol=1e-5)
    model.zero_grad(set_to_none=True)


def test_example_losses_weighted_total():
    logits = torch.randn(1, 6, 7)
    labels = torch.tensor([[-100, 2, 3, -100, 4, 5]])
    index = torch.tensor([[0, 0, 0, 1, 1, 1]])
    weights = torch.tensor([[1.0, 1.0, 3.0, 1.0, 2.0, 1.0]])
    sums, counts, weighted, totals = example_token_losses(logits, labels, index, weights)
    assert counts.tolist() == [2, 2] and totals.tolist() == [4.0, 3.0]
    per = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="none")
    torch.testing.assert_close(sums, torch.stack([per[0] + per[1], per[3] + per[4]]))
    torch.testing.assert_close(weighted, torch.stack([per[0] + 3 * per[1], 2 * per[3] + per[4]]))


def test_pack_batch_leaves_unpackable_batches_alone(tiny):
    _, processor = tiny
    examples = _examples()[1:3]  # the long row and one short row: nothing shares a row
    batch = Collator(processor)(examples[:1] + examples[:1])
    assert pack_batch(batch) is batch
