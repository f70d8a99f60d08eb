"""The loop on the real tiny AudioLLM (emoreason.testing.tiny): each alternating phase changes
exactly its parameter groups (peft LoRA, adapters, trainable Whisper encoders), for both fusions."""
import pytest
import torch

from emoreason.config import DataConfig, TrainConfig
from emoreason.data.dataset import Collator, ManifestDataset
from emoreason.model.builder import build_model
from emoreason.testing.dummies import make_dummy_corpus
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
