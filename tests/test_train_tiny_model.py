"""The loop on the real tiny AudioLLM (emoreason.testing.tiny): each alternating phase changes
exactly its parameter groups (peft LoRA, adapters, trainable Whisper encoders), for both fusions."""
import pytest
import torch

from emoreason.config import DataConfig, TrainConfig
from emoreason.data.dataset import Collator, ManifestDataset
from emoreason.model.builder import build_model
from emoreason.data.dummy import make_dummy_corpus
from emoreason.testing.tiny import tiny_model_config
from emoreason.train.loop import Trainer
from emoreason.train.schedule import build_schedule


def snapshot(model):
    out = {k: torch.cat([p.detach().flatten() for p in ps]).clone() for k, ps in model.parameter_groups().items()}
    out["llm_base"] = model.llm.get_input_embeddings().weight.detach().clone()
    return out


@pytest.mark.parametrize("fusion, speech_side, emotion_side, final_side", [
    ("sequence", {"speech_encoder", "speech_adapter", "lora"}, {"emotion_encoder", "emotion_adapter", "lora"},
     {"speech_adapter", "emotion_adapter", "lora"}),
    ("feature", {"speech_encoder", "fusion_adapter", "lora"}, {"emotion_encoder", "fusion_adapter", "lora"},
     {"fusion_adapter", "lora"}),
])
def test_alternating_phases_on_the_tiny_model(tmp_path, fusion, speech_side, emotion_side, final_side):
    cfg = tiny_model_config(fusion=fusion, dynamic_length=True)
    cfg.speech_encoder.trainable = True
    cfg.emotion_encoder.trainable = True
    model, processor = build_model(cfg)
    dataset = ManifestDataset(make_dummy_corpus(10, tmp_path / "d"), DataConfig().task_groups)  # 4 speech + 4 emotion
    phases = build_schedule("alternating", 2, 1, 1, speech_encoder_trainable=True, emotion_encoder_trainable=True)
    train = TrainConfig(epochs=2, alternation_epochs=1, batch_size=4, lr=1e-2, warmup_ratio=0.0, weight_decay=0.1, precision="no")
    trainer = Trainer(model, dataset, Collator(processor), phases, train, tmp_path / "run", processor=processor)
    seen = []
    for stop, expected in ((1, speech_side), (2, emotion_side), (None, final_side)):
        before = snapshot(model)
        seen += trainer.fit(stop_after=stop)
        after = snapshot(model)
        assert {k for k in before if not torch.equal(before[k], after[k])} == expected
    assert [r.phase for r in seen] == ["speech", "emotion", "final", "final"]
    assert all(r.loss == r.loss and r.loss > 0 for r in seen)


def _two_steps(tmp_path, name, **train_kw):
    torch.manual_seed(0)
    cfg = tiny_model_config(dynamic_length=True)
    cfg.emotion_encoder.trainable = True
    model, processor = build_model(cfg)
    dataset = ManifestDataset(make_dummy_corpus(10, tmp_path / "d"), DataConfig().task_groups)
    phases = build_schedule("joint", 1, emotion_encoder_trainable=True)
    kw = dict(epochs=1, batch_size=4, lr=1e-2, warmup_ratio=0.0, max_steps=2, lr_schedule="constant", precision="no")
    kw.update(train_kw)
    trainer = Trainer(model, dataset, Collator(processor), phases, TrainConfig(**kw), tmp_path / name)
    return model, [r.loss for r in trainer.fit()]


def test_gradient_checkpointing_changes_memory_not_results(tmp_path):
    _, plain = _two_steps(tmp_path, "plain")
    model, ckpt = _two_steps(tmp_path, "ckpt", gradient_checkpointing=True)
    assert model.llm.get_base_model().model.gradient_checkpointing
    assert any(getattr(m, "gradient_checkpointing", False) is True for m in model.emotion_encoder.modules())
    assert ckpt == pytest.approx(plain, rel=1e-5)  # step 2 depends on step 1's gradients


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state whose precision cannot change: reset around a test
    that uses another precision, so tests before and after keep working."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_bf16_autocast_runs_on_cpu(tmp_path, fresh_accelerate_state):
    _, fp32 = _two_steps(tmp_path, "fp32")
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    _, bf16 = _two_steps(tmp_path, "bf16", precision="bf16")
    assert all(l == l for l in bf16)
    assert bf16 == pytest.approx(fp32, abs=0.1)
