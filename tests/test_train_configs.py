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


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_config_settings(path):
    cfg = load_config(path)
    t = cfg.train
    assert (t.epochs, t.lr, tuple(t.betas)) == (5, 5e-5, (0.9, 0.999))
    assert t.batch_size * 8 * t.grad_accum == 48  # global batch on the paper's 8 GPUs
    assert cfg.model.llm.path == "google/gemma-2-9b-it" and cfg.model.speech_encoder.path == "openai/whisper-large-v3"
    phases = _schedule(cfg)
    if "-alt" in path.stem:
        x = int(path.stem.split("-alt")[1][0])
        assert t.schedule == "alternating" and t.switch_every == x and t.alternation_epochs == 4
        assert num_passes(phases) == 9 and phases[-1].name == "final"
    else:
        assert t.schedule == "joint" and num_passes(phases) == 5
    fusion = path.stem.split("-")[1]
    if fusion in ("none", "single"):
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
