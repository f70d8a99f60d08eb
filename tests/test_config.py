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
    assert cfg.train.betas == [0.8, 0.99]  # a list: OmegaConf has no fixed-length tuple
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
        (["model.speech_encoder.pth=x"], "unknown key model.speech_encoder.pth (known: dynamic_length"),
        (["train.gradient_checkpointing=maybe"], "train.gradient_checkpointing: expected true/false, got 'maybe'"),
        (["train.report_to=comet"], "train.report_to='comet': expected one of"),
        (["train.group_lr={lora: fast}"], "train.group_lr.lora: expected a number, got 'fast'"),
        (["model.speech_encoder=3"], "model.speech_encoder: expected a mapping, got 3"),
        (["model.speech_encoder=null"], "model.speech_encoder: null is not allowed here"),
        (["model.llm.system_prompt=[unclosed"], "not valid YAML"),
        (["train.betas=[0.9]"], "train.betas must be two numbers"),
        (["train.eval_every_steps=-1"], "train.eval_every_steps must be >= 0"),
        (["train.final_from_best=true"], "train.final_from_best=true needs data.eval_manifest"),
    ],
)
def test_errors_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(_write(tmp_path, BASE), override)


def test_override_conveniences(tmp_path):
    cfg = load_config(_write(tmp_path, BASE), ["model.labels=a,b,c", "train.gradient_checkpointing=yes", "model.llm.system_prompt=",
                                               "data.eval_manifest=dummy:4", "train.final_from_best=true"])
    assert cfg.model.labels == ["a", "b", "c"]  # comma-separated list from a shell
    assert cfg.train.gradient_checkpointing is True
    assert cfg.model.llm.system_prompt == ""  # `key=` is the empty string, not null
    assert cfg.train.final_from_best and cfg.data.eval_split == "dev"


def test_from_dict_names_the_section():
    from emoreason.config import ModelConfig, from_dict

    assert from_dict(ModelConfig, {"llm": {"path": "x"}}).llm.path == "x"
    with pytest.raises(ConfigError, match="unknown key model.llm.pth"):
        from_dict(ModelConfig, {"llm": {"pth": "x"}}, prefix="model")


def test_single_encoder_baseline(tmp_path):
    cfg = load_config(_write(tmp_path, BASE), ["model.fusion=none", "model.emotion_encoder=null"])
    assert cfg.model.emotion_encoder is None


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "model: [unclosed"))


@pytest.mark.parametrize("tracker, package", [("tensorboard", "tensorboard"), ("wandb", "wandb"), ("mlflow", "mlflow")])
def test_report_to_a_missing_tracker_fails_at_config_time(tmp_path, monkeypatch, tracker, package):
    import importlib.util

    real = importlib.util.find_spec
    # as on a machine without the tracker (whatever this one has installed)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in (package, "tensorboardX") else real(name, *a))
    with pytest.raises(ConfigError, match=rf"^train.report_to={tracker} needs the {package} package, which is not "
                                          rf"installed: pip install 'emoreason\[{tracker}\]'$"):
        load_config(_write(tmp_path, BASE), [f"train.report_to={tracker}"])
    assert load_config(_write(tmp_path, BASE), ["train.report_to=none"]).train.report_to == "none"
