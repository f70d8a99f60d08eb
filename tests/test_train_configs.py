"""Shipped configs load, validate, and say what the paper says (Tables 1-3, section 4)."""

import pytest

from emoreason.config import load_config
from emoreason.configs import config_path, list_configs
from emoreason.train.schedule import build_schedule, num_passes

PAPER = [config_path(n) for n in list_configs() if n.startswith("paper/")]


def _schedule(cfg):
    t, m = cfg.train, cfg.model
    return build_schedule(t.schedule, t.epochs, t.switch_every, t.alternation_epochs, t.first_group, t.final_phase,
                          m.speech_encoder.trainable, m.emotion_encoder is not None and m.emotion_encoder.trainable)


def test_every_paper_table_row_has_a_config():
    names = {p.stem for p in PAPER}
    assert {f"table1-single-{t}" for t in ("label-only", "interpretive", "evidence")} <= names
    assert {"table2-none-joint", "table2-feature-joint", "table2-feature-alt1", "table2-feature-alt4",
            "table2-sequence-joint", "table2-sequence-alt1", "table2-sequence-alt4"} <= names
    encoders = ["whisper-large-v3", "whisper-small", "whisper-tiny", "hubert-xl", "emotion2vec-plus-large", "emotion2vec-plus-base"]
    assert {f"table3-alt{x}-{e}" for x in (1, 4) for e in encoders} <= names
    assert "table6-label-only" in names  # Table 6's reasoning row is table3-alt4-emotion2vec-plus-large
    assert {f"table7{row}-{stage}" for row in "ab" for stage in ("base", "emotion")} <= names


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_config_settings(path):
    cfg = load_config(path)
    t = cfg.train
    assert (t.epochs, t.lr, tuple(t.betas)) == (5, 5e-5, (0.9, 0.999))
    assert t.batch_size * 8 * t.grad_accum == 48  # global batch on the paper's 8 GPUs
    assert cfg.model.llm.path == "google/gemma-2-9b-it" and cfg.model.speech_encoder.path == "openai/whisper-large-v3"
    # extras the paper does not use are off (docs/training.md "Paper configs")
    assert cfg.data.skip_flagged_targets is False and cfg.data.max_target_tokens == 0
    phases = _schedule(cfg)
    if "-alt" in path.stem:
        x = int(path.stem.split("-alt")[1][0])
        assert t.schedule == "alternating" and t.switch_every == x and t.alternation_epochs == 4
        assert num_passes(phases) == 9 and phases[-1].name == "final"
    elif path.stem.startswith("table6"):
        assert t.schedule == "alternating" and t.switch_every == 4 and "label-only" in cfg.data.train_manifest
    elif path.stem.startswith("table7") and path.stem.endswith("-emotion"):
        # section 6: emotion encoder + adapter + LoRA on emotion tasks, then adapters + LoRA on all tasks
        assert t.schedule == "emotion_then_all" and t.init_from == f"runs/{path.stem.replace('-emotion', '-base')}"
        assert [p.name for p in phases] == ["emotion", "final"] and cfg.model.emotion_encoder.type == "emotion2vec"
        assert "emotion_encoder" in phases[0].param_groups and "speech_adapter" not in phases[0].param_groups
    else:
        assert t.schedule == "joint" and num_passes(phases) == 5
    fusion = path.stem.split("-")[1]
    if fusion in ("none", "single") or (path.stem.startswith("table7") and path.stem.endswith("-base")):
        assert cfg.model.fusion == "none" and cfg.model.emotion_encoder is None
    elif path.stem.startswith("table2"):
        assert cfg.model.fusion == fusion


def test_tiny_config_is_tiny():
    cfg = load_config(config_path("tiny"))
    assert cfg.model.llm.path == "builtin:tiny" and cfg.data.train_manifest.startswith("dummy:")
    assert [p.name for p in _schedule(cfg)] == ["speech", "emotion"] * 4 + ["final"]


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"])
def test_accelerate_configs_parse(name):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(config_path(f"accelerate/{name}")))
    assert cfg.num_processes == 8 and cfg.mixed_precision == "bf16"


# --- every packaged run config builds (architecture only: meta device, random init from presets) ------------

RUN_CONFIGS = [n for n in list_configs() if not n.startswith("accelerate/")]
# mini's packaged weights, as presets of the same architecture (benchmarks/paper_scale.py maps hub ids)
PACKAGED_PRESETS = {"packaged:whisper-tiny.en": "whisper-tiny", "packaged:whisper-base": "whisper-base",
                    "packaged:smollm2-135m-instruct": "smollm2-135m", "builtin:tiny": "llama-test"}


def _load_paper_scale():
    from emoreason.testing.benchmarks import load_benchmark

    module = load_benchmark("paper_scale", "paper_scale_presets")  # its own copy: the presets change below
    module.HUB_PRESETS.update(PACKAGED_PRESETS)
    return module


@pytest.mark.parametrize("name", RUN_CONFIGS)
def test_every_packaged_config_builds_on_meta(name):
    """The config's model at its real sizes (Gemma-2-9B, Whisper-large-v3, emotion2vec ...) on the meta
    device: no download, no memory; catches a config whose parts do not fit together."""
    import torch

    from emoreason.model.builder import build_model
    from emoreason.train.loop import set_phase  # noqa: F401  (the loop's module imports: layers stay importable)

    bench = _load_paper_scale()
    cfg = load_config(config_path(name))
    cfg = load_config(config_path(name), bench.random_overrides(cfg, tiny=False))
    with torch.device("meta"):
        model, processor = build_model(cfg.model)
    groups = model.parameter_groups()
    # transformers' HubertModel makes masked_spec_embed with the legacy torch.Tensor(n) constructor,
    # which ignores the device context (it lands on the CPU; accelerate's prepare moves it later)
    off_meta = [n for n, p in model.named_parameters() if not p.is_meta and not n.endswith("masked_spec_embed")]
    assert off_meta == []
    assert "speech_adapter" in groups or "fusion_adapter" in groups
    assert ("lora" in groups) == cfg.model.lora.enabled
    # every parameter group the schedule trains exists in the model (no phase trains nothing)
    keys = set(groups)
    for phase in _schedule(cfg):
        assert keys & set(phase.param_groups), f"{name}: phase {phase.name} trains no group of this model"
    if cfg.model.fusion == "sequence":
        assert {"speech_adapter", "emotion_adapter"} <= keys
