"""Small additions the demo made to shared code: per-group learning rates and the system prompt."""
from __future__ import annotations

import pytest
import torch

from emoreason.config import ConfigError, load_config
from emoreason.configs import config_path
from emoreason.train.optim import build_optimizer

TINY = config_path("tiny")


def test_group_lr_sets_each_param_group():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = build_optimizer({"speech_adapter": [a], "lora": [b]}, ["speech_adapter", "lora"], 1e-4,
                          group_lr={"speech_adapter": 2e-3})
    assert {g["name"]: g["lr"] for g in opt.param_groups} == {"speech_adapter": 2e-3, "lora": 1e-4}


def test_group_lr_validation():
    cfg = load_config(TINY, ["train.group_lr={emotion_adapter: 0.01}"])
    assert cfg.train.group_lr == {"emotion_adapter": 0.01}
    with pytest.raises(ConfigError, match="group_lr.adapters: unknown parameter group"):
        load_config(TINY, ["train.group_lr={adapters: 0.01}"])
    with pytest.raises(ConfigError, match="must be > 0"):
        load_config(TINY, ["train.group_lr={lora: 0}"])


def test_system_prompt_rendered_and_saved(tmp_path):
    from emoreason.model.processing import AudioProcessor
    from emoreason.model.builder import build_model

    cfg = load_config(TINY, ["model.llm.system_prompt=Be brief."])
    model, processor = build_model(cfg.model)
    ids, labels = processor.render("Which emotion?", "The speaker sounds sad.", 3)
    text = processor.tokenizer.decode(ids)
    assert "Be brief." in text and text.index("Be brief.") < text.index("Which emotion?")
    assert processor.tokenizer.decode([t for t in labels if t != -100]).startswith("The speaker sounds sad.")
    processor.save_pretrained(tmp_path)
    assert AudioProcessor.from_pretrained(tmp_path).system_prompt == "Be brief."
    default = build_model(load_config(TINY).model)[1]
    assert default.system_prompt is None and "Be brief." not in default.tokenizer.decode(default.render("q", None, 1)[0])
