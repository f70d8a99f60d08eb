"""Tiny random model configs for everyone's tests: no downloads, built in well under a second.

    from emoreason.testing.tiny import tiny_model_config
    model, processor = build_model(tiny_model_config())
"""
from __future__ import annotations

from emoreason.config import EncoderConfig, LLMConfig, LoRAConfig, ModelConfig

_EMOTION_PRESETS = {"whisper": "preset:whisper-test", "hubert": "preset:hubert-test", "emotion2vec": "preset:emotion2vec-test"}


def tiny_encoder_config(type: str = "whisper", num_tokens: int = 100, dynamic_length: bool = False,
                        trainable: bool = False) -> EncoderConfig:
    """A random encoder of width 32 and 2 layers (``preset:*-test``); ``type`` whisper | hubert | emotion2vec."""
    if type not in _EMOTION_PRESETS:
        raise ValueError(f"no tiny preset for encoder type {type!r} (have {sorted(_EMOTION_PRESETS)})")
    return EncoderConfig(type=type, path=_EMOTION_PRESETS[type], init="random", num_tokens=num_tokens,
                         dynamic_length=dynamic_length, trainable=trainable)


def tiny_model_config(fusion: str = "sequence", emotion_type: str = "whisper", dynamic_length: bool = False) -> ModelConfig:
    """Tiny dual-encoder config: Whisper-test speech encoder (100 tokens / 30 s), an emotion
    encoder of ``emotion_type`` (10 tokens), ``builtin:tiny`` LLM (Llama, hidden 64, 2 layers,
    byte tokenizer), LoRA r=4 on q_proj/v_proj (names the Whisper encoders also use).

    ``dynamic_length`` applies to the Whisper encoders (speech, and emotion when it is Whisper).
    ``fusion="none"`` drops the emotion encoder.
    """
    speech = tiny_encoder_config("whisper", 100, dynamic_length)
    emotion = None
    if fusion != "none":
        emotion = tiny_encoder_config(emotion_type, 10, dynamic_length and emotion_type == "whisper")
    return ModelConfig(
        speech_encoder=speech,
        emotion_encoder=emotion,
        fusion=fusion,
        llm=LLMConfig(path="builtin:tiny", init="random", dtype="float32"),
        lora=LoRAConfig(enabled=True, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )


def save_tiny_run(run_dir, seed: int = 0):
    """Build the tiny random model with ``seed`` and write it as a run directory (``run_dir/final``,
    the ``save_pretrained`` layout ``Engine.load`` / ``eval run`` / ``analyze`` read). Returns run_dir."""
    from pathlib import Path

    import torch

    from emoreason.model.builder import build_model, save_pretrained

    run_dir = Path(run_dir)
    torch.manual_seed(seed)
    cfg = tiny_model_config()
    model, processor = build_model(cfg)
    save_pretrained(model, cfg, run_dir / "final")
    processor.save_pretrained(run_dir / "final")
    return run_dir


def save_tiny_whisper_run(run_dir, seed: int = 0, emotion_encoder: str | None = None):
    """A run whose speech encoder is the packaged whisper-tiny.en (frozen, pretrained: the engine's
    ``transcript="auto"`` picks its Whisper decoder, over 30 s windows) under the tiny random LLM;
    ``emotion_encoder``: the path of a frozen pretrained Whisper emotion encoder (sequence fusion),
    or None for none. Written like :func:`save_tiny_run`. Needs the packaged weights. Returns run_dir."""
    from pathlib import Path

    import torch

    from emoreason.config import EncoderConfig, LLMConfig, LoRAConfig, ModelConfig
    from emoreason.model.builder import build_model, save_pretrained

    run_dir = Path(run_dir)
    torch.manual_seed(seed)
    cfg = ModelConfig(
        speech_encoder=EncoderConfig(type="whisper", path="packaged:whisper-tiny.en", num_tokens=100),
        emotion_encoder=EncoderConfig(type="whisper", path=emotion_encoder, num_tokens=100) if emotion_encoder else None,
        fusion="sequence" if emotion_encoder else "none",
        llm=LLMConfig(path="builtin:tiny", init="random", dtype="float32"),
        lora=LoRAConfig(enabled=True, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )
    model, processor = build_model(cfg)
    save_pretrained(model, cfg, run_dir / "final")
    processor.save_pretrained(run_dir / "final")
    return run_dir


def tone_clips(n: int = 3, base_hz: float = 180.0, step_hz: float = 40.0, seconds: float = 1.5,
               step_seconds: float = 0.7) -> list:
    """``n`` (name, wave) pairs of 16 kHz float32 tones, each longer and higher than the last (a
    batch of them is padded): what engine tests analyse."""
    import numpy as np

    from emoreason.audio import SAMPLE_RATE

    out = []
    for k in range(n):
        t = np.arange(int((seconds + step_seconds * k) * SAMPLE_RATE)) / SAMPLE_RATE
        out.append((f"c{k}.wav", (0.3 * np.sin(2 * np.pi * (base_hz + step_hz * k) * t)).astype(np.float32)))
    return out
