"""train.init_from: a trained (speech-only) model's weights loaded into a freshly built dual-encoder model
(Table 7), through the recipe; mismatches are one-line errors."""
import pytest
import torch

from emoreason.config import load_config
from emoreason.configs import config_path
from emoreason.errors import UserError
from emoreason.model.builder import build_model, save_pretrained
from emoreason.train.recipe import TrainingRecipe
from emoreason.train.warm_start import warm_start

BASE = ["model.fusion=none", "model.emotion_encoder=null", "train.schedule=joint"]


@pytest.fixture
def base_run(tmp_path):
    """RUN_DIR/final of a single-encoder tiny model whose speech adapter and LoRA were 'trained' (set to marks)."""
    cfg = load_config(config_path("tiny"), BASE)
    torch.manual_seed(1)
    model, _ = build_model(cfg.model)
    with torch.no_grad():
        for i, p in enumerate(model.parameter_groups()["speech_adapter"]):
            p.fill_(0.5 + i)
        for p in model.parameter_groups()["lora"]:
            p.fill_(0.25)
    save_pretrained(model, cfg.model, tmp_path / "base" / "final")
    return tmp_path / "base", model


def test_recipe_warm_starts_the_new_model_from_the_base_run(base_run, tmp_path):
    run_dir, base = base_run
    cfg = load_config(config_path("tiny"), [f"train.init_from={run_dir}", "train.schedule=emotion_then_all",
                                            "train.alternation_epochs=4"])
    fresh, _ = TrainingRecipe(load_config(config_path("tiny")), tmp_path / "a").setup_model()
    model, _ = TrainingRecipe(cfg, tmp_path / "b").setup_model()
    groups, base_groups, fresh_groups = model.parameter_groups(), base.parameter_groups(), fresh.parameter_groups()
    for key in ("speech_adapter", "lora"):  # trained weights of the base run
        assert all(torch.equal(a, b) for a, b in zip(groups[key], base_groups[key]))
    # the base's randomly initialised LLM and speech encoder come along (random_base.safetensors)
    assert torch.equal(model.llm.get_input_embeddings().weight, base.llm.get_input_embeddings().weight)
    # the new emotion side keeps the seeded fresh init
    for key in ("emotion_adapter", "emotion_encoder"):
        assert all(torch.equal(a, b) for a, b in zip(groups[key], fresh_groups[key]))


def test_mismatched_weights_are_a_one_line_error_naming_keys(base_run):
    run_dir, _ = base_run
    wider = load_config(config_path("tiny"), ["model.llm.hidden_size=32", "model.llm.num_heads=2"])
    model, _ = build_model(wider.model)
    with pytest.raises(UserError, match=r"train.init_from: .*(has shape|do not fit)") as err:
        warm_start(model, run_dir)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="holds trainable.safetensors"):
        warm_start(model, run_dir / "nope")


def test_trained_weights_this_model_would_not_save_are_refused(tmp_path):
    """A base run that trained its speech encoder, warm-starting a model whose speech encoder is frozen:
    final/ would silently drop the trained encoder, so init_from refuses."""
    base_cfg = load_config(config_path("tiny"), BASE + ["model.speech_encoder.trainable=true"])
    base, _ = build_model(base_cfg.model)
    save_pretrained(base, base_cfg.model, tmp_path / "final")
    model, _ = build_model(load_config(config_path("tiny")).model)
    with pytest.raises(UserError, match=r"speech_encoder\..*trainable: true"):
        warm_start(model, tmp_path)
