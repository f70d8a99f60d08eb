"""Typed run configuration: dataclasses, YAML files plus dotted ``key=value`` overrides, validation.

The dataclasses are the schema; OmegaConf merges the YAML file and the overrides onto their
defaults and converts each value to the annotated type. The config is validated here, at the edge,
and then unpacked into plain arguments: library code takes sizes and paths, not this object.

    cfg = load_config(config_path("tiny"), ["train.epochs=2", "model.fusion=feature"])  # emoreason.configs

A little over 400 lines on purpose: the schema is one readable file, every field with its
docstring, next to the checks between fields.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError
from omegaconf.nodes import BooleanNode, FloatNode, IntegerNode, StringNode

from emoreason.errors import UserError

PARAMETER_GROUPS = ("speech_encoder", "speech_adapter", "emotion_encoder", "emotion_adapter", "fusion_adapter", "lora")
"""Keys of ``AudioLLM.parameter_groups()``: what ``train.group_lr`` may name."""


class ConfigError(UserError):
    """A config file or override is invalid; the message names the offending key."""


# --- Sections ---------------------------------------------------------------------------------


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
    """None (or ``fusion: none``) gives the single-encoder baseline. A YAML section is merged onto
    this default, so fields it leaves out keep these values (``num_tokens`` 10)."""
    fusion: str = "sequence"
    """``sequence`` (speech tokens then emotion tokens) | ``feature`` (channel concat, one adapter)
    | ``none`` (speech encoder only)."""
    adapter_output_norm: bool = False
    """Normalise every adapter output token to the RMS of the LLM's token embeddings (a
    parameter-free RMS norm, ``emoreason.model.adapter.OutputRMS``), so audio tokens enter the LLM
    at the text tokens' scale. False: the paper's plain MLP output. Saved in the model's config, so
    inference builds the same adapters. See docs/training.md, "Label accuracy"."""
    emotion_pooled_tokens: int = 0
    """Extra "utterance" emotion tokens per clip (``fusion: sequence``, or ``none`` with
    ``single_encoder_pooled``, then over the speech encoder's frames): the emotion encoder's
    frames pooled over the clip (mean and std, what a linear probe on the encoder sees) and mapped
    by their own small MLP to this many LLM tokens, placed after the emotion adapter's frame tokens
    (``emoreason.model.adapter.PooledTokens``). 0: the paper's frame tokens only; ignored with
    ``fusion`` feature, and none unless ``single_encoder_pooled`` (so ``model.fusion=none`` on
    mini.yaml just works). :func:`pooled_token_count` says where they go. Saved in the
    model's config and the processor's. See docs/training.md, "Label accuracy"."""
    single_encoder_pooled: bool = False
    """With ``fusion: none`` (speech encoder only): the speech adapter appends the
    ``emotion_pooled_tokens`` (of ``emotion_pooled_kind``), pooled from the speech encoder's frames,
    as the emotion adapter does with the dual encoder (none when ``emotion_pooled_tokens`` is 0).
    Then a single- vs dual-encoder comparison differs in the encoders only, not in the recipe (the
    demo's ``detailed-single`` sets it; docs/demo.md "Dual vs single encoder, same recipe").
    False: the paper's single-encoder baseline, frame tokens only (every run made before the key
    existed)."""
    emotion_pooled_kind: str = "mlp"
    """What the ``emotion_pooled_tokens`` are: ``mlp`` (a small MLP from the pooled statistics into the
    LLM's input space) or ``labels`` (a linear head over ``model.labels`` whose softmax mixes the LLM's
    own embeddings of the label words: ``emoreason.model.adapter.LabelMixtureTokens``)."""
    llm: LLMConfig = field(default_factory=LLMConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    labels: list[str] = field(
        default_factory=lambda: ["neutral", "happy", "sad", "angry", "frustrated", "excited", "surprised", "fearful", "disgusted", "other"]
    )
    """Candidate labels scored at inference (forced choice -> a probability per label)."""
    sentiment_labels: list[str] = field(default_factory=lambda: ["positive", "negative", "neutral"])


def pooled_token_count(m: ModelConfig) -> int:
    """Clip-level pooled tokens the model's last frame adapter appends: ``emotion_pooled_tokens``
    on the emotion adapter (``fusion: sequence``) or on the speech adapter (``fusion: none`` with
    ``single_encoder_pooled``); 0 otherwise (``feature`` fusion has none)."""
    if m.fusion == "sequence" or (m.fusion == "none" and m.single_encoder_pooled):
        return m.emotion_pooled_tokens
    return 0


@dataclass
class DataConfig:
    """Where training rows come from and how tasks are grouped."""

    train_manifest: str = ""
    """Manifest JSONL path, ``dummy:N`` for N generated clips (tests, smoke runs), a ``datasets``
    ``save_to_disk`` directory, a ``.parquet`` file or ``hf:ID`` (``emoreason.data.hf_source``; column
    mapping in ``columns`` or as ``SOURCE#field=column,...``)."""
    eval_manifest: str | None = None
    """Validation manifest (or ``dummy:N``); its rows whose ``split`` equals ``eval_split`` (None:
    all) give a validation loss per task during training."""
    columns: dict[str, str] = field(default_factory=dict)
    """For dataset sources (a ``datasets`` directory, parquet, ``hf:ID``): manifest field -> the
    dataset's column, e.g. ``{audio: speech, label: emotion}``; ``"=value"`` gives every row a constant
    (``{task: "=emotion"}``). Columns already named like manifest fields need no entry."""
    train_split: str | None = "train"
    """Only rows whose ``split`` equals this are used (None: all rows)."""
    eval_split: str | None = "dev"
    """See ``eval_manifest``."""
    task_groups: dict[str, list[str]] = field(
        default_factory=lambda: {"speech": ["asr", "sqa", "st"], "emotion": ["emotion", "sentiment", "er", "sr"]}
    )
    """Group -> tasks. The alternating schedule trains the speech side on ``speech`` tasks and the
    emotion side on ``emotion`` tasks."""
    max_audio_seconds: float = 30.0
    max_target_tokens: int = 256
    num_workers: int = 0
    skip_bad_audio: bool = False
    """Every clip's header is read before training; a missing, empty, unreadable, too short or too
    long file stops the run there naming ``manifest:line``. True leaves such rows out instead
    (each one is listed on stderr)."""
    skip_flagged_targets: bool = True
    """Leave out rows whose teacher target failed its checks after every retry
    (``meta.teacher_check.ok == false``, written by ``emoreason data teach``): a target that
    contradicts the gold label or quotes words never said would teach exactly that."""
    transcript_in_prompt: bool = False
    """"Transcribe, then reason": emotion / sentiment prompts carry the clip's transcript after the
    audio (``Transcript: "..."`` then the instruction). Training renders the manifest's reference
    transcript; inference generates the transcript first with the model's own ASR task (so
    ``asr`` must be a trained task) and renders that. Targets are unchanged (same teacher text).
    Saved with the model (``processor_config.json``), so inference knows. False: the paper's
    end-to-end recipe, the transcript only in the audio."""


@dataclass
class TrainConfig:
    """Optimisation and the task schedule."""

    schedule: str = "alternating"
    """``alternating`` (paper, Tables 2-3) | ``joint`` | ``emotion_then_all`` (Table 7: the emotion
    side for ``alternation_epochs`` epochs, then all adapters + LoRA on all tasks)."""
    init_from: str | None = None
    """Warm start: a run directory (its ``final/``) or model directory whose trained weights
    (adapters, LoRA, trained encoders, randomly initialised parts) are loaded into the freshly built
    model before training (Table 7). Parts it lacks (a new emotion encoder) keep their fresh init."""
    epochs: int = 5
    switch_every: int = 1
    """Alternating: switch group every x epochs ("Alt x")."""
    alternation_epochs: int = 4
    """Alternating: epochs of alternation before the final phase; ``emotion_then_all``: epochs of
    the emotion phase."""
    first_group: str = "speech"
    final_phase: bool = True
    """Alternating: a last epoch training all adapters + LoRA on all tasks."""
    lr: float = 5e-5
    group_lr: dict[str, float] = field(default_factory=dict)
    """Learning rate per parameter group (``PARAMETER_GROUPS``), overriding ``lr`` for the groups
    named, e.g. freshly initialised adapters faster than LoRA. Warmup and decay apply to every group."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW (beta1, beta2). A list, not ``tuple[float, float]``: OmegaConf reads a tuple
    annotation as a list of any length, so ``validate`` checks there are two."""
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_schedule: str = "cosine"
    """``cosine`` | ``linear`` | ``constant``."""
    lr_schedule_scope: str = "phase"
    """What one warmup + decay spans: ``phase`` (each phase, for the groups it trains: a fresh
    adapter warms up, every phase starts at the peak lr) | ``group`` (the steps in which each group
    is trained) | ``run`` (all steps, one clock for every group: the schedule before this option)."""
    batch_size: int = 8
    """Per-device micro batch."""
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    label_loss_weight: float = 1.0
    """Weight of the gold label's tokens in emotion / sentiment targets relative to the other target
    tokens (the loss is the weighted token mean; 1: the plain token mean). Reasoning targets state
    the label once in ~50 tokens, so without it the explanation dominates the gradient
    (docs/training.md, "Label accuracy")."""
    pooled_label_loss_weight: float = 0.0
    """With label-anchored pooled tokens (``model.emotion_pooled_kind: labels``): weight of an
    auxiliary cross entropy between their label head and each emotion row's gold label, added to the
    token loss (mean over the step's labelled clips). The head is then trained like a linear probe
    from the first step instead of only through the LLM. 0: off (the paper's loss alone)."""
    pooled_head_init: str = "zero"
    """How the label-anchored pooled tokens' head starts (``model.emotion_pooled_kind: labels``):
    ``zero`` (a uniform mix of the label embeddings) or ``probe`` (a logistic regression fitted on
    the training split's emotion clips before the first step: ``emoreason.train.head_init``). A model
    without such a head ignores it."""
    pooled_head_lr: float | None = None
    """Learning rate of the label-anchored pooled tokens' head (its LayerNorm and linear layer, part
    of the ``emotion_adapter`` group): None = the group's own lr; 0 = kept as it starts (with
    ``pooled_head_init: probe``, the fitted probe). Why: at the adapters' lr (2e-3) a few noisy early
    steps can drag a probe-initialised head onto one or two labels (docs/training.md, "Seeds")."""
    precision: str = "auto"
    """``auto`` (bf16 on a bf16-capable GPU or a CPU with native bf16, else fp32; emoreason.hardware) | ``no`` | ``bf16`` | ``fp16``."""
    gradient_checkpointing: bool = False
    packing: bool = True
    """Pack several short rows of a micro batch into one sequence, attention confined to each row
    (``emoreason.model.packing``): fewer padding tokens computed, the same losses and gradients.
    Validation batches stay unpacked."""
    group_by_length: bool = False
    """Draw batches of rows of similar token length (``emoreason.train.sampler``, windows of
    ``length_group_batches`` batches): less padding, at the cost of less random batch composition.
    Off by default: it changes which rows meet in a batch, so a run is not the same run with it on,
    and on the full demo it cost the reasoning variants label agreement (docs/training.md)."""
    length_split: int = 1
    """Run each micro batch as this many sub-batches of rows of similar length (its rows sorted by
    token length and cut into contiguous parts, the gradients accumulated before the one optimizer
    step): the same rows, loss and gradient per step as one batch, fewer padding tokens computed.
    1: off, the default everywhere: on a 2-core CPU two small forwards cost what one padded one
    does (docs/training.md, "Sub-batches of similar rows")."""
    length_group_batches: int = 8
    """With ``group_by_length``: global batches per length-sorted window. Larger windows pad less
    and mix less (8: batches of nearly equal rows; 2: each batch sorted against one neighbour)."""
    seed: int = 0
    save_every_steps: int = 0
    """0: checkpoint at every epoch end only."""
    keep_checkpoints: int = 2
    log_every: int = 1
    max_steps: int = 0
    """0: no limit (smoke tests set a few)."""
    eval_every_steps: int = 0
    """Validate every this many optimizer steps; 0: validate at each epoch end when
    ``data.eval_manifest`` is set."""
    eval_max_batches: int = 0
    """Batches per validation; 0: the whole validation set."""
    final_from_best: bool = False
    """``final/`` holds the checkpoint with the lowest validation loss instead of the last one;
    needs ``data.eval_manifest``."""
    report_to: str = "none"
    """Experiment tracker, through accelerate's trackers: ``none``, ``tensorboard`` (``RUN_DIR/tensorboard``),
    ``wandb`` or ``mlflow``. Gets the same losses (per task), lr, gradient norm and speed as
    ``metrics.jsonl``, which is always written. Checked at config time: the package must be installed."""
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


# --- Validation (cross-field rules; OmegaConf has already checked keys and types) -------------

TRACKER_PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"),  # accelerate uses either
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
}
"""``train.report_to`` value -> the Python packages that provide it (any one is enough)."""

_CHOICES = {
    "model.fusion": {"sequence", "feature", "none"},
    "model.speech_encoder.type": {"whisper", "hubert", "emotion2vec", "auto"},
    "model.emotion_encoder.type": {"whisper", "hubert", "emotion2vec", "auto"},
    "model.speech_encoder.init": {"pretrained", "random"},
    "model.emotion_encoder.init": {"pretrained", "random"},
    "model.llm.init": {"pretrained", "random"},
    "model.llm.dtype": {"float32", "bfloat16", "float16", "auto"},
    "train.schedule": {"alternating", "joint", "emotion_then_all"},
    "train.lr_schedule_scope": {"run", "group", "phase"},
    "train.lr_schedule": {"cosine", "linear", "constant"},
    "train.precision": {"auto", "no", "bf16", "fp16"},
    "train.first_group": {"speech", "emotion"},
    "train.report_to": set(TRACKER_PACKAGES) | {"none"},
}


def check_tracker(report_to: str) -> None:
    """Raise ConfigError naming the missing package when ``train.report_to``'s tracker is not installed
    (at config time, not minutes later when training starts logging)."""
    import importlib.util

    packages = TRACKER_PACKAGES.get(report_to, ())
    if packages and not any(importlib.util.find_spec(p) is not None for p in packages):
        raise ConfigError(f"train.report_to={report_to} needs the {packages[0]} package, which is not installed: "
                          f"pip install 'emoreason[{report_to}]'")


def validate(cfg: Config) -> Config:
    """Check cross-field rules; raise ConfigError naming the key."""
    for key, allowed in _CHOICES.items():
        try:
            value = get_dotted(cfg, key)
        except ConfigError:
            continue  # optional section absent (emotion_encoder: null)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r}: expected one of {sorted(allowed)}")
    check_tracker(cfg.train.report_to)
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
    if m.emotion_pooled_tokens < 0:
        raise ConfigError(f"model.emotion_pooled_tokens must be >= 0, got {m.emotion_pooled_tokens}")
    if m.emotion_pooled_kind not in ("mlp", "labels"):
        raise ConfigError(f"model.emotion_pooled_kind: expected mlp or labels, got {m.emotion_pooled_kind!r}")
    if m.single_encoder_pooled and m.fusion != "none":
        raise ConfigError(f"model.single_encoder_pooled is for model.fusion=none (with {m.fusion!r} the emotion "
                          "adapter carries model.emotion_pooled_tokens)")
    if not m.llm.path and m.llm.init == "pretrained":
        raise ConfigError("model.llm.path is empty: give a hub id, directory, packaged:NAME or builtin:tiny")
    t = cfg.train
    for key in ("epochs", "switch_every", "batch_size", "grad_accum", "length_group_batches", "length_split"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {getattr(t, key)}")
    for key in ("eval_every_steps", "eval_max_batches"):
        if getattr(t, key) < 0:
            raise ConfigError(f"train.{key} must be >= 0, got {getattr(t, key)}")
    if t.lr <= 0:
        raise ConfigError(f"train.lr must be > 0, got {t.lr}")
    if t.pooled_label_loss_weight < 0:
        raise ConfigError(f"train.pooled_label_loss_weight must be >= 0, got {t.pooled_label_loss_weight}")
    if t.pooled_label_loss_weight and not (m.emotion_pooled_kind == "labels" and pooled_token_count(m)):
        raise ConfigError("train.pooled_label_loss_weight needs label-anchored pooled tokens "
                          "(model.emotion_pooled_tokens >= 1, model.emotion_pooled_kind=labels, model.fusion=sequence, "
                          "or fusion none with model.single_encoder_pooled)")
    if t.pooled_head_lr is not None and t.pooled_head_lr < 0:
        raise ConfigError(f"train.pooled_head_lr must be >= 0 (0 keeps the head as it starts), got {t.pooled_head_lr}")
    if t.pooled_head_init not in ("zero", "probe"):
        raise ConfigError(f"train.pooled_head_init: expected zero or probe, got {t.pooled_head_init!r}")
    if t.label_loss_weight <= 0:
        raise ConfigError(f"train.label_loss_weight must be > 0, got {t.label_loss_weight}")
    if len(t.betas) != 2 or not all(0 <= b < 1 for b in t.betas):
        raise ConfigError(f"train.betas must be two numbers in [0, 1) (beta1, beta2), got {t.betas}")
    for key, value in t.group_lr.items():
        if key not in PARAMETER_GROUPS:
            raise ConfigError(f"train.group_lr.{key}: unknown parameter group (expected one of {sorted(PARAMETER_GROUPS)})")
        if value <= 0:
            raise ConfigError(f"train.group_lr.{key} must be > 0, got {value}")
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {t.warmup_ratio}")
    if t.final_from_best and not cfg.data.eval_manifest:
        raise ConfigError("train.final_from_best=true needs data.eval_manifest (the validation loss picks the checkpoint)")
    if not cfg.data.train_manifest:
        raise ConfigError("data.train_manifest is empty: give a manifest path, a datasets directory, a parquet file, hf:ID or dummy:N")
    groups = cfg.data.task_groups
    if set(groups) != {"speech", "emotion"}:
        raise ConfigError(f"data.task_groups must have exactly the keys 'speech' and 'emotion', got {sorted(groups)}")
    if cfg.data.transcript_in_prompt and not any("asr" in tasks for tasks in groups.values()):
        raise ConfigError("data.transcript_in_prompt=true needs the asr task in data.task_groups: inference "
                          "transcribes each clip with the model's own ASR task before it reasons")
    # OmegaConf 2.3 lets a list or mapping stand as an item of a list[str]
    str_lists = {"model.labels": m.labels, "model.sentiment_labels": m.sentiment_labels,
                 "model.lora.target_modules": m.lora.target_modules, **{f"data.task_groups.{g}": v for g, v in groups.items()}}
    for key, items in str_lists.items():
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise ConfigError(f"{key}[{i}]: expected a string, got {item!r}")
    return cfg


# --- Building the dataclasses with OmegaConf --------------------------------------------------

# Words for "expected ..." in errors, by the type a node holds.
_EXPECTED = {int: "an integer", float: "a number", bool: "true/false", str: "a string", list: "a list", dict: "a mapping"}
_NODE_TYPES = {IntegerNode: int, FloatNode: float, BooleanNode: bool, StringNode: str, ListConfig: list, DictConfig: dict}


def _expected(e: OmegaConfBaseException) -> str | None:
    """What the rejected value should have been, or None if OmegaConf does not say."""
    if e.child_node is not None:
        return _EXPECTED.get(_NODE_TYPES.get(type(e.child_node)))
    # an item of a typed dict or list (train.group_lr.lora): no node yet, the annotation has the type
    args = typing.get_args(e.ref_type)
    return _EXPECTED.get(args[-1]) if args else None


@contextmanager
def _config_errors(prefix: str = "") -> Iterator[None]:
    """Turn OmegaConf's multi-line exceptions into a one-line ConfigError naming the key."""
    try:
        yield
    except OmegaConfBaseException as e:
        key = ".".join(p for p in (prefix, e.full_key) if p) or "config"
        if isinstance(e, ConfigKeyError):
            known = ""
            if isinstance(e.object_type, type) and dataclasses.is_dataclass(e.object_type):
                known = f" (known: {', '.join(sorted(f.name for f in dataclasses.fields(e.object_type)))})"
            raise ConfigError(f"unknown key {key}{known}") from None
        if isinstance(e, ValidationError):
            if "is not Optional" in e.msg:  # a section set to null (OmegaConf gives no value for it)
                raise ConfigError(f"{key}: null is not allowed here") from None
            expected = _expected(e)
            if expected is not None:
                raise ConfigError(f"{key}: expected {expected}, got {e.value!r}") from None
        raise ConfigError(f"{key}: {e.msg.splitlines()[0]}") from None


def _check_sections(schema: Any, data: Any, prefix: str) -> None:
    """Raise if a scalar or list stands where a section or mapping belongs (OmegaConf's error for
    that names the type, not the key)."""
    if not isinstance(schema, DictConfig) or not isinstance(data, Mapping):
        return
    for key, value in data.items():
        sub = schema.get(key) if isinstance(key, str) and key in schema else None  # None: unknown key
        if isinstance(sub, DictConfig) and value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"{prefix}{key}: expected a mapping, got {value!r}")
        _check_sections(sub, value, f"{prefix}{key}.")


def _build(schema: DictConfig, layers: list[Any], prefix: str = "") -> Any:
    """Merge ``layers`` (dicts / DictConfigs, later wins) onto ``schema`` (a structured config),
    convert, and return the dataclass instance."""
    with _config_errors(prefix):
        for layer in layers:
            plain = OmegaConf.to_container(layer) if isinstance(layer, DictConfig) else layer
            _check_sections(schema, plain, f"{prefix}." if prefix else "")
        return OmegaConf.to_object(OmegaConf.merge(schema, *layers))


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a dict; unknown keys are errors (typos must not pass silently).

    ``prefix`` is the section's dotted key, for error messages (``from_dict(ModelConfig, d, "model")``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    return _build(OmegaConf.structured(cls), [dict(data)], prefix)


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass -> plain dict/list structure for YAML/JSON."""
    return dataclasses.asdict(obj)


def get_dotted(obj: Any, key: str) -> Any:
    """``get_dotted(cfg, "model.llm.path")``; ConfigError if a part is missing or its section is None."""
    for part in key.split("."):
        if obj is None or not hasattr(obj, part):
            raise ConfigError(f"unknown key {key}")
        obj = getattr(obj, part)
    return obj


def _override(item: str, schema: DictConfig) -> DictConfig:
    """``"train.lr=1e-4"`` -> a one-key DictConfig; the value is read as YAML (``[a,b]``, ``null``, ``{k: v}``)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not key=value")
    if raw == "":
        raw = "''"  # from_dotlist reads `key=` as null; keep it the empty string (an empty system prompt)
    try:
        layer = OmegaConf.from_dotlist([f"{key}={raw}"])
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(e).splitlines()[0]}); quote it") from None
    with _config_errors():
        value = OmegaConf.select(layer, key, throw_on_resolution_failure=False)
        if isinstance(value, str) and isinstance(OmegaConf.select(schema, key, default=None), ListConfig):
            OmegaConf.update(layer, key, [v for v in value.split(",") if v])  # "a,b,c" from a shell
    return layer


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read YAML (optional), merge it and the dotted overrides onto the defaults, validate."""
    layers: list[Any] = []
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
        layers.append(loaded)
    schema = OmegaConf.structured(Config)
    layers += [_override(item, schema) for item in overrides or []]
    return validate(_build(schema, layers))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
