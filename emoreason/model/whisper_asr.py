"""The speech encoder's own Whisper decoder: transcripts with word timings from the frames the
AudioLLM already computed.

    asr = WhisperDecoderASR.load(checkpoint_dir, model.speech_encoder)  # decoder weights only
    asr.transcribe(waves, frames)   # frames (B, 1500, d) of 30 s windows (None: encode) -> [Transcription, ...]

When the AudioLLM's speech encoder is a frozen, pretrained Whisper checkpoint that still holds its
decoder (the packaged ``whisper-tiny.en``, the hub's ``large-v3``), the encoder output the LLM
reads is exactly what that decoder was trained on, so a transcript costs only the small decoder:
the encoder is not run again. Only the decoder half (and its tokenizer) is loaded; the encoder is
the AudioLLM's own module, shared.

Another Whisper checkpoint can transcribe instead (the engine's ``transcriber`` setting,
:func:`resolve_transcriber`): when it is the AudioLLM's emotion encoder's checkpoint (the mini
model's packaged whisper-base) that encoder is shared the same way (``shared="emotion"``);
otherwise the checkpoint's own encoder is loaded beside the decoder and run on every window.

Whisper was trained on 30 s windows (the clip padded with silence); its decoder over a shorter
encoder output (the ``dynamic_length`` setting) loops and invents words (tiny.en on espeak
speech: "The quick round-fuck-stump, over the lazy dog. The quick round-..." for "the quick brown
fox jumps over the lazy dog"). So frames are reused only for 30 s windows; for dynamic-length
encoders :meth:`WhisperDecoderASR.transcribe` encodes the padded window itself (one more pass of
the speech encoder, the only case where it runs twice).

A clip of at most :data:`SHORT_WINDOW_MAX_SECONDS` that is encoded here is padded to a 15 s
window instead (:data:`SHORT_WINDOW_FRAMES`; whisper.cpp's ``audio_ctx``): it keeps at least as
much trailing silence as speech, close to what the decoder was trained on, for half the encoder
frames. Measured (``benchmarks/whisper_window.py``: 160 synthetic clips of 2-5 s, 78 of 6-8 s;
docs/inference.md): WER of tiny.en and base unchanged within the CIs, transcription 1.4-2.2x
faster; a 10 s window made base loop. A short-window transcript that loops anyway (as many
tokens as :data:`LOOP_TOKENS_PER_SECOND` allows) is made again in the 30 s window. Which window a
clip gets depends on that clip alone, never on its batch neighbours.

Word timings come from the decoder's cross-attention (OpenAI's method, ``whisper/timing.py``):
one teacher-forced decoder pass over the transcript tokens returns the attention of the
checkpoint's alignment heads; normalised per audio frame, median-filtered over time and averaged
over heads, it is aligned to the tokens by dynamic time warping; a word starts where its first
token's path enters and ends where the next word's starts. The path covers every frame, so pauses
land inside words; each word is then shrunk to the frames inside it that carry sound
(:func:`trim_to_sound`). Resolution is one encoder frame (20 ms); accuracy on espeak-ng words
with known boundaries: ``benchmarks/whisper_word_timing.py`` (numbers in docs/inference.md).

Each word also gets a ``probability``: the same teacher-forced pass gives the decoder's logits, and
the softmax probability of every emitted token under them is combined per word
(:func:`word_probability`, the minimum over the word's tokens). Constrained quotes can be kept to
words above a threshold (``quote_min_probability``, ``emoreason.inference.quote_constraint``).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from emoreason.audio import MEL_HOP, SAMPLE_RATE
from emoreason.hardware import decoding, with_stopping_criteria
from emoreason.model.encoders import FRAMES_PER_WINDOW


@contextmanager
def _quiet_generate() -> Iterator[None]:
    """transformers' Whisper ``generate`` warns on every call about arguments it sets itself
    (suppress tokens from the model config, the default ``max_length`` beside our
    ``max_new_tokens``): noise in every ``analyze`` output and demo log, nothing a user can act on.
    Its logger is set to errors only for the call and restored after."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


FRAME_SECONDS = 2 * MEL_HOP / SAMPLE_RATE
"""One Whisper encoder frame: 20 ms (conv2 has stride 2 over 10 ms mel hops)."""
MEDIAN_WIDTH = 7
"""Median filter over time applied to the alignment heads' attention (OpenAI's default)."""
SECONDS_PER_TOKEN_FLOOR = 1.0
"""A window's transcript with fewer text tokens than one per this many voiced seconds is decoded
again with timestamp tokens (:meth:`WhisperDecoderASR._too_short`)."""
WORD_PROBABILITY = "min"
"""How a word's ``probability`` combines its tokens' softmax probabilities: the minimum, so a
threshold on it holds for every token of the word (no quoted word has a piece under it).
openai-whisper averages instead; on our espeak speech the two tell misheard words apart equally
well (AUROC 0.815 min vs 0.817 mean, 318 tiny.en words of 36 dev clips; docs/evaluation.md)."""
MAX_NEW_TOKENS = 224
"""Per 30 s window; fast speech is ~100 tokens, the cap only stops a repetition loop."""
SHORT_WINDOW_FRAMES = FRAMES_PER_WINDOW // 2
"""Encoder frames of the short window (15 s) a short clip is transcribed in (see the module notes)."""
SHORT_WINDOW_MAX_SECONDS = 8.0
"""The longest clip transcribed in the short window: the longest measured (6-8 s clips)."""
LOOP_TOKENS_PER_SECOND = 8.0
"""Speech runs at 3-5 Whisper tokens a second; a short-window transcript with more than this
(:func:`short_window_tokens`) is a repetition loop, seen once in 16 phrases of isolated words
("turn left, up, turn, turn, turn, ..."), and the clip is transcribed again in the 30 s window."""


@dataclass
class Transcription:
    """One window's transcript: ``text`` and ``words`` (``{"text", "start", "end", "probability"}``,
    seconds from the window's start, ``start <= end``, non-decreasing; ``probability`` in [0, 1]:
    the decoder's confidence in the word, the minimum softmax probability of its tokens,
    :data:`WORD_PROBABILITY`)."""

    text: str
    words: list[dict[str, Any]] = field(default_factory=list)


def decoder_checkpoint(path: str | Path) -> Path | None:
    """The local Whisper directory at ``path`` when it holds decoder weights (safetensors), else None."""
    local = Path(path)
    files = sorted(local.glob("*.safetensors")) if local.is_dir() else []
    if not files or not (local / "tokenizer.json").is_file():
        return None
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), "pt") as handle:
            if any(k.startswith(("model.decoder.", "decoder.")) for k in handle.keys()):
                return local
    return None


def encoder_decoder_dir(encoder_type: str, path: str | None, init: str, trainable: bool) -> Path | None:
    """Where the decoder of a speech encoder config (``model.speech_encoder``'s fields) lives:
    the Whisper checkpoint directory when the encoder is that checkpoint's, unchanged (pretrained
    and frozen) and the checkpoint holds decoder weights; else None.

    A trained (fine-tuned) encoder no longer gives the frames the decoder was trained on, and a
    random one has no decoder: both get None (the engine then uses the model's own ASR task).
    ``packaged:NAME`` resolves to its prepared directory; hub ids only when they are a local path.
    """
    if encoder_type != "whisper" or init != "pretrained" or trainable or not path:
        return None
    from emoreason.weights import PREFIX, resolve_packaged

    if path.startswith(PREFIX):
        resolved = resolve_packaged(path[len(PREFIX):])
        return decoder_checkpoint(resolved) if isinstance(resolved, Path) else None
    return decoder_checkpoint(path)


def resolve_transcriber(spec: str) -> Path:
    """A transcriber setting -> the local Whisper directory whose decoder (and encoder) transcribes.

    ``spec``: ``packaged:NAME`` (weights installed from the package index; offline), a local
    Whisper directory (transformers layout: ``config.json``, ``tokenizer.json``, safetensors), or a
    hub id (fetched with huggingface_hub; offline only when already in its cache). Raises
    UserError (one line) when ``spec`` is not a Whisper checkpoint with decoder weights.
    """
    from emoreason.errors import UserError
    from emoreason.weights import PREFIX, resolve_packaged

    why = ""
    if spec.startswith(PREFIX):
        resolved = resolve_packaged(spec[len(PREFIX):])
        local = resolved if isinstance(resolved, Path) else None
    elif Path(spec).exists():
        local = Path(spec)
    else:
        local, why = _hub_snapshot(spec)
    if local is None or not _is_whisper_config(local) or decoder_checkpoint(local) is None:
        raise UserError(f"transcriber {spec!r} is not a Whisper checkpoint with a decoder{why} (a Whisper directory "
                        "with config.json, tokenizer.json and decoder weights in *.safetensors, "
                        "packaged:whisper-tiny.en, packaged:whisper-base or a Whisper hub id)")
    return local


def _hub_snapshot(repo_id: str) -> tuple[Path | None, str]:
    """(the hub checkpoint ``repo_id``'s files a transcriber needs, "") when it can be had (cached;
    HF_HUB_OFFLINE reads the cache only), else (None, why: the fetch error's class and first line,
    e.g. offline and not cached, unknown id, malformed id)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt"])), ""
    except Exception as e:  # any fetch failure: the caller's one-line error names it
        import textwrap

        # the first sentence says enough; shortened at a word boundary
        first = textwrap.shorten((str(e).strip().splitlines() or [""])[0].split(". ")[0], 200, placeholder=" ...")
        return None, f": the hub fetch failed ({type(e).__name__}{': ' + first if first else ''})"


MULTILINGUAL_VOCAB = 51865
"""Whisper checkpoints with at least this many tokens are multilingual (the English-only ``.en``
ones have 51864): openai-whisper's own test."""


def is_multilingual(path: Path) -> bool:
    """Whether the Whisper directory ``path`` (its ``config.json``) transcribes other languages
    than English."""
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    return int(config.get("vocab_size", 0)) >= MULTILINGUAL_VOCAB


def check_language(path: Path, language: str, what: str) -> None:
    """UserError (one line) when the Whisper directory ``path`` cannot transcribe ``language`` (an
    ISO 639-1 code such as ``de``): an English-only checkpoint and another language, or a code
    Whisper does not know. ``what`` names the setting in the message."""
    from emoreason.errors import UserError

    if language == "en":
        return
    if not is_multilingual(path):
        raise UserError(f"{what} transcribes English only, and the transcript language is {language!r}: give a "
                        "multilingual Whisper (--transcriber packaged:whisper-base or a hub id such as "
                        "openai/whisper-large-v3)")
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    if language not in LANGUAGES:
        raise UserError(f"unknown transcript language {language!r}: give a Whisper language code (en, de, fr, zh, ...)")


def _is_whisper_config(path: Path) -> bool:
    config = path / "config.json"
    try:
        return json.loads(config.read_text()).get("model_type") == "whisper"
    except (OSError, ValueError, AttributeError):
        return False


def _tokenizer(path: Path) -> Any:
    """The checkpoint's tokenizer: a full one when saved with a config, else the bare ``tokenizer.json``."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (path / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(path)
    return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))


class TranscriptCache:
    """Transcriptions already made, by (checkpoint, dtype, token budget, the window's samples):
    a frozen Whisper transcribes the same audio the same way, so the demo's variants, which all
    hear the same held-out clips with the same packaged Whisper, transcribe each clip once
    (``model_predictions(transcript_cache=...)``). In memory, least recently used dropped past
    ``max_entries``; entries are copied in and out (callers mark words in place:
    ``emoreason.text.transcript_check``). ``hits`` / ``misses`` count lookups."""

    def __init__(self, max_entries: int = 4096):
        from collections import OrderedDict

        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, Transcription] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(checkpoint: str, dtype: torch.dtype, max_new_tokens: int, wave: np.ndarray) -> tuple:
        import hashlib

        samples = np.ascontiguousarray(wave, dtype=np.float32)
        return checkpoint, str(dtype), max_new_tokens, samples.size, hashlib.sha1(samples.tobytes()).hexdigest()

    def get(self, key: tuple) -> Transcription | None:
        import copy

        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return copy.deepcopy(found)

    def put(self, key: tuple, value: Transcription) -> None:
        import copy

        self._entries[key] = copy.deepcopy(value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class WhisperDecoderASR:
    """Greedy Whisper transcription over given encoder frames, with word timings.

    Args:
        model: a ``WhisperForConditionalGeneration`` whose ``model.encoder`` is the AudioLLM's
            (shared, never called on the reuse path) and whose decoder holds the checkpoint's weights.
        tokenizer: the checkpoint's tokenizer.
        encoder: the checkpoint's encoder as a ``WhisperFrames``: the AudioLLM's own speech or
            emotion encoder when it is this checkpoint's, else one loaded for transcription alone;
            run only when no reusable frames are given (dynamic-length models, or ``shared`` None).
        feature_extractor: the checkpoint's ``WhisperFeatureExtractor`` (30 s log-mel), same use.
        shared: the name of the AudioLLM encoder (``speech`` / ``emotion``) that ``encoder`` is, whose
            30 s frames the decoder can read; None: ``encoder`` is not the AudioLLM's (its frames
            are always computed here).
        cache: transcriptions to reuse and add to (:class:`TranscriptCache`); None: none.
        checkpoint: the checkpoint's identity in ``cache``'s keys (its directory).
        language: what the speech is in (a Whisper language code); a multilingual checkpoint is
            told it (``<|de|>``), an English-only one takes ``en`` only (:func:`check_language`).
        short_windows: clips encoded here of at most :data:`SHORT_WINDOW_MAX_SECONDS` get the 15 s
            window (False: every clip the 30 s one, as before; for measuring the difference).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, encoder: nn.Module, feature_extractor: Any,
                 shared: str | None = "speech", cache: TranscriptCache | None = None, checkpoint: str = "",
                 language: str = "en", short_windows: bool = True):
        self.model = model
        self.short_windows = short_windows
        self.language = language
        self.cache = cache
        self.checkpoint = checkpoint
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.features = feature_extractor
        self.shared = shared
        gen = model.generation_config
        self.heads: list[list[int]] = [list(h) for h in getattr(gen, "alignment_heads", None) or []]
        if not self.heads:  # OpenAI's fallback: every head of the upper half of the decoder
            layers, heads = model.config.decoder_layers, model.config.decoder_attention_heads
            self.heads = [[layer, h] for layer in range(layers // 2, layers) for h in range(heads)]
        self.multilingual = bool(getattr(gen, "is_multilingual", False))
        if language != "en" and (not self.multilingual or f"<|{language}|>" not in getattr(gen, "lang_to_id", {})):
            from emoreason.errors import UserError

            raise UserError(f"this Whisper checkpoint cannot transcribe language {language!r}")

    @classmethod
    def load(cls, path: str | Path, encoder: nn.Module, shared: str | None = "speech",
             cache: TranscriptCache | None = None, language: str = "en",
             short_windows: bool = True) -> "WhisperDecoderASR":
        """Decoder weights of the Whisper directory ``path`` around ``encoder`` (a ``WhisperFrames``
        of the same checkpoint: the AudioLLM's encoder named ``shared``, or with ``shared`` None one
        of its own), on the encoder's device and in its dtype; ``cache``, ``language``,
        ``short_windows``: see the class."""
        from safetensors.torch import load_file
        from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

        from emoreason.weights.whisper_convert import packaged_generation_config

        path = Path(path)
        config = WhisperConfig.from_pretrained(path)
        with torch.device("meta"):
            model = WhisperForConditionalGeneration._from_config(config, attn_implementation="sdpa")
        param = next(encoder.parameters())
        state: dict[str, torch.Tensor] = {}
        for f in sorted(path.glob("*.safetensors")):
            for key, value in load_file(str(f)).items():
                name = key if key.startswith(("model.", "proj_out")) else f"model.{key}"
                if name.startswith(("model.decoder.", "proj_out.")):
                    state[name] = value.to(param.device, param.dtype)
        if "proj_out.weight" not in state:  # tied to the token embedding (not stored by the converter)
            state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
        missing, _ = model.load_state_dict(state, strict=False, assign=True)
        missing = [k for k in missing if not k.startswith("model.encoder.")]
        if missing:
            raise ValueError(f"{path}: Whisper checkpoint lacks decoder weights, e.g. {missing[:3]}")
        model.model.encoder = encoder.encoder  # shared with the AudioLLM, not a copy
        model.proj_out.weight = model.model.decoder.embed_tokens.weight
        model.eval()
        if (path / "generation_config.json").is_file():
            from transformers import GenerationConfig

            model.generation_config = GenerationConfig.from_pretrained(path)
            heads = json.loads((path / "generation_config.json").read_text()).get("alignment_heads")
            if heads:
                model.generation_config.alignment_heads = heads
        else:
            model.generation_config = packaged_generation_config(path, config)
        return cls(model, _tokenizer(path), encoder, WhisperFeatureExtractor.from_pretrained(path), shared,
                   cache=cache, checkpoint=str(path.resolve()), language=language, short_windows=short_windows)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.model.decoder.embed_tokens.weight.dtype

    def window_frames(self, wave: np.ndarray) -> int:
        """Encoder frames of the zero-padded window the (T,) clip is encoded in here: 750 (15 s)
        for a clip of at most :data:`SHORT_WINDOW_MAX_SECONDS` (unless ``short_windows`` is off), else 1500."""
        if self.short_windows and wave.size <= SHORT_WINDOW_MAX_SECONDS * SAMPLE_RATE:
            return SHORT_WINDOW_FRAMES
        return FRAMES_PER_WINDOW

    def encode(self, waves: list[np.ndarray], window: int | None = None) -> torch.Tensor:
        """(T,) 16 kHz windows -> (B, window, d) frames of the clips zero-padded to ``window`` encoder
        frames (None: the largest :meth:`window_frames` of the clips) (the dynamic-length case: the
        AudioLLM's own frames are shorter than Whisper expects)."""
        window = window or max(self.window_frames(w) for w in waves)
        # The log-mel of the clip padded to the window only (two mel frames of 160 samples per
        # encoder frame): equal to the 30 s log-mel cut there, since the padding is silence and the
        # extractor's normalisation (clamp to 8 below the peak) is set by the speech, and a 15 s
        # window's mel takes a quarter of the time.
        mel = self.features(waves, sampling_rate=SAMPLE_RATE, padding="max_length", max_length=window * 2 * MEL_HOP,
                            return_tensors="pt").input_features
        param = next(self.encoder.parameters())
        frames, _ = self.encoder(mel[:, :, : 2 * window].to(param.device, param.dtype))
        return frames

    @torch.inference_mode()
    def transcribe(self, waves: list[np.ndarray], frames: torch.Tensor | None = None,
                   max_new_tokens: int = MAX_NEW_TOKENS) -> list[Transcription]:
        """Windows (each (T,) float32 16 kHz, T <= 30 s) -> one :class:`Transcription` each.

        ``frames``: (B, 1500, d) the speech encoder's output for these windows padded to 30 s (the
        AudioLLM's, reused); None: encoded here (dynamic-length models). Windows already in
        ``self.cache`` are not transcribed again.
        """
        if self.cache is None:
            return self._transcribe(waves, frames, max_new_tokens)
        windows = [FRAMES_PER_WINDOW if frames is not None else self.window_frames(w) for w in waves]
        keys = [self.cache.key(f"{self.checkpoint}|{self.language}|{n}", self.dtype, max_new_tokens, w)
                for w, n in zip(waves, windows)]
        found: list[Transcription | None] = [self.cache.get(k) for k in keys]
        todo = [i for i, t in enumerate(found) if t is None]
        if todo:
            made = self._transcribe([waves[i] for i in todo], frames[todo] if frames is not None else None, max_new_tokens)
            for i, t in zip(todo, made):
                self.cache.put(keys[i], t)
                found[i] = t
        return found  # type: ignore[return-value]  (every entry filled)

    def _transcribe(self, waves: list[np.ndarray], frames: torch.Tensor | None,
                    max_new_tokens: int) -> list[Transcription]:
        if frames is not None:
            if frames.shape[1] != FRAMES_PER_WINDOW:
                raise ValueError(f"reused frames must be of 30 s windows ({FRAMES_PER_WINDOW}), got {frames.shape[1]}")
            return self._decode(waves, frames, max_new_tokens)
        # Each window size is encoded and decoded on its own: a clip's transcript depends on it alone.
        windows = [self.window_frames(w) for w in waves]
        results: list[Transcription | None] = [None] * len(waves)
        short = [i for i, n in enumerate(windows) if n == SHORT_WINDOW_FRAMES]
        if short:
            group = [waves[i] for i in short]
            limits = [short_window_tokens(w) for w in group]
            made = self._decode(group, self.encode(group, SHORT_WINDOW_FRAMES), min(max_new_tokens, max(limits)), limits)
            for i, found in zip(short, made):
                results[i] = found  # None: it looped (more tokens than speech has); the 30 s window below
        rest = [i for i, found in enumerate(results) if found is None]
        if rest:
            group = [waves[i] for i in rest]
            for i, found in zip(rest, self._decode(group, self.encode(group, FRAMES_PER_WINDOW), max_new_tokens)):
                results[i] = found
        return results  # type: ignore[return-value]  (every entry filled)

    def _decode(self, waves: list[np.ndarray], frames: torch.Tensor, max_new_tokens: int,
                limits: list[int] | None = None) -> list[Transcription | None]:
        """Greedy transcripts with word timings of ``waves`` from their encoder ``frames`` (B, F, d).
        ``limits``: per clip, text tokens it must stay under (``max_new_tokens`` is at most their
        largest); a clip that reaches its limit gets None (a repetition loop)."""
        from transformers.modeling_outputs import BaseModelOutput

        frames = frames.to(self.dtype)
        extra = {"language": self.language, "task": "transcribe"} if self.multilingual else {}
        with decoding() as tuning, _quiet_generate():  # token by token: the caller's decode threads (emoreason.hardware)
            out = self.model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=frames), num_beams=1,
                                      do_sample=False, return_timestamps=False, max_new_tokens=max_new_tokens,
                                      **with_stopping_criteria(extra, tuning))
        rows = out.tolist()
        for i in self._too_short(rows, waves):
            # Greedy decoding without timestamps sometimes ends a long window after one word (seen:
            # " I" then <|endoftext|> on 30 s of continuous speech); decoding the same frames with
            # timestamp tokens reads the whole window. The timestamps are dropped (``_align`` keeps
            # text tokens only), the word timings still come from the alignment.
            with decoding() as tuning, _quiet_generate():
                again = self.model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=frames[i : i + 1]), num_beams=1,
                                            do_sample=False, return_timestamps=True, max_new_tokens=max_new_tokens,
                                            **with_stopping_criteria(extra, tuning))
            retry = self._timed_text(again.tolist()[0], waves[i].size / SAMPLE_RATE)
            if self._text_count(retry) > self._text_count(rows[i]):
                rows[i] = retry
        results: list[Transcription | None] = []
        for i, row in enumerate(rows):
            if limits is not None and self._text_count(row) >= limits[i]:  # reached: looping (or cut there)
                results.append(None)
                continue
            valid = max(1, min(frames.shape[1], int(np.ceil(waves[i].size / SAMPLE_RATE / FRAME_SECONDS))))
            found = self._align(frames[i : i + 1], row, valid)
            found.words = trim_to_sound(found.words, waves[i])
            results.append(found)
        return results

    def _text_count(self, row: list[int]) -> int:
        """Text tokens (not special or timestamp tokens) in a generated row."""
        eot = self.model.generation_config.eos_token_id
        return sum(1 for t in row if t < eot)

    def _timed_text(self, row: list[int], seconds: float) -> list[int]:
        """Text tokens of a row decoded with timestamps, segment by segment, up to the first segment
        that goes back in time or ends past the window (``seconds`` long): there the decoder has
        started to repeat the window (seen on the clip of ``_too_short``'s note)."""
        gen = self.model.generation_config
        eot, begin = gen.eos_token_id, gen.no_timestamps_token_id + 1
        kept: list[int] = []
        segment: list[int] = []
        start, last_end = None, 0.0
        for t in row:
            if t < eot:
                segment.append(t)
            elif t >= begin:
                time = (t - begin) * 0.02
                if start is None:
                    start, segment = time, []
                    continue
                if start < last_end - 0.01 or time > seconds + 1.0:
                    break
                kept += segment
                start, last_end, segment = None, time, []
        return kept

    def _too_short(self, rows: list[list[int]], waves: list[np.ndarray]) -> list[int]:
        """Rows whose text is far too short for their window: under one text token per
        ``SECONDS_PER_TOKEN_FLOOR`` seconds of audio above -40 dB of its peak, on at least 8 s of
        such audio. Speech runs at 3-5 tokens a second, so only a decode that stopped early
        (or a window of near silence, which the retry leaves as it was) falls under it."""
        short = []
        for i, (row, wave) in enumerate(zip(rows, waves)):
            voiced = _voiced_seconds(wave)
            if voiced >= 8.0 and self._text_count(row) < voiced / SECONDS_PER_TOKEN_FLOOR:
                short.append(i)
        return short

    def _prompt_ids(self) -> list[int]:
        """The decoder prompt greedy decoding starts from: <|startoftranscript|> (+ the language,
        e.g. <|en|>, and <|transcribe|> for multilingual checkpoints) <|notimestamps|>."""
        gen = self.model.generation_config
        ids = [gen.decoder_start_token_id]
        if self.multilingual:
            ids += [gen.lang_to_id[f"<|{self.language}|>"], gen.task_to_id["transcribe"]]
        return ids + [gen.no_timestamps_token_id]

    def _align(self, frames: torch.Tensor, row: list[int], valid_frames: int) -> Transcription:
        """One generated row -> text and word timings (cross-attention DTW over ``valid_frames``)."""
        # Whisper's special tokens (<|endoftext|>, <|startoftranscript|>, languages, timestamps)
        # all come after the text vocabulary, from <|endoftext|> on.
        eot = self.model.generation_config.eos_token_id
        text_tokens = [t for t in row if t < eot]  # generate may or may not return the prompt tokens
        text = self.tokenizer.decode(text_tokens).strip()
        if not text_tokens:
            return Transcription(text)
        prompt = self._prompt_ids()
        start = len(prompt)
        seq = prompt + text_tokens + [eot]
        ids = torch.tensor([seq], device=frames.device)
        # Eager attention for this one pass: SDPA (used for generation, faster) returns no weights.
        self.model.set_attn_implementation("eager")
        try:
            out = self.model(encoder_outputs=(frames,), decoder_input_ids=ids, output_attentions=True, use_cache=False)
        finally:
            self.model.set_attn_implementation("sdpa")
        # cross_attentions: per layer (1, heads, tokens, 1500) softmax weights. The attention at
        # input position p is what predicts token p + 1: rows start-1 .. N+start-1 (the last prompt
        # token through the last text token) are where text tokens 0..N-1 and then eot are decided.
        weights = torch.stack([out.cross_attentions[layer][0, head] for layer, head in self.heads])
        weights = weights[:, start - 1 : -1, :valid_frames].float()  # (H, N + 1, valid frames)
        weights = (weights - weights.mean(dim=-2, keepdim=True)) / weights.std(dim=-2, keepdim=True, unbiased=False).clamp_min(1e-8)
        matrix = _median_filter(weights, MEDIAN_WIDTH).mean(0).cpu().double().numpy()  # (N + 1, F)
        token_rows, frame_cols = dtw(-matrix)
        jumps = np.diff(token_rows, prepend=-1).astype(bool)  # first path cell of each token row
        starts = frame_cols[jumps] * FRAME_SECONDS  # (N + 1,): token i starts at starts[i]; eot ends the last word
        # logits at input position start-1+i predict text token i (the same rows as the attention)
        token_probs = _token_probabilities(out.logits[0, start - 1 : start - 1 + len(text_tokens)], text_tokens)
        words, bounds = _words(self.tokenizer, text_tokens)
        return Transcription(text, [
            {"text": w, "start": round(float(starts[a]), 3), "end": round(float(starts[b]), 3),
             "probability": round(word_probability(token_probs[a:b]), 4)}
            for w, (a, b) in zip(words, bounds)
        ])


def short_window_tokens(wave: np.ndarray) -> int:
    """The most text tokens a clip transcribed in the short window may have before it counts as a
    repetition loop: :data:`LOOP_TOKENS_PER_SECOND` per second of the (T,) 16 kHz clip, plus 16."""
    return int(np.ceil(LOOP_TOKENS_PER_SECOND * wave.size / SAMPLE_RATE)) + 16


def _token_probabilities(logits: torch.Tensor, tokens: list[int]) -> np.ndarray:
    """Softmax probability of each emitted token under the logits that chose it.

    ``logits``: (N, V) the teacher-forced decoder's logits at the positions predicting ``tokens``
    (N of them). Returns (N,) float64 in [0, 1]. For greedy decoding without timestamps these are
    the probabilities the decoder had when it picked each token (same prefix, same frames); after
    the timestamp retry (``_too_short``) they are re-read without the timestamp tokens.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)  # fp32: bf16 log-softmax loses the small ones
    picked = logp[torch.arange(len(tokens), device=logp.device), torch.tensor(tokens, device=logp.device)]
    return picked.exp().clamp(0.0, 1.0).cpu().double().numpy()


def word_probability(token_probs: np.ndarray, how: str | None = None) -> float:
    """One word's confidence from its tokens' probabilities ((n,), n >= 1): ``how`` (default
    :data:`WORD_PROBABILITY`) ``min`` or ``mean``."""
    how = how or WORD_PROBABILITY
    if how == "min":
        return float(token_probs.min())
    if how == "mean":
        return float(token_probs.mean())
    raise ValueError(f"unknown word probability {how!r} (min or mean)")


def _voiced_seconds(wave: np.ndarray, range_db: float = 40.0, hop: int = 320) -> float:
    """Seconds of (T,) 16 kHz audio whose 20 ms frames are within ``range_db`` of the loudest one."""
    n = wave.size // hop
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(wave[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    return float((db > db.max() - range_db).sum() * hop / SAMPLE_RATE)


def trim_to_sound(words: list[dict[str, Any]], wave: np.ndarray, range_db: float = 40.0,
                  floor_db: float = 10.0) -> list[dict[str, Any]]:
    """Shrink each word's span to the 20 ms frames inside it that carry sound.

    The alignment path covers every frame, so a pause is given to a neighbouring word (a word
    "lasts" until the next one starts). A frame carries sound when its level is within
    ``range_db`` of the clip's loudest frame and ``floor_db`` above its noise floor (10th
    percentile); a word with no such frame keeps its span. Spans only shrink: order is kept.
    """
    hop = int(FRAME_SECONDS * SAMPLE_RATE)
    n = wave.size // hop
    if n == 0 or not words:
        return words
    rms = np.sqrt((wave[: n * hop].astype(np.float64).reshape(n, hop) ** 2).mean(1))
    level = 20 * np.log10(rms + 1e-10)
    loud = level > max(level.max() - range_db, np.percentile(level, 10) + floor_db)
    out = []
    for w in words:
        a, b = int(round(w["start"] / FRAME_SECONDS)), int(round(w["end"] / FRAME_SECONDS))
        hits = np.flatnonzero(loud[a:b])
        if hits.size:
            w = {**w, "start": round(float(a + hits[0]) * FRAME_SECONDS, 3),
                 "end": round(float(a + hits[-1] + 1) * FRAME_SECONDS, 3)}
        out.append(w)
    return out


def _words(tokenizer: Any, tokens: list[int]) -> tuple[list[str], list[tuple[int, int]]]:
    """Split text tokens into words: a token whose text starts with a space opens a new word
    (punctuation stays with the word before it). Returns the words and their [first, end) token
    index ranges."""
    words: list[str] = []
    bounds: list[tuple[int, int]] = []
    for i, tok in enumerate(tokens):
        piece = tokenizer.decode([tok])
        if not words or piece.startswith(" ") and piece.strip():
            words.append(piece.strip())
            bounds.append((i, i + 1))
        else:
            words[-1] += piece
            bounds[-1] = (bounds[-1][0], i + 1)
    keep = [k for k, w in enumerate(words) if w.strip()]
    return [words[k] for k in keep], [bounds[k] for k in keep]


def _median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over the last axis with a ``width`` window (reflect-padded); (..., F) -> (..., F)."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    flat = x.reshape(-1, 1, x.shape[-1])  # reflect padding wants (N, C, F)
    padded = nn.functional.pad(flat, (pad, pad), mode="reflect")
    return padded.unfold(-1, width, 1).median(dim=-1).values.reshape(x.shape)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotone alignment of rows (tokens) to columns (frames): the path from (0, 0) to
    (N-1, F-1) with steps right, down or diagonal that minimises the summed ``cost`` (N, F).

    Returns the path's row and column indices, in order. Each row is filled in one vectorised
    step: with a = cost[i] + min(upper-left, upper), D[i, j] = min_k<=j (a[k] + cost[i, k+1..j]),
    a running minimum over prefix sums.
    """
    n, f = cost.shape
    total = np.full((n + 1, f + 1), np.inf)
    total[0, 0] = 0.0
    step = np.zeros((n, f), dtype=np.int8)  # 0 diagonal, 1 from above, 2 from the left
    for i in range(n):
        diag, up = total[i, :-1], total[i, 1:]
        a = cost[i] + np.minimum(diag, up)
        prefix = np.cumsum(cost[i])
        best = np.minimum.accumulate(a - prefix) + prefix
        # best <= a holds exactly in arithmetic; the prefix sums add rounding, so "came from the
        # left" needs a clear margin (ties go to the diagonal / upper move).
        left = best < a - 1e-9 * np.maximum(1.0, np.abs(np.where(np.isfinite(a), a, 0.0)))
        total[i + 1, 1:] = np.where(left, best, a)
        step[i] = np.where(left, 2, np.where(diag <= up, 0, 1))
    rows, cols = [], []
    i, j = n - 1, f - 1
    while i >= 0 and j >= 0:
        rows.append(i)
        cols.append(j)
        move = step[i, j]
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    return np.array(rows[::-1]), np.array(cols[::-1])
