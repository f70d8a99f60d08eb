"""Build an AudioLLM + processor from a ``ModelConfig``; the only code that reads checkpoints.

    model, processor = build_model(cfg.model)
    model, processor = load_pretrained("runs/x/final")

Paths (encoders and LLM): a hub id, a local directory, ``packaged:NAME`` (resolved by
``emoreason.weights.resolve_packaged``), ``preset:NAME`` (named sizes, ``init: random``
only; see ``emoreason.model.presets``), and for the LLM ``builtin:tiny``. ``init: random`` builds the
architecture from the path's config (or preset) with the config's size fields as overrides.
Checkpoints are read with safetensors, or transformers / ``torch.load(weights_only=True)`` for
``.bin`` / ``.pt``; ``trust_remote_code`` stays off.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emoreason.errors import UserError
from emoreason.config import ConfigError, EncoderConfig, LLMConfig, ModelConfig, pooled_token_count
from emoreason.hardware import resolve_dtype
from emoreason.model.processing import (PROCESSOR_CONFIG, AudioProcessor, FeatureSpec, add_audio_tokens, audio_token_ids,
                                         build_tiny_tokenizer)
from emoreason.model.adapter import FrameAdapter, FusionAdapter, LabelMixtureTokens, OutputRMS
from emoreason.model.audiollm import AudioLLM
from emoreason.model.encoders import FRAMES_PER_WINDOW, WaveFrames, WhisperFrames, load_whisper_encoder
from emoreason.model.presets import encoder_preset, llm_preset, preset_name, size_overrides
from emoreason.weights import PREFIX as PACKAGED_PREFIX
from emoreason.weights import llm_dir, resolve_packaged

log = logging.getLogger(__name__)

BUILTIN_TINY = "builtin:tiny"

CONFIG_FILE = "config.yaml"
TRAINABLE_FILE = "trainable.safetensors"
"""Parameter groups (adapters, LoRA, trained encoders): what training changed."""
HF_CONFIG_FILE = "config.json"
"""The transformers view of the directory (``model_type: emoreason``; see ``emoreason.model.hf``)."""
MODEL_TYPE = "emoreason"
FORMAT_VERSION = 1
"""Version of the directory layout ``config.json`` describes (config.yaml + safetensors + adapter/)."""
ADAPTER_DIR = "adapter"
"""The LoRA as a standard PEFT adapter folder (adapter_config.json + adapter_model.safetensors)."""
EMOTION2VEC_CONFIG = "emotion2vec_config.json"
"""An exported emotion2vec's architecture (``Emotion2vecConfig`` as JSON; see ``emoreason.model.export``)."""
RANDOM_BASE_FILE = "random_base.safetensors"
"""Full weights of the parts built with ``init: random`` (they cannot be re-created from an id)."""


def _resolve_path(path: str) -> tuple[str, str | None]:
    """``packaged:NAME`` -> (local dir, gguf file or None); other paths unchanged."""
    if not path.startswith(PACKAGED_PREFIX):
        return path, None
    resolved = resolve_packaged(path[len(PACKAGED_PREFIX):])
    if isinstance(resolved, dict):  # GGUF: load the once-converted transformers copy (fast)
        return str(llm_dir(path[len(PACKAGED_PREFIX):])), None
    return str(resolved), None


# ------------------------------------------------------------------------------------------ encoders
def _random_kwargs(cfg: EncoderConfig, family: str, default_preset: str) -> dict[str, Any]:
    """Architecture kwargs for ``init: random``: preset or checkpoint config, then size fields."""
    name = preset_name(cfg.path) if cfg.path else default_preset
    if name is not None:
        kwargs = encoder_preset(name, family)
    else:
        from transformers import AutoConfig

        path, _ = _resolve_path(cfg.path)
        kwargs = AutoConfig.from_pretrained(path).to_dict()
    kwargs.update(size_overrides(cfg, family))
    return kwargs


def _check_size_fields(cfg: EncoderConfig, role: str) -> None:
    if cfg.init == "pretrained" and any(getattr(cfg, k) is not None for k in ("hidden_size", "num_layers", "num_heads", "ffn_size")):
        raise ConfigError(f"model.{role}: size fields only apply with init: random")


def build_encoder(cfg: EncoderConfig, role: str) -> tuple[nn.Module, FeatureSpec]:
    """One frame encoder (see ``emoreason.model.encoders``) and the processor spec for its input."""
    if FRAMES_PER_WINDOW % cfg.num_tokens:
        raise ConfigError(f"model.{role}.num_tokens={cfg.num_tokens} must divide {FRAMES_PER_WINDOW}")
    if cfg.dynamic_length and cfg.type != "whisper":
        raise ConfigError(f"model.{role}.dynamic_length is Whisper-only (type is {cfg.type})")
    _check_size_fields(cfg, role)
    if cfg.type == "whisper":
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        if cfg.init == "random":
            kwargs = _random_kwargs(cfg, "whisper", "whisper-tiny")
            kwargs["max_source_positions"] = FRAMES_PER_WINDOW
            encoder = WhisperEncoder._from_config(WhisperConfig(**kwargs), attn_implementation="sdpa")
        else:
            encoder = load_whisper_encoder(_resolve_path(cfg.path)[0])
        module = WhisperFrames(encoder)
        return module, FeatureSpec("mel", cfg.num_tokens, num_mel_bins=module.num_mel_bins, dynamic_length=cfg.dynamic_length)
    if cfg.type in ("hubert", "auto"):
        from transformers import AutoConfig, AutoModel, HubertConfig, HubertModel

        if cfg.init == "random":
            if cfg.type == "hubert":
                kwargs = _random_kwargs(cfg, "hubert", "hubert-base")
                kwargs.pop("model_type", None)
                model = HubertModel._from_config(HubertConfig(**kwargs), attn_implementation="sdpa")
            else:
                if not cfg.path or preset_name(cfg.path):
                    raise ConfigError(f"model.{role}: type auto with init random needs a path with a config")
                config = AutoConfig.from_pretrained(_resolve_path(cfg.path)[0])
                for key, value in size_overrides(cfg, "hubert").items():
                    setattr(config, key, value)
                model = AutoModel.from_config(config)
            normalize = True
        else:
            path = _resolve_path(cfg.path)[0]
            cls = HubertModel if cfg.type == "hubert" else AutoModel
            try:
                model = cls.from_pretrained(path, attn_implementation="sdpa")
            except (ValueError, NotImplementedError):  # architecture without SDPA support
                model = cls.from_pretrained(path)
            normalize = _wants_normalized(path)
        return WaveFrames(model), FeatureSpec("wave", cfg.num_tokens, normalize=normalize, normalize_eps=1e-7)
    if cfg.type == "emotion2vec":
        from emoreason.model.emotion2vec import Emotion2vecConfig, Emotion2vecEncoder, load_emotion2vec

        if cfg.init == "random":
            if cfg.path and (Path(cfg.path) / EMOTION2VEC_CONFIG).is_file():  # an export's architecture
                import json

                kwargs = json.loads((Path(cfg.path) / EMOTION2VEC_CONFIG).read_text())
                kwargs["conv_spec"] = [tuple(k) for k in kwargs["conv_spec"]]
                kwargs.update(size_overrides(cfg, "emotion2vec"))
            elif cfg.path and not preset_name(cfg.path):  # architecture from a checkpoint's config.yaml
                import dataclasses

                import yaml

                from emoreason.model.emotion2vec import config_from_funasr

                conf = yaml.safe_load((Path(_resolve_path(cfg.path)[0]) / "config.yaml").read_text())
                kwargs = dataclasses.asdict(config_from_funasr(conf.get("model_conf", conf)))
                kwargs.update(size_overrides(cfg, "emotion2vec"))
            else:
                kwargs = _random_kwargs(cfg, "emotion2vec", "emotion2vec-plus-base")
            module = Emotion2vecEncoder(Emotion2vecConfig(**kwargs))
        else:
            module = load_emotion2vec(_emotion2vec_dir(_resolve_path(cfg.path)[0]))
        return module, FeatureSpec("wave", cfg.num_tokens, normalize=True, normalize_eps=1e-5)
    raise ConfigError(f"model.{role}.type={cfg.type!r}: expected whisper, hubert, emotion2vec or auto")


def _emotion2vec_dir(path: str) -> str:
    """A local emotion2vec checkpoint directory; a hub id (e.g. ``emotion2vec/emotion2vec_plus_large``)
    is fetched with huggingface_hub (only its config.yaml and weights)."""
    if Path(path).is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(path, allow_patterns=["config.yaml", "model.pt", "*.safetensors"])
    except Exception as e:  # offline, unknown repo, ...: one readable line
        raise ConfigError(f"emotion2vec checkpoint {path!r} is neither a local directory nor fetchable "
                          f"from the hub ({e.__class__.__name__})") from None


def _wants_normalized(path: str) -> bool:
    """Whether a waveform checkpoint expects zero-mean unit-variance input (its feature extractor
    says; HuBERT-large/XL do, HuBERT-base does not). Defaults to True when unknown."""
    try:
        from transformers import AutoFeatureExtractor

        return bool(getattr(AutoFeatureExtractor.from_pretrained(path), "do_normalize", True))
    except (OSError, ValueError):
        return True


# ------------------------------------------------------------------------------------------ LLM
def build_llm(cfg: LLMConfig, draw_new_rows: bool = True) -> tuple[nn.Module, Any]:
    """(causal LM, tokenizer with chat template and audio tokens).

    ``draw_new_rows``: see :func:`_fit_embeddings` (False only when loading a saved model)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dtype = resolve_dtype(cfg.dtype)
    attn = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
    if size_overrides(cfg, "llm") and cfg.init == "pretrained" and cfg.path != BUILTIN_TINY:
        raise ConfigError("model.llm: size fields only apply with init: random (or builtin:tiny)")
    preset = "llama-test" if cfg.path == BUILTIN_TINY else preset_name(cfg.path)
    if preset is not None:
        if cfg.path != BUILTIN_TINY and cfg.init != "random":
            raise ConfigError(f"model.llm.path={cfg.path}: presets need init: random")
        tokenizer = build_tiny_tokenizer()
        model_type, kwargs = llm_preset(preset)
        if cfg.path == BUILTIN_TINY:
            kwargs["vocab_size"] = len(tokenizer)
        kwargs.update(size_overrides(cfg, "llm"))
        kwargs.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        config = AutoConfig.for_model(model_type, **kwargs)
        if config.vocab_size < len(tokenizer):
            raise ConfigError(f"model.llm.vocab_size={config.vocab_size} is smaller than the byte tokenizer ({len(tokenizer)})")
        llm = AutoModelForCausalLM.from_config(config, dtype=dtype, **attn)
        llm.generation_config.eos_token_id = tokenizer.eos_token_id
        llm.generation_config.pad_token_id = tokenizer.pad_token_id
        return llm, tokenizer
    path, gguf = _resolve_path(cfg.path)
    gguf = cfg.gguf_file or gguf
    extra = {"gguf_file": gguf} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(path, **extra)
    if not tokenizer.chat_template:
        raise ConfigError(f"model.llm.path={cfg.path}: the tokenizer has no chat template (use an instruct model)")
    if cfg.init == "random":
        config = AutoConfig.from_pretrained(path, **extra)
        for key, value in size_overrides(cfg, "llm").items():
            setattr(config, key, value)
        llm = AutoModelForCausalLM.from_config(config, dtype=dtype, **attn)
    else:
        llm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False, **extra, **attn)
    add_audio_tokens(tokenizer)
    _fit_embeddings(llm, len(tokenizer), draw_new_rows)
    return llm, tokenizer


def _fit_embeddings(llm: nn.Module, vocab: int, draw_new_rows: bool = True) -> None:
    """Grow the embedding matrix only if the tokenizer outgrew it; new rows = mean of the old rows.

    The mean is deterministic (re-creatable on load from the base weights alone) and harmless:
    ``<audio>`` rows are always overwritten; the start/end markers keep this fixed embedding.

    ``draw_new_rows``: transformers fills the grown matrix with random numbers first (all of it:
    49k x 576 for SmolLM2, ~0.2 s on a laptop core) before the old rows and the mean overwrite
    every value. Training keeps that draw so a seeded run keeps its random stream (the adapters
    are initialised after this); loading a saved model passes False and skips it: torch's own
    initialisers through ``no_init_weights``, and the model's ``_init_weights`` (which calls the
    torch functions transformers saved at import, out of that context's reach: 0.1 s a load) by an
    instance attribute that shadows it for the call.
    """
    old = llm.get_input_embeddings().num_embeddings
    if vocab <= old:
        return
    if draw_new_rows:
        llm.resize_token_embeddings(vocab, mean_resizing=False)
    else:
        from transformers.initialization import no_init_weights

        llm._init_weights = lambda module: None  # every value of the grown matrices is written below
        try:
            with no_init_weights():
                llm.resize_token_embeddings(vocab, mean_resizing=False)
        finally:
            del llm._init_weights
    with torch.no_grad():
        for emb in {id(m): m for m in (llm.get_input_embeddings(), llm.get_output_embeddings()) if m is not None}.values():
            emb.weight[old:] = emb.weight[:old].mean(dim=0, keepdim=True)


# ------------------------------------------------------------------------------------------ model
def embedding_rms(llm: nn.Module) -> float:
    """RMS of the LLM's input token embeddings (all rows): the scale text tokens enter the LLM at."""
    with torch.no_grad():
        return float(llm.get_input_embeddings().weight.float().pow(2).mean().sqrt())


def label_embeddings(llm: nn.Module, tokenizer: Any, labels: list[str]) -> torch.Tensor:
    """(K, H): for each label, the mean of the LLM's input embeddings of its tokens as it is written
    inside a sentence (with a leading space: " sad", the form the targets' label sentence uses)."""
    table = llm.get_input_embeddings().weight
    rows = []
    with torch.no_grad():
        for label in labels:
            ids = tokenizer(" " + label, add_special_tokens=False)["input_ids"]
            rows.append(table[torch.tensor(ids, device=table.device)].float().mean(dim=0))
    return torch.stack(rows)  # on the embeddings' device (meta when the model is built on meta)


def sync_output_scales(model: AudioLLM) -> None:
    """Set every adapter's ``OutputRMS`` scale to the embedding RMS of ``model.llm`` as it is now.

    Needed after loading weights into a model whose LLM was randomly initialised (``builtin:tiny``,
    ``init: random``): the build computed the scale from the fresh draw, the trained model used
    the saved embeddings. A pretrained LLM gives the same number either way.
    """
    scale = None
    for adapter in model.adapters.values():
        pooled = getattr(adapter, "pooled", None)
        if isinstance(pooled, LabelMixtureTokens) and getattr(model, "emotion_labels", None):
            # the label words' embeddings, read again from the LLM the weights were loaded into
            fresh = label_embeddings(model.llm, model.tokenizer, model.emotion_labels)
            pooled.label_embeddings.copy_(fresh.to(pooled.label_embeddings.device))
        if isinstance(getattr(adapter, "out", None), OutputRMS):
            scale = embedding_rms(model.llm) if scale is None else scale
            adapter.out.scale = scale


def fusion_adapters(fusion: str, speech: nn.Module, emotion: nn.Module | None, hidden: int,
                    speech_k: int, emotion_k: int | None, out_rms: float | None = None,
                    emotion_pooled: int = 0, label_embeddings: torch.Tensor | None = None) -> dict[str, nn.Module]:
    """The adapters that make a fusion mode, in the order their tokens fill each clip's placeholders.

    ``sequence``: speech adapter (k = ``speech_k``) then emotion adapter (``emotion_k``);
    ``feature``: one fusion adapter over both encoders' channel-concatenated frames (``speech_k``);
    ``none``: the speech adapter alone. ``hidden`` is the LLM's width; encoders give ``hidden_size``.
    ``out_rms``: None, or the RMS every adapter's output tokens are normalised to (``OutputRMS``).
    ``emotion_pooled``: clip-level tokens the last frame adapter appends (the emotion adapter with
    ``sequence``, the speech adapter with ``none``: ``model.single_encoder_pooled``; none with
    ``feature``); ``label_embeddings`` (K, H): make them label-anchored (``model.emotion_pooled_kind: labels``).
    """
    if fusion == "feature":
        return {"fusion": FusionAdapter(speech.hidden_size, emotion.hidden_size, hidden, speech_k, ("speech", "emotion"), out_rms)}
    if fusion == "none":
        return {"speech": FrameAdapter(speech.hidden_size, hidden, speech_k, "speech", out_rms, emotion_pooled,
                                       label_embeddings)}
    adapters: dict[str, nn.Module] = {"speech": FrameAdapter(speech.hidden_size, hidden, speech_k, "speech", out_rms)}
    if fusion == "sequence":
        adapters["emotion"] = FrameAdapter(emotion.hidden_size, hidden, emotion_k, "emotion", out_rms, emotion_pooled,
                                          label_embeddings)
    return adapters


def build_model(cfg: ModelConfig, draw_new_rows: bool = True) -> tuple[AudioLLM, AudioProcessor]:
    """Build the AudioLLM and its processor from config (weights per each part's ``init``).

    Trainable flags: adapters and LoRA require grad; encoders only when their config says
    ``trainable``; the LLM base is frozen when LoRA is on (fully trainable is not offered).
    ``draw_new_rows``: False skips the random draw under grown embedding rows (see
    ``_fit_embeddings``; for loading, where the random stream does not matter).
    """
    fusion = cfg.fusion
    if fusion not in ("sequence", "feature", "none"):
        raise ConfigError(f"model.fusion={fusion!r}: expected sequence, feature or none")
    if fusion != "none" and cfg.emotion_encoder is None:
        raise ConfigError(f"model.fusion={fusion!r} needs model.emotion_encoder")
    # Build order (LLM, speech, emotion, adapters) fixes which random numbers each part draws:
    # a seeded run must keep initialising the same way.
    llm, tokenizer = build_llm(cfg.llm, draw_new_rows)
    encoders: dict[str, nn.Module] = {}
    specs: dict[str, FeatureSpec] = {}
    encoders["speech"], specs["speech"] = build_encoder(cfg.speech_encoder, "speech_encoder")
    if fusion != "none":
        encoders["emotion"], specs["emotion"] = build_encoder(cfg.emotion_encoder, "emotion_encoder")
    # The scale is read from the base embeddings before LoRA (LoRA does not touch them), so a loaded
    # model recomputes the number it was trained with.
    out_rms = embedding_rms(llm) if cfg.adapter_output_norm else None
    pooled = pooled_token_count(cfg)
    anchors = label_embeddings(llm, tokenizer, list(cfg.labels)) if cfg.emotion_pooled_kind == "labels" and pooled else None
    adapters = fusion_adapters(fusion, encoders["speech"], encoders.get("emotion"), llm.get_input_embeddings().embedding_dim,
                               specs["speech"].group, specs["emotion"].group if "emotion" in specs else None, out_rms,
                               pooled, anchors)
    dtype = resolve_dtype(cfg.llm.dtype)
    trainable = [name for name in encoders if _encoder_config(cfg, name).trainable]
    for name, enc in encoders.items():
        # Frozen encoders run in the LLM's dtype (memory); trainable ones stay fp32 for the optimizer.
        enc.to(torch.float32 if name in trainable else dtype)
        enc.requires_grad_(name in trainable)
        for pname, p in enc.named_parameters():
            if pname.endswith("embed_positions.weight"):  # Whisper's fixed sinusoids
                p.requires_grad_(False)
    if cfg.lora.enabled:
        from emoreason.model.lora import apply_lora

        llm = apply_lora(llm, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    else:
        llm.requires_grad_(False)
    _, audio_id, _ = audio_token_ids(tokenizer)
    model = AudioLLM(encoders, adapters, llm, tokenizer, audio_id, trainable_encoders=trainable)
    model.emotion_labels = list(cfg.labels)  # what label-anchored pooled tokens mix (sync_output_scales)
    model.eval()
    processor = AudioProcessor(tokenizer, specs["speech"], specs.get("emotion"), fusion, system_prompt=cfg.llm.system_prompt,
                               emotion_pooled_tokens=pooled)
    return model, processor


def _encoder_config(cfg: ModelConfig, name: str) -> EncoderConfig:
    """The config section of encoder ``name`` (``speech`` -> ``model.speech_encoder``)."""
    return getattr(cfg, f"{name}_encoder")


# ------------------------------------------------------------------------------------------ persistence
def _random_parts(model: AudioLLM, cfg: ModelConfig) -> dict[str, nn.Module]:
    """Parts built with ``init: random``, by submodule name: saved in full (no id to reload them from)."""
    parts = {f"{n}_encoder": m for n, m in model.encoders.items() if _encoder_config(cfg, n).init == "random"}
    if cfg.llm.init == "random" or cfg.llm.path == BUILTIN_TINY:
        parts["llm"] = model.llm
    return parts


def save_pretrained(model: AudioLLM, cfg: ModelConfig, directory: str | Path, groups: list[str] | None = None) -> None:
    """Write ``config.yaml`` (``cfg``, the config ``model`` was built from), ``trainable.safetensors``
    and, when some parts were randomly initialised, ``random_base.safetensors``; plus the tokenizer,
    a transformers ``config.json`` (``emoreason.model.hf``) and, with LoRA, the PEFT adapter folder
    ``adapter/`` (the same LoRA weights as in ``trainable.safetensors``, for peft users).

    Args:
        groups: parameter-group keys to save (default: every group of ``model.parameter_groups()``,
            i.e. adapters + LoRA + encoders whose config says trainable).
    """
    import yaml
    from safetensors.torch import save_file

    from emoreason.config import to_dict

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    all_groups = model.parameter_groups()
    keys = list(all_groups) if groups is None else groups
    unknown = [k for k in keys if k not in all_groups]
    if unknown:
        raise ValueError(f"unknown parameter groups {unknown} (have {sorted(all_groups)})")
    wanted = {id(p) for k in keys for p in all_groups[k]}
    trainable = {n: p for n, p in model.named_parameters() if id(p) in wanted}
    save_file(_plain(trainable), str(directory / TRAINABLE_FILE), metadata={"groups": ",".join(keys)})
    random_parts = _random_parts(model, cfg)
    if random_parts:
        state = {f"{name}.{k}": v for name, part in random_parts.items() for k, v in part.state_dict().items()}
        save_file(_plain(state), str(directory / RANDOM_BASE_FILE))
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    model.tokenizer.save_pretrained(str(directory))
    _write_hf_config(directory, to_dict(cfg))
    if "lora" in keys and hasattr(model.llm, "peft_config"):
        model.llm.save_pretrained(str(directory / ADAPTER_DIR))  # peft: adapter_config.json + adapter_model.safetensors


def _write_hf_config(directory: Path, model_cfg: dict[str, Any]) -> None:
    """``config.json`` as ``EmoReasonConfig.to_dict()`` writes it, without importing transformers here
    (``emoreason.model.hf`` reads it)."""
    import json

    import transformers

    config = {"architectures": ["EmoReasonModel"], "emoreason": model_cfg, "format_version": FORMAT_VERSION,
              "model_type": MODEL_TYPE, "transformers_version": transformers.__version__}
    (directory / HF_CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous, unshared CPU copies (safetensors refuses tied/shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


class WeightsError(UserError):
    """A weights file that is unreadable, incomplete, or for another model (one line, names the file)."""


def load_weights(model: nn.Module, path: str | Path, expected: set[str] | None = None) -> list[str]:
    """Load a safetensors file written by :func:`save_pretrained` into ``model``.

    Every key in the file must exist in the model with the model's shape (a mismatch means a
    different architecture), and every name in ``expected`` must be in the file (a file cut short
    or emptied must not leave untrained parts running silently). Raises :class:`WeightsError`.
    Returns the loaded key names. An AudioLLM's ``OutputRMS`` scales are then re-read from its
    (possibly just loaded) embeddings.
    """
    from safetensors.torch import load_file

    own = model.state_dict(keep_vars=True)
    device = next(iter(own.values())).device
    try:
        state = load_file(str(path), device=str(device))
    except Exception as e:  # SafetensorError, OSError: a torn or foreign file
        reason = str(e).splitlines()[0][:120] if str(e) else e.__class__.__name__
        raise WeightsError(f"{path}: not a readable safetensors file ({reason})") from None
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise WeightsError(f"{path}: {len(unexpected)} weights do not fit this model, e.g. {unexpected[:3]}")
    missing = sorted((expected or set()) - set(state))
    if missing:
        raise WeightsError(f"{path}: {len(missing)} of the model's trained weights are missing (e.g. {missing[:2]}); "
                           "the file is incomplete or damaged")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise WeightsError(f"{path}: {k} has shape {tuple(v.shape)}, the model has {tuple(own[k].shape)}")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(device=own[k].device, dtype=own[k].dtype))
    if isinstance(model, AudioLLM):
        sync_output_scales(model)
    return list(state)


def _saved_groups(path: Path, model: AudioLLM) -> set[str]:
    """Parameter names a ``trainable.safetensors`` must hold: those of the groups its metadata
    names (every trainable group when the metadata is missing or unreadable)."""
    from safetensors import safe_open

    groups = model.parameter_groups()
    try:
        with safe_open(str(path), framework="pt") as f:
            names = ((f.metadata() or {}).get("groups") or "").split(",")
    except Exception:  # unreadable: load_weights reports it
        names = []
    keys = [g for g in names if g in groups] or list(groups)
    wanted = {id(p) for k in keys for p in groups[k]}
    return {n for n, p in model.named_parameters() if id(p) in wanted}


def read_config(directory: str | Path) -> ModelConfig:
    """The ``ModelConfig`` a :func:`save_pretrained` directory was built from."""
    import yaml

    from emoreason.config import from_dict

    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{directory}: no {CONFIG_FILE} (not a save_pretrained directory)")
    cfg = from_dict(ModelConfig, yaml.safe_load(path.read_text()), prefix="model")
    return _resolve_local_paths(cfg, Path(directory))


LOCAL_PREFIX = "./"
"""Paths in a saved ``config.yaml`` that start with this are relative to that directory (exports)."""


def _resolve_local_paths(cfg: ModelConfig, directory: Path) -> ModelConfig:
    """``./speech_encoder`` -> ``<directory>/speech_encoder`` for the LLM and both encoders."""
    import dataclasses

    def fix(part: Any) -> Any:
        if part is None or not part.path or not part.path.startswith(LOCAL_PREFIX):
            return part
        return dataclasses.replace(part, path=str(directory / part.path[len(LOCAL_PREFIX):]))

    return dataclasses.replace(cfg, llm=fix(cfg.llm), speech_encoder=fix(cfg.speech_encoder),
                               emotion_encoder=fix(cfg.emotion_encoder))


def load_pretrained(directory: str | Path, device: str | torch.device | None = None,
                    merge_lora: bool = False) -> tuple[AudioLLM, AudioProcessor]:
    """Rebuild a model saved by :func:`save_pretrained` (+ ``processor.save_pretrained``).

    Base weights come from the ids/paths in ``config.yaml``; randomly initialised parts from
    ``random_base.safetensors``; adapters / LoRA / trained encoders from ``trainable.safetensors``.

    ``merge_lora``: for inference only. The LLM is built without peft and each LoRA pair is
    folded into its base weight (W + alpha/r * B @ A, in fp32): the same function without
    importing peft (~230 modules, a tenth of a cold ``emoreason analyze``'s imports) or wrapping
    the LLM, and no adapter matmuls per token. The model then has no ``lora`` group: do not train
    or save it.
    """
    directory = Path(directory)
    cfg = read_config(directory)
    if merge_lora and cfg.lora.enabled:
        return _load_merged(directory, cfg, device)
    model, processor = build_model(cfg, draw_new_rows=False)
    if (directory / PROCESSOR_CONFIG).is_file():
        # The saved tokenizer is the one build_model just made (base tokenizer + audio tokens):
        # reuse it rather than parse tokenizer.json a second time (~0.2 s for SmolLM2).
        processor = AudioProcessor.from_pretrained(directory, tokenizer=model.tokenizer)
    if device is not None:
        model.to(device)
    random_parts = _random_parts(model, cfg)
    if random_parts:  # randomly initialised at build: only the saved values are the trained model's
        names = {f"{name}.{k}" for name, part in random_parts.items() for k in part.state_dict()}
        if not (directory / RANDOM_BASE_FILE).is_file():
            raise WeightsError(f"{directory}: no {RANDOM_BASE_FILE} (the saved random-init weights); the model directory is incomplete")
        load_weights(model, directory / RANDOM_BASE_FILE, expected=names)
    trained = directory / TRAINABLE_FILE
    if not trained.is_file():
        raise WeightsError(f"{directory}: no {TRAINABLE_FILE} (the trained weights); the model directory is incomplete")
    load_weights(model, trained, expected=_saved_groups(trained, model))
    model.eval()
    return model, processor


def _file_groups(path: Path) -> list[str]:
    """The parameter groups a ``trainable.safetensors`` says it holds (its metadata; [] unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return ((f.metadata() or {}).get("groups") or "").split(",")
    except Exception:  # unreadable: the loader reports it
        return []


def _peft_free_name(key: str) -> str:
    """A parameter name of the peft-wrapped LLM -> the plain LLM's (``llm.base_model.model.X`` ->
    ``llm.X``, ``q_proj.base_layer.weight`` -> ``q_proj.weight``); other names unchanged."""
    if key.startswith("llm.base_model.model."):
        key = "llm." + key[len("llm.base_model.model."):]
    return key.replace(".base_layer.", ".")


def _load_merged(directory: Path, cfg: ModelConfig, device: str | torch.device | None) -> tuple[AudioLLM, AudioProcessor]:
    """:func:`load_pretrained` with ``merge_lora`` (see there); the same checks: both files
    present when needed, readable, fitting the model, and complete (:class:`WeightsError`)."""
    import dataclasses

    from safetensors.torch import load_file

    model, processor = build_model(dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, enabled=False)),
                                   draw_new_rows=False)
    if (directory / PROCESSOR_CONFIG).is_file():
        processor = AudioProcessor.from_pretrained(directory, tokenizer=model.tokenizer)
    if device is not None:
        model.to(device)
    own = model.state_dict(keep_vars=True)
    random_parts = _random_parts(model, cfg)
    trained = directory / TRAINABLE_FILE
    expected = {trained: _saved_groups(trained, model) if trained.is_file() else set()}
    if random_parts:
        expected[directory / RANDOM_BASE_FILE] = {f"{name}.{k}" for name, part in random_parts.items()
                                                  for k in part.state_dict()}
    lora: dict[str, dict[str, torch.Tensor]] = {}  # module name -> {"A", "B"}; trainable's values win
    for path in sorted(expected, key=lambda p: p.name != RANDOM_BASE_FILE):  # random base first
        if not path.is_file():
            raise WeightsError(f"{directory}: no {path.name}; the model directory is incomplete")
        try:
            state = load_file(str(path))
        except Exception as e:  # SafetensorError, OSError: a torn or foreign file
            reason = str(e).splitlines()[0][:120] if str(e) else e.__class__.__name__
            raise WeightsError(f"{path}: not a readable safetensors file ({reason})") from None
        plain: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            key = _peft_free_name(key)
            part = "A" if ".lora_A." in key else "B" if ".lora_B." in key else None
            if part is not None:
                lora.setdefault(key.split(f".lora_{part}.")[0], {})[part] = value
                continue
            if key not in own or own[key].shape != value.shape:
                raise WeightsError(f"{path}: {key} does not fit this model")
            plain[key] = value
        missing = sorted(expected[path] - set(plain))
        if missing:
            raise WeightsError(f"{path}: {len(missing)} of the model's trained weights are missing (e.g. {missing[:2]}); "
                               "the file is incomplete or damaged")
        with torch.no_grad():
            for key, value in plain.items():
                own[key].copy_(value.to(device=own[key].device, dtype=own[key].dtype))
    if not lora and "lora" in _file_groups(trained):
        raise WeightsError(f"{trained}: its groups name LoRA but the file holds no LoRA weights; it is damaged")
    scale = cfg.lora.alpha / cfg.lora.r
    with torch.no_grad():
        for module, pair in lora.items():
            weight = own.get(f"{module}.weight")
            if weight is None or set(pair) != {"A", "B"}:
                raise WeightsError(f"{directory}: LoRA weights of {module} do not fit this model")
            delta = pair["B"].float() @ pair["A"].float() * scale  # (out, r) @ (r, in)
            weight.copy_((weight.float() + delta.to(weight.device)).to(weight.dtype))
    model.eval()
    return model, processor
