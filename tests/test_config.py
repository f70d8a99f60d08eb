import pytest

from emoreason.config import Config, ConfigError, load_config, save_config


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


BASE = """
model:
  speech_encoder: {type: whisper, path: openai/whisper-tiny}
  emotion_encoder: {type: whisper, path: openai/whisper-tiny, num_tokens: 10}
  llm: {path: builtin:tiny}
data: {train_manifest: dummy:8}
"""


def test_yaml_and_dotted_overrides(tmp_path):
    cfg = load_config(_write(tmp_path, BASE), ["train.lr=1e-4", "model.fusion=feature", "train.betas=[0.8,0.99]"])
    assert isinstance(cfg, Config)
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.model.fusion == "feature"
    assert cfg.train.betas == (0.8, 0.99)
    assert cfg.model.emotion_encoder.num_tokens == 10


def test_roundtrip(tmp_path):
    cfg = load_config(_write(tmp_path, BASE))
    out = tmp_path / "resolved.yaml"
    save_config(cfg, out)
    assert load_config(out) == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        (["train.lrr=1"], "unknown key train.lrr"),
        (["model.fusion=stack"], "model.fusion='stack'"),
        (["train.epochs=two"], "train.epochs: expected an integer"),
        (["train.epochs=0"], "train.epochs must be >= 1"),
        (["model.emotion_encoder=null"], "needs model.emotion_encoder"),
        (["noequals"], "not key=value"),
    ],
)
def test_errors_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(_write(tmp_path, BASE), override)


def test_single_encoder_baseline(tmp_path):
    cfg = load_config(_write(tmp_path, BASE), ["model.fusion=none", "model.emotion_encoder=null"])
    assert cfg.model.emotion_encoder is None


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "model: [unclosed"))
