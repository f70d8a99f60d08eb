"""Build an AudioLLM + processor from a ``ModelConfig``; the only code that reads checkpoints.

    model, processor = build_model(cfg.model)
    model, processor = load_pretrained("runs/x/final")

Paths (encoders and LLM): a hub id, a local directory, ``packaged:NAME`` (resolved by
``emoreason.model.packaged.resolve_packaged``), ``preset:NAME`` (named sizes, ``init: random``
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

from emoreason.config import ConfigError, EncoderConfig, LLMConfig, ModelConfig
from emoreason.hardware import resolve_dtype
from emoreason.model.processing import AudioProcessor, FeatureSpec, add_audio_tokens, audio_token_ids, build_tiny_tokenizer
from emoreason.model.adapter import FrameAdapter, FusionAdapter
from emoreason.model.audiollm import CONFIG_FILE, RANDOM_BASE_FILE, TRAINABLE_FILE, AudioLLM
from emoreason.model.encoders import FRAMES_PER_WINDOW, WaveFrames, WhisperFrames
from emoreason.model.presets import encoder_preset, llm_preset, preset_name

log = logging.getLogger(__name__)

BUILTIN_TINY = "builtin:tiny"
PACKAGED_PREFIX = "packaged:"


def _resolve_path(path: str) -> tuple[str, str | None]:
    """``packaged:NAME`` -> (local dir, gguf file or None); other paths unchanged."""
    if not path.startswith(PACKAGED_PREFIX):
        return path, None
    from emoreason.model.packaged import resolve_packaged  # lazy: written in parallel, optional

    resolved = resolve_packaged(path[len(PACKAGED_PREFIX):])
    if isinstance(resolved, dict):  # GGUF: load the once-converted transformers copy (fast)
        from emoreason.model.packaged import llm_dir

        return str(llm_dir(path[len(PACKAGED_PREFIX):])), None
    return str(resolved), None


def _overrides(cfg: Any, mapping: dict[str, str]) -> dict[str, Any]:
    """Size fields set in ``cfg`` -> config kwargs under the family's names."""
    return {dst: getattr(cfg, src) for src, dst in mapping.items() if getattr(cfg, src) is not None}


# ------------------------------------------------------------------------------------------ encoders
_WHISPER_SIZES = {"hidden_size": "d_model", "num_layers": "encoder_layers", "num_heads": "encoder_attention_heads",
                  "ffn_size": "encoder_ffn_dim", "num_mel_bins": "num_mel_bins"}
_HUBERT_SIZES = {"hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
                 "ffn_size": "intermediate_size"}
_E2V_SIZES = {"hidden_size": "embed_dim", "num_layers": "depth", "num_heads": "num_heads", "ffn_size": "ffn_dim"}


def _random_kwargs(cfg: EncoderConfig, family: str, sizes: dict[str, str], default_preset: str) -> dict[str, Any]:
    """Architecture kwargs for ``init: random``: preset or checkpoint config, then size fields."""
    name = preset_name(cfg.path) if cfg.path else default_preset
    if name is not None:
        kwargs = encoder_preset(name, family)
    else:
        from transformers import AutoConfig

        path, _ = _resolve_path(cfg.path)
        kwargs = AutoConfig.from_pretrained(path).to_dict()
    kwargs.update(_overrides(cfg, sizes))
    return kwargs


def _check_size_fields(cfg: EncoderConfig, role: str) -> None:
    if cfg.init == "pretrained" and any(getattr(cfg, k) is not None for k in ("hidden_size", "num_layers", "num_heads", "ffn_size")):
        raise ConfigError(f"model.{role}: size fields only apply with init: random")


def _load_whisper_encoder(path: str) -> nn.Module:
    """Whisper encoder weights from a local HF directory (safetensors) or a hub id."""
    from transformers import WhisperConfig, WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    local = Path(path)
    files = sorted(local.glob("*.safetensors")) if local.is_dir() else []
    if not files:  # hub id, or a .bin checkpoint: transformers loads it (weights_only) and we keep the encoder
        model, info = WhisperModel.from_pretrained(path, attn_implementation="sdpa", output_loading_info=True)
        missing = [k for k in info["missing_keys"] if k.startswith("encoder.")]
        if missing:
            raise ConfigError(f"{path}: Whisper checkpoint lacks encoder weights, e.g. {missing[:3]}")
        return model.encoder
    from safetensors.torch import load_file

    config = WhisperConfig.from_pretrained(path)
    # Built on the meta device: every weight comes from the file (assign=True below), so the
    # random initialisation a normal build runs (~0.1 s per encoder) would be thrown away.
    with torch.device("meta"):
        encoder = WhisperEncoder._from_config(config, attn_implementation="sdpa")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        for key, value in load_file(str(f)).items():
            for prefix in ("model.encoder.", "encoder.", ""):
                if key.startswith(prefix) and (prefix or not key.startswith(("model.", "decoder.", "proj_out"))):
                    state[key[len(prefix):]] = value
                    break
    own = encoder.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in state]
    if missing:
        raise ConfigError(f"{path}: Whisper checkpoint lacks encoder weights, e.g. {missing[:3]}")
    encoder.load_state_dict(state, assign=True)
    left = [n for n, t in [*encoder.named_parameters(), *encoder.named_buffers()] if t.is_meta]
    if left:  # a buffer outside the state dict: cannot come from the file
        raise ConfigError(f"{path}: Whisper encoder tensors not in the checkpoint: {left[:3]}")
    return encoder


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
            kwargs = _random_kwargs(cfg, "whisper", _WHISPER_SIZES, "whisper-tiny")
            kwargs["max_source_positions"] = FRAMES_PER_WINDOW
            encoder = WhisperEncoder._from_config(WhisperConfig(**kwargs), attn_implementation="sdpa")
        else:
            encoder = _load_whisper_encoder(_resolve_path(cfg.path)[0])
        module = WhisperFrames(encoder)
        return module, FeatureSpec("mel", cfg.num_tokens, num_mel_bins=module.num_mel_bins, dynamic_length=cfg.dynamic_length)
    if cfg.type in ("hubert", "auto"):
        from transformers import AutoConfig, AutoModel, HubertConfig, HubertModel

        if cfg.init == "random":
            if cfg.type == "hubert":
                kwargs = _random_kwargs(cfg, "hubert", _HUBERT_SIZES, "hubert-base")
                kwargs.pop("model_type", None)
                model = HubertModel._from_config(HubertConfig(**kwargs), attn_implementation="sdpa")
            else:
                if not cfg.path or preset_name(cfg.path):
                    raise ConfigError(f"model.{role}: type auto with init random needs a path with a config")
                config = AutoConfig.from_pretrained(_resolve_path(cfg.path)[0])
                for key, value in _overrides(cfg, _HUBERT_SIZES).items():
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
            if cfg.path and not preset_name(cfg.path):  # architecture from a checkpoint's config.yaml
                import dataclasses

                import yaml

                from emoreason.model.emotion2vec import config_from_funasr

                conf = yaml.safe_load((Path(_resolve_path(cfg.path)[0]) / "config.yaml").read_text())
                kwargs = dataclasses.asdict(config_from_funasr(conf.get("model_conf", conf)))
                kwargs.update(_overrides(cfg, _E2V_SIZES))
            else:
                kwargs = _random_kwargs(cfg, "emotion2vec", _E2V_SIZES, "emotion2vec-plus-base")
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
_LLM_SIZES = {"hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
              "num_kv_heads": "num_key_value_heads", "ffn_size": "intermediate_size", "vocab_size": "vocab_size"}


def build_llm(cfg: LLMConfig) -> tuple[nn.Module, Any]:
    """(causal LM, tokenizer with chat template and audio tokens)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dtype = resolve_dtype(cfg.dtype)
    attn = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
    if any(getattr(cfg, k) is not None for k in _LLM_SIZES) and cfg.init == "pretrained" and cfg.path != BUILTIN_TINY:
        raise ConfigError("model.llm: size fields only apply with init: random (or builtin:tiny)")
    preset = "llama-test" if cfg.path == BUILTIN_TINY else preset_name(cfg.path)
    if preset is not None:
        if cfg.path != BUILTIN_TINY and cfg.init != "random":
            raise ConfigError(f"model.llm.path={cfg.path}: presets need init: random")
        tokenizer = build_tiny_tokenizer()
        model_type, kwargs = llm_preset(preset)
        if cfg.path == BUILTIN_TINY:
            kwargs["vocab_size"] = len(tokenizer)
        kwargs.update(_overrides(cfg, _LLM_SIZES))
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
        for key, value in _overrides(cfg, _LLM_SIZES).items():
            setattr(config, key, value)
        llm = AutoModelForCausalLM.from_config(config, dtype=dtype, **attn)
    else:
        llm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False, **extra, **attn)
    add_audio_tokens(tokenizer)
    _fit_embeddings(llm, len(tokenizer))
    return llm, tokenizer


def _fit_embeddings(llm: nn.Module, vocab: int) -> None:
    """Grow the embedding matrix only if the tokenizer outgrew it; new rows = mean of the old rows.

    The mean is deterministic (re-creatable on load from the base weights alone) and harmless:
    ``<audio>`` rows are always overwritten; the start/end markers keep this fixed embedding.
    """
    old = llm.get_input_embeddings().num_embeddings
    if vocab <= old:
        return
    llm.resize_token_embeddings(vocab, mean_resizing=False)
    with torch.no_grad():
        for emb in {id(m): m for m in (llm.get_input_embeddings(), llm.get_output_embeddings()) if m is not None}.values():
            emb.weight[old:] = emb.weight[:old].mean(dim=0, keepdim=True)


# ------------------------------------------------------------------------------------------ model
def build_model(cfg: ModelConfig) -> tuple[AudioLLM, AudioProcessor]:
    """Build the AudioLLM and its processor from config (weights per each part's ``init``).

    Trainable flags: adapters and LoRA require grad; encoders only when their config says
    ``trainable``; the LLM base is frozen when LoRA is on (fully trainable is not offered).
    """
    fusion = cfg.fusion
    if fusion not in ("sequence", "feature", "none"):
        raise ConfigError(f"model.fusion={fusion!r}: expected sequence, feature or none")
    if fusion != "none" and cfg.emotion_encoder is None:
        raise ConfigError(f"model.fusion={fusion!r} needs model.emotion_encoder")
    llm, tokenizer = build_llm(cfg.llm)
    hidden = llm.get_input_embeddings().embedding_dim
    speech, speech_spec = build_encoder(cfg.speech_encoder, "speech_encoder")
    emotion, emotion_spec = (None, None)
    if fusion != "none":
        emotion, emotion_spec = build_encoder(cfg.emotion_encoder, "emotion_encoder")
    ks = speech_spec.group
    speech_adapter = emotion_adapter = fusion_adapter = None
    if fusion == "feature":
        fusion_adapter = FusionAdapter(speech.hidden_size, emotion.hidden_size, hidden, ks)
    else:
        speech_adapter = FrameAdapter(speech.hidden_size, hidden, ks)
    if fusion == "sequence":
        emotion_adapter = FrameAdapter(emotion.hidden_size, hidden, emotion_spec.group)
    dtype = resolve_dtype(cfg.llm.dtype)
    for enc, ecfg in ((speech, cfg.speech_encoder), (emotion, cfg.emotion_encoder)):
        if enc is not None:
            # Frozen encoders run in the LLM's dtype (memory); trainable ones stay fp32 for the optimizer.
            enc.to(torch.float32 if ecfg.trainable else dtype)
            enc.requires_grad_(ecfg.trainable)
            for name, p in enc.named_parameters():
                if name.endswith("embed_positions.weight"):  # Whisper's fixed sinusoids
                    p.requires_grad_(False)
    if cfg.lora.enabled:
        from emoreason.model.lora import apply_lora

        llm = apply_lora(llm, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    else:
        llm.requires_grad_(False)
    _, audio_id, _ = audio_token_ids(tokenizer)
    model = AudioLLM(
        speech_encoder=speech, emotion_encoder=emotion, speech_adapter=speech_adapter,
        emotion_adapter=emotion_adapter, fusion_adapter=fusion_adapter, llm=llm,
        tokenizer=tokenizer, audio_token_id=audio_id, model_config=cfg,
    )
    model.eval()
    processor = AudioProcessor(tokenizer, speech_spec, emotion_spec, fusion, system_prompt=cfg.llm.system_prompt)
    return model, processor


def load_pretrained(directory: str | Path, device: str | torch.device | None = None) -> tuple[AudioLLM, AudioProcessor]:
    """Rebuild a model saved by ``AudioLLM.save_pretrained`` (+ ``processor.save_pretrained``).

    Base weights come from the ids/paths in ``config.yaml``; randomly initialised parts from
    ``random_base.safetensors``; adapters / LoRA / trained encoders from ``trainable.safetensors``.
    """
    import yaml

    from emoreason.config import from_dict

    directory = Path(directory)
    cfg_path = directory / CONFIG_FILE
    if not cfg_path.is_file():
        raise ConfigError(f"{directory}: no {CONFIG_FILE} (not a save_pretrained directory)")
    cfg = from_dict(ModelConfig, yaml.safe_load(cfg_path.read_text()), prefix="model")
    model, processor = build_model(cfg)
    if (directory / "processor_config.json").is_file():
        # The saved tokenizer is the one build_model just made (base tokenizer + audio tokens):
        # reuse it rather than parse tokenizer.json a second time (~0.2 s for SmolLM2).
        processor = AudioProcessor.from_pretrained(directory, tokenizer=model.tokenizer)
    if device is not None:
        model.to(device)
    for name in (RANDOM_BASE_FILE, TRAINABLE_FILE):
        if (directory / name).is_file():
            model.load_weights(directory / name)
    model.eval()
    return model, processor
