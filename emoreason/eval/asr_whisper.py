"""ASR for the cascade baseline (paper Table 5): any Whisper checkpoint through transformers.

    asr = WhisperASR("openai/whisper-large-v3")   # hub id (or a local directory)
    asr = WhisperASR("packaged:whisper-tiny.en")  # offline: weights installed from the package index
    asr.transcribe([wave, ...])                   # float32 (T,) at 16 kHz, any length -> texts

Greedy decoding (one beam, no sampling), English, no timestamps. Clips longer than Whisper's 30 s
window are cut into consecutive 30 s windows whose transcripts are joined with a space: simple and
the same for every checkpoint (transformers' own long-form path needs timestamp tokens that the
packaged models' generation settings do not describe). All windows of a call are decoded in
batches of ``batch_size``; Whisper pads every window to 30 s, so batching changes nothing but speed.

The packaged directories (converted from CTranslate2 by :mod:`emoreason.weights.whisper_convert`)
hold the model, the feature extractor and a bare ``tokenizer.json`` but no generation config or
tokenizer config; both are derived from ``tokenizer.json`` (the generation config by
:func:`emoreason.weights.whisper_convert.packaged_generation_config`) rather than changing the
converted cache format.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emoreason.audio import SAMPLE_RATE, WINDOW_SAMPLES
from emoreason.errors import UserError
from emoreason.weights.whisper_convert import packaged_generation_config

DEFAULT_ASR = "packaged:whisper-tiny.en"
"""The cascade's default ASR: offline, small, what the paper-scale numbers were not made with."""
MAX_NEW_TOKENS = 224
"""Per 30 s window. Fast speech is ~100 tokens per window; the cap only stops a repetition loop."""


def split_windows(wave: np.ndarray, window: int = WINDOW_SAMPLES) -> list[np.ndarray]:
    """(T,) -> ceil(T / window) consecutive pieces of equal length (the last up to n-1 samples shorter).

    Equal pieces rather than 30 s + remainder: a 31 s clip becomes two 15.5 s windows instead of a
    30 s window and a 1 s scrap, on which Whisper tends to hallucinate ("Thank you.").
    """
    n = max(1, -(-len(wave) // window))
    size = -(-len(wave) // n)
    return [wave[i:i + size] for i in range(0, max(len(wave), 1), size)] if len(wave) else [wave]


def resolve_asr_spec(spec: str) -> str | Path:
    """``packaged:NAME`` -> its converted directory; a hub id or a local directory as given."""
    from emoreason.weights import PREFIX, resolve_packaged

    if spec.startswith(PREFIX):
        path = resolve_packaged(spec)
        if not isinstance(path, Path):
            raise UserError(f"--cascade-asr {spec}: not a Whisper model")
        return path
    return spec


class WhisperASR:
    """Greedy English Whisper transcription with transformers; :meth:`transcribe` batches windows."""

    def __init__(self, spec: str = DEFAULT_ASR, device: str | None = None, batch_size: int = 16,
                 max_new_tokens: int = MAX_NEW_TOKENS):
        import torch
        from transformers import WhisperForConditionalGeneration

        self.spec = spec
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # float16 on a GPU halves memory and time for large-v3; CPU half kernels are slow or missing.
        self.dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        source = resolve_asr_spec(spec)
        try:
            self.model = WhisperForConditionalGeneration.from_pretrained(source, dtype=self.dtype).to(self.device).eval()
        except OSError as e:
            raise UserError(f"--cascade-asr {spec}: cannot load a Whisper model ({str(e).splitlines()[0]})") from None
        self.features, self.tokenizer = self._processor(source)
        local = Path(source)
        if local.is_dir() and not (local / "generation_config.json").is_file():
            self.model.generation_config = packaged_generation_config(local, self.model.config)
        self.multilingual = bool(getattr(self.model.generation_config, "is_multilingual",
                                         self.model.config.vocab_size >= 51865))

    @staticmethod
    def _processor(source: str | Path) -> tuple[Any, Any]:
        """(feature extractor, tokenizer): ``WhisperProcessor`` when the checkpoint has one; the
        packaged directories have only ``tokenizer.json``, read as a plain fast tokenizer."""
        from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor, WhisperProcessor

        local = Path(source)
        if local.is_dir() and not (local / "tokenizer_config.json").is_file() and (local / "tokenizer.json").is_file():
            return (WhisperFeatureExtractor.from_pretrained(local),
                    PreTrainedTokenizerFast(tokenizer_file=str(local / "tokenizer.json")))
        processor = WhisperProcessor.from_pretrained(source)
        return processor.feature_extractor, processor.tokenizer

    def _decode_windows(self, windows: list[np.ndarray]) -> list[str]:
        """<= 30 s windows -> texts, one ``generate`` call per batch."""
        import torch

        texts: list[str] = []
        extra = {"language": "en", "task": "transcribe"} if self.multilingual else {}
        for start in range(0, len(windows), self.batch_size):
            batch = windows[start:start + self.batch_size]
            feats = self.features(batch, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
            with torch.inference_mode():
                ids = self.model.generate(feats.to(self.device, self.dtype), num_beams=1, do_sample=False,
                                          return_timestamps=False, max_new_tokens=self.max_new_tokens, **extra)
            texts += [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return texts

    def transcribe(self, waves: list[np.ndarray]) -> list[str]:
        """float32 (T,) waves at 16 kHz, any length -> one transcript each (windows joined by a space)."""
        return transcribe_in_windows(waves, self._decode_windows)


def transcribe_in_windows(waves: list[np.ndarray], decode: Callable[[list[np.ndarray]], list[str]]) -> list[str]:
    """Cut every wave into <= 30 s windows (:func:`split_windows`), decode all windows in one call
    (so windows of different clips share batches), and join each clip's texts with a space."""
    windows: list[np.ndarray] = []
    owner: list[int] = []
    for i, wave in enumerate(waves):
        pieces = split_windows(np.asarray(wave, dtype=np.float32))
        windows += pieces
        owner += [i] * len(pieces)
    out: list[list[str]] = [[] for _ in waves]
    for i, text in zip(owner, decode(windows), strict=True):
        if text:
            out[i].append(text)
    return [" ".join(parts) for parts in out]
