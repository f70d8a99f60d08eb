"""Typed run configuration: dataclasses, YAML files plus dotted ``key=value`` overrides, validation.

The config is validated here, at the edge, and then unpacked into plain arguments: library code
takes sizes and paths, not this object.

    cfg = load_config("configs/tiny.yaml", ["train.epochs=2", "model.fusion=feature"])
"""
from __future__ import annotations

from emoreason.errors import UserError

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PARAMETER_GROUPS = ("speech_encoder", "speech_adapter", "emotion_encoder", "emotion_adapter", "fusion_adapter", "lora")


class ConfigError(UserError):
    """A config file or override is invalid; the message names the offending key."""


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


@dataclass
class EncoderConfig:
    """One audio encoder and the adapter that turns its frames into LLM tokens."""

    type: str = "whisper"
    """Encoder family: ``whisper`` | ``hubert`` | ``emotion2vec`` | ``auto`` (any HF audio model
    exposing ``last_hidden_state``)."""
    path: str = ""
    """Hub id, local directory, or ``packaged:NAME`` (weights installed from the package index)."""
    init: str = "pretrained"
    """``pretrained`` loads weights from ``path``; ``random`` builds the architecture with random
    weights (from ``path``'s config when given, else from the size fields below)."""
    hidden_size: int | None = None
    """Random init only: model width (Whisper ``d_model``)."""
    num_layers: int | None = None
    num_heads: int | None = None
    ffn_size: int | None = None
    num_mel_bins: int | None = None
    """Whisper only: 80 or 128 log-mel bins (taken from the checkpoint when loading)."""
    dynamic_length: bool = False
    """Whisper only: encode only the real audio instead of zero-padding to 30 s (fewer audio tokens,
    much cheaper for short clips; the paper pads)."""
    num_tokens: int = 100
    """Audio tokens the adapter emits for a full 30 s window (paper: 100 speech, 10 emotion)."""
    trainable: bool = False
    """Whether the encoder itself may be updated (in its own training phase)."""


@dataclass
class LLMConfig:
    """The causal language model."""

    path: str = ""
    """Hub id, local directory, ``packaged:NAME``, or ``builtin:tiny`` (random tiny Llama with a
    byte-level tokenizer, for tests)."""
    gguf_file: str | None = None
    """GGUF file inside ``path`` (transformers dequantises it on load)."""
    init: str = "pretrained"
    """``pretrained`` | ``random`` (architecture from ``path``'s config or the size fields)."""
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    ffn_size: int | None = None
    vocab_size: int | None = None
    dtype: str = "float32"
    """Weights dtype: ``float32`` | ``bfloat16`` | ``float16`` | ``auto`` (bf16 on a capable GPU)."""
    attn_implementation: str | None = None
    """Passed to transformers (``sdpa``, ``eager``, ``flex_attention``); None lets it choose."""
    system_prompt: str | None = None
    """System message of every conversation. None: the chat template's default (some templates,
    e.g. SmolLM2's, inject a default system line); a string, even empty, replaces it (fewer tokens).
    Leave None for templates without a system role (Gemma-2)."""


@dataclass
class LoRAConfig:
    """LoRA on the LLM only (never inside the audio encoders)."""

    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class ModelConfig:
    """The dual-encoder AudioLLM."""

    speech_encoder: EncoderConfig = field(default_factory=EncoderConfig)
    emotion_encoder: EncoderConfig | None = field(default_factory=lambda: EncoderConfig(num_tokens=10))
    """None (or ``fusion: none``) gives the single-encoder baseline."""
    fusion: str = "sequence"
    """``sequence`` (speech tokens then emotion tokens) | ``feature`` (channel concat, one adapter)
    | ``none`` (speech encoder only)."""
    llm: LLMConfig = field(default_factory=LLMConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    labels: list[str] = field(
        default_factory=lambda: ["neutral", "happy", "sad", "angry", "frustrated", "excited", "surprised", "fearful", "disgusted", "other"]
    )
    """Candidate labels scored at inference (forced choice -> a probability per label)."""
    sentiment_labels: list[str] = field(default_factory=lambda: ["positive", "negative", "neutral"])


@dataclass
class DataConfig:
    """Where training rows come from and how tasks are grouped."""

    train_manifest: str = ""
    """Manifest JSONL path, or ``dummy:N`` for N generated clips (tests, smoke runs)."""
    eval_manifest: str | None = None
    train_split: str | None = "train"
    """Only rows whose ``split`` equals this are used (None: all rows)."""
    eval_split: str | None = "dev"
    task_groups: dict[str, list[str]] = field(
        default_factory=lambda: {"speech": ["asr", "sqa", "st"], "emotion": ["emotion", "sentiment", "er", "sr"]}
    )
    """Task -> group. The alternating schedule trains the speech side on ``speech`` tasks and the
    emotion side on ``emotion`` tasks."""
    max_audio_seconds: float = 30.0
    max_target_tokens: int = 256
    num_workers: int = 0
    skip_flagged_targets: bool = True
    """Leave out rows whose teacher target failed its checks after every retry
    (``meta.teacher_check.ok == false``, written by ``emoreason data teach``): a target that
    contradicts the gold label or quotes words never said would teach exactly that."""


@dataclass
class TrainConfig:
    """Optimisation and the task schedule."""

    schedule: str = "alternating"
    """``alternating`` (paper) | ``joint``."""
    epochs: int = 5
    switch_every: int = 1
    """Alternating: switch group every x epochs ("Alt x")."""
    alternation_epochs: int = 4
    """Alternating: epochs of alternation before the final phase."""
    first_group: str = "speech"
    final_phase: bool = True
    """Alternating: a last epoch training all adapters + LoRA on all tasks."""
    lr: float = 5e-5
    group_lr: dict[str, float] = field(default_factory=dict)
    """Learning rate per parameter group, overriding ``lr`` for the groups named (keys of
    ``AudioLLM.parameter_groups()``: speech_adapter, emotion_adapter, fusion_adapter, lora, ...),
    e.g. freshly initialised adapters faster than LoRA. Warmup and decay apply to every group."""
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_schedule: str = "cosine"
    """``cosine`` | ``linear`` | ``constant``."""
    batch_size: int = 8
    """Per-device micro batch."""
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    precision: str = "auto"
    """``auto`` (bf16 on a bf16-capable GPU or a CPU with native bf16, else fp32; emoreason.hardware) | ``no`` | ``bf16`` | ``fp16``."""
    gradient_checkpointing: bool = False
    seed: int = 0
    save_every_steps: int = 0
    """0: checkpoint at every epoch end only."""
    keep_checkpoints: int = 2
    log_every: int = 1
    max_steps: int = 0
    """0: no limit (smoke tests set a few)."""
    tensorboard: bool = False
    feature_cache: bool = False
    """Compute each clip's frames once per frozen encoder and reuse them in later epochs and phases
    (``emoreason.model.frame_cache``); trainable encoders always run. Pays off when the frames fit
    in ``feature_cache_memory_mb`` or on disk (the CPU configs turn it on); a paper-scale corpus of
    30 s Whisper-large frames (~4 MB per clip) needs ``feature_cache_dir`` on a large disk."""
    feature_cache_dir: str | None = None
    """Also keep those frames on disk here, shared by runs with the same frozen encoders (the demo
    gives its variants one); None: in memory only."""
    feature_cache_memory_mb: int = 2048
    """Bound of the in-memory part (least recently used clips are dropped first)."""


@dataclass
class Config:
    """A whole training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "run"


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------

_CHOICES = {
    "model.fusion": {"sequence", "feature", "none"},
    "model.speech_encoder.type": {"whisper", "hubert", "emotion2vec", "auto"},
    "model.emotion_encoder.type": {"whisper", "hubert", "emotion2vec", "auto"},
    "model.speech_encoder.init": {"pretrained", "random"},
    "model.emotion_encoder.init": {"pretrained", "random"},
    "model.llm.init": {"pretrained", "random"},
    "model.llm.dtype": {"float32", "bfloat16", "float16", "auto"},
    "train.schedule": {"alternating", "joint"},
    "train.lr_schedule": {"cosine", "linear", "constant"},
    "train.precision": {"auto", "no", "bf16", "fp16"},
    "train.first_group": {"speech", "emotion"},
}


def validate(cfg: Config) -> Config:
    """Check cross-field rules; raise ConfigError naming the key."""
    for key, allowed in _CHOICES.items():
        try:
            value = get_dotted(cfg, key)
        except ConfigError:
            continue  # optional section absent (emotion_encoder: null)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r}: expected one of {sorted(allowed)}")
    m = cfg.model
    if m.fusion != "none" and m.emotion_encoder is None:
        raise ConfigError(f"model.fusion={m.fusion!r} needs model.emotion_encoder (or set model.fusion=none)")
    for name in ("speech_encoder", "emotion_encoder"):
        enc = getattr(m, name)
        if enc is None:
            continue
        if enc.num_tokens < 1:
            raise ConfigError(f"model.{name}.num_tokens must be >= 1, got {enc.num_tokens}")
        if not enc.path and enc.init == "pretrained":
            raise ConfigError(f"model.{name}.path is empty: give a hub id, directory or packaged:NAME")
    if not m.llm.path and m.llm.init == "pretrained":
        raise ConfigError("model.llm.path is empty: give a hub id, directory, packaged:NAME or builtin:tiny")
    t = cfg.train
    for key in ("epochs", "switch_every", "batch_size", "grad_accum"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {getattr(t, key)}")
    if t.lr <= 0:
        raise ConfigError(f"train.lr must be > 0, got {t.lr}")
    group_keys = {"speech_encoder", "speech_adapter", "emotion_encoder", "emotion_adapter", "fusion_adapter", "lora"}
    for key, value in t.group_lr.items():
        if key not in group_keys:
            raise ConfigError(f"train.group_lr.{key}: unknown parameter group (expected one of {sorted(group_keys)})")
        if value <= 0:
            raise ConfigError(f"train.group_lr.{key} must be > 0, got {value}")
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {t.warmup_ratio}")
    if not cfg.data.train_manifest:
        raise ConfigError("data.train_manifest is empty: give a manifest path or dummy:N")
    groups = cfg.data.task_groups
    if set(groups) != {"speech", "emotion"}:
        raise ConfigError(f"data.task_groups must have exactly the keys 'speech' and 'emotion', got {sorted(groups)}")
    return cfg


# ----------------------------------------------------------------------------------------------
# Building dataclasses from plain dicts
# ----------------------------------------------------------------------------------------------


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """Return (inner type, is_optional) for ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming ``key``."""
    inner, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: null is not allowed here")
    if dataclasses.is_dataclass(inner):
        if isinstance(value, inner):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return from_dict(inner, value, prefix=key)
    origin = typing.get_origin(inner)
    if origin is list:
        (item_tp,) = typing.get_args(inner) or (Any,)
        if isinstance(value, str):  # "a,b,c" from the command line
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(inner)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, val_tp = typing.get_args(inner) or (Any, Any)
        return {str(k): _coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if inner is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if inner is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if inner is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a dict; unknown keys are errors (typos must not pass silently)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key {where}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict/list structure (tuples become lists) for YAML/JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def get_dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        if obj is None or not hasattr(obj, part):
            raise ConfigError(f"unknown key {key}")
        obj = getattr(obj, part)
    return obj


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if node.get(part) is None:
            node[part] = {}
        if not isinstance(node[part], dict):
            raise ConfigError(f"cannot set {key}: {part} is not a section")
        node = node[part]
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """``["train.lr=1e-4", "model.fusion=feature"]`` -> [(key, YAML-parsed value)]."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        out.append((key, value))
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read YAML (optional), apply dotted overrides, coerce types, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        data = loaded
    for key, value in parse_overrides(overrides or []):
        _set_dotted(data, key, value)
    return validate(from_dict(Config, data))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
