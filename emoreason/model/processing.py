"""Processing beside the model: the LLM's audio tokens, and the processor that turns
waveforms + prompts (+ targets) into model-ready tensors (as transformers keeps qwen2_audio's
processor beside its model).

Audio tokens. Every LLM gets three special tokens: ``<audio_start>``, ``<audio>`` (the placeholder the model
replaces with adapter outputs) and ``<audio_end>``. For the built-in tokenizer they are part of the
vocabulary; for real LLMs :func:`add_audio_tokens` appends them (the builder then grows the
embedding matrix only if the tokenizer outgrew it; see ``builder._fit_embeddings``).

Why real special tokens and not plain-text markers: a placeholder must be exactly one token so that
"N placeholders" is a token count the processor and the model agree on; the start/end markers are
special too so that no user text can forge them. Their embedding rows are never trained (LoRA only):
``<audio>`` rows are overwritten by audio embeddings, the markers keep a fixed (mean) embedding.

The processor is the single place that decides how many audio tokens a clip gets, and it builds the loss mask
in the same pass that renders the chat (nanochat's ``render_conversation`` idea): the prompt part
(chat template with the generation prompt) and the whole conversation are rendered, the whole text
must start with the prompt text, and the labels are the tokens after the prompt. Because the
prompt is tokenised on its own in both cases, training sees exactly the prompt tokens that
``generate`` / ``score_candidates`` see.

User turn: ``<audio_start>`` + ``<audio>`` x N + ``<audio_end>`` + instruction, where

- N = speech tokens + emotion tokens + ``emotion_pooled_tokens`` (fusion ``sequence``), speech
  tokens + ``emotion_pooled_tokens`` (``none``; 0 unless ``model.single_encoder_pooled``), or speech
  tokens (``feature``);
- speech tokens = ``num_tokens`` (100) for a 30 s window, or with ``dynamic_length``
  ceil(ceil(ceil(samples / 160) / 2) / k) with k = 1500 / num_tokens (the clip's real length
  rounded up to the adapter's group size).

Clips longer than 30 s are cut to 30 s (split long audio with ``emoreason.audio.split_windows``).

Transcript in context ("transcribe, then reason", ``data.transcript_in_prompt``): a processor made
with ``transcript_in_prompt=True`` renders a row's transcript between the audio and the
instruction (:func:`transcript_context`), for the rows that are given one; the option is saved in
``processor_config.json`` so inference renders what training did.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from emoreason.audio import MEL_FRAMES, MEL_HOP, SAMPLE_RATE, WINDOW_SAMPLES
from emoreason.model.encoders import FRAMES_PER_WINDOW
from emoreason.text.reserved import AUDIO, AUDIO_END, AUDIO_START  # defined once, in the core layer

if TYPE_CHECKING:  # heavy import only for type checkers
    from transformers import PreTrainedTokenizerBase

AUDIO_TOKENS = [AUDIO_START, AUDIO, AUDIO_END]

# The tiny tokenizer's specials, in id order after the 256 byte tokens.
_TINY_SPECIALS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", *AUDIO_TOKENS]

# Roles are rendered as special tokens; the end-of-turn token doubles as EOS so generation stops at
# the end of the assistant turn and the loss teaches the model to emit it.
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def build_tiny_tokenizer() -> "PreTrainedTokenizerBase":
    """Byte-level tokenizer (256 byte tokens + 9 specials = 265 ids), built in code, no files.

    Every UTF-8 string round-trips; there are no merges, so one byte is one token (fine for tests,
    which is all this is for).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for bytes
    # Deterministic ids: sort by the byte each character stands for.
    byte_chars = sorted(alphabet, key=_byte_of)
    vocab = {ch: i for i, ch in enumerate(byte_chars)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=[t for t in _TINY_SPECIALS if t not in ("<|pad|>", "<|bos|>", "<|end|>")],
    )
    # Specials are added in the order given above; re-add any missing (idempotent).
    tok.add_special_tokens({"additional_special_tokens": [t for t in _TINY_SPECIALS[3:]]})
    tok.chat_template = TINY_CHAT_TEMPLATE
    tok.padding_side = "right"
    return tok


def _byte_of(ch: str) -> int:
    """Inverse of GPT-2's bytes_to_unicode for one character."""
    code = ord(ch)
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def _vocab_ids(tokenizer: "PreTrainedTokenizerBase", tokens: Sequence[str]) -> dict[str, int]:
    """token -> id for those of ``tokens`` the tokenizer has. The added tokens are looked at first:
    the audio tokens are added ones, and ``get_vocab()`` builds the whole vocabulary as a dict
    (~0.1 s for SmolLM2's 49k tokens, and it was called three times per model load)."""
    added = tokenizer.get_added_vocab()
    if all(t in added for t in tokens):
        return {t: added[t] for t in tokens}
    vocab = tokenizer.get_vocab()
    return {t: vocab[t] for t in tokens if t in vocab}


def add_audio_tokens(tokenizer: "PreTrainedTokenizerBase") -> int:
    """Register the three audio tokens as special tokens (no-op when present); return how many were new."""
    missing = [t for t in AUDIO_TOKENS if t not in _vocab_ids(tokenizer, AUDIO_TOKENS)]
    if not missing:
        return 0
    return tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)


def audio_token_ids(tokenizer: "PreTrainedTokenizerBase") -> tuple[int, int, int]:
    """(start, placeholder, end) ids; raises ValueError when the tokenizer lacks them."""
    vocab = _vocab_ids(tokenizer, AUDIO_TOKENS)
    missing = [t for t in AUDIO_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"tokenizer has no {missing} tokens: call add_audio_tokens() first")
    return vocab[AUDIO_START], vocab[AUDIO], vocab[AUDIO_END]


# ---------------------------------------------------------------------------------------------- processor
PROCESSOR_CONFIG = "processor_config.json"


def transcript_context(transcript: str, prompt: str) -> str:
    """The user text after the audio when the transcript is in context: the transcript on its own
    line, quoted (so the model sees where what was said starts and ends, the same marks its
    explanations quote with), then the instruction."""
    return f'Transcript: "{transcript.strip()}"\n{prompt}'


@dataclass
class FeatureSpec:
    """What one encoder wants as input, and how many tokens its adapter emits."""

    kind: str
    """``mel`` (Whisper log-mel) or ``wave`` (raw 16 kHz waveform)."""
    num_tokens: int
    """Adapter tokens for a full 30 s window."""
    num_mel_bins: int = 80
    dynamic_length: bool = False
    """``mel`` only: cut features to the clip's own length (rounded up to the group size)."""
    normalize: bool = False
    """``wave`` only: zero mean / unit variance over the clip before zero-padding."""
    normalize_eps: float = 1e-5

    @property
    def group(self) -> int:
        """Encoder frames per adapter token (k)."""
        return FRAMES_PER_WINDOW // self.num_tokens

    def tokens_for(self, num_samples: int) -> int:
        """Audio tokens this encoder contributes for a clip of ``num_samples`` (<= 30 s)."""
        if not self.dynamic_length:
            return self.num_tokens
        mel = min(MEL_FRAMES, math.ceil(num_samples / MEL_HOP))
        frames = math.ceil(mel / 2)
        return max(1, math.ceil(frames / self.group))


class AudioProcessor:
    """Turns a batch of (wave, prompt[, target]) into the model's input dict.

    Args:
        tokenizer: the LLM's tokenizer, with the audio special tokens and a chat template.
        speech: the speech encoder's :class:`FeatureSpec`.
        emotion: the emotion encoder's spec, None for fusion ``none``.
        fusion: ``sequence`` | ``feature`` | ``none``.
        window_seconds: how long the windows are that inference cuts longer audio into
            (``emoreason.audio.split_windows``); training sets it from its clips' lengths
            (``audio.window_for_clips``); None: 30 s (configs saved before it existed).
    """

    def __init__(self, tokenizer: Any, speech: FeatureSpec, emotion: FeatureSpec | None, fusion: str,
                 system_prompt: str | None = None, transcript_in_prompt: bool = False, emotion_pooled_tokens: int = 0,
                 window_seconds: float | None = None):
        if fusion not in ("sequence", "feature", "none"):
            raise ValueError(f"unknown fusion {fusion!r}")
        if fusion != "none" and emotion is None:
            raise ValueError(f"fusion {fusion!r} needs an emotion encoder spec")
        self.tokenizer = tokenizer
        self.speech = speech
        self.emotion = emotion if fusion != "none" else None
        self.fusion = fusion
        # None: the chat template's own default (SmolLM2 injects a ~20-token system line when no
        # system message is given); a string (even "") is rendered as the system message.
        self.system_prompt = system_prompt
        # "Transcribe, then reason": rows given a transcript carry it after the audio (module docstring)
        self.transcript_in_prompt = transcript_in_prompt
        # Clip-level tokens after the last adapter's frame tokens (model.emotion_pooled_tokens): the
        # emotion adapter's (sequence) or the speech adapter's (none, model.single_encoder_pooled)
        self.emotion_pooled_tokens = emotion_pooled_tokens if fusion in ("sequence", "none") else 0
        self.window_seconds = window_seconds
        self.audio_start_id, self.audio_id, self.audio_end_id = audio_token_ids(tokenizer)
        self._mel_extractors: dict[int, Any] = {}

    # ------------------------------------------------------------------ token counts
    def num_audio_tokens(self, num_samples: int) -> int:
        """Placeholder count N for one clip of ``num_samples`` (16 kHz)."""
        n = min(num_samples, WINDOW_SAMPLES)
        count = self.speech.tokens_for(n) + self.emotion_pooled_tokens
        if self.fusion == "sequence":
            count += self.emotion.tokens_for(n)
        return count

    @property
    def pad_token_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    # ------------------------------------------------------------------ text
    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _chat(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def render(self, prompt: str, target: str | None, num_audio: int,
               max_target_tokens: int | None = None, transcript: str | None = None) -> tuple[list[int], list[int] | None]:
        """One conversation -> (input_ids, labels or None); labels are -100 on the prompt part.

        ``transcript``: rendered before the instruction (:func:`transcript_context`) when this
        processor has ``transcript_in_prompt``; ignored otherwise, so callers may always pass it.

        ``max_target_tokens`` cuts the response (end-of-turn tokens included) to that many tokens:
        long teacher explanations cost training time quadratically and the label sentence, which
        carries the answer, always comes first.

        Raises ValueError when the chat template does not render the prompt as a prefix of the
        whole conversation, or when the tokenizer does not keep ``<audio>`` as one token.
        """
        if self.transcript_in_prompt and transcript is not None:
            prompt = transcript_context(transcript, prompt)
        user = {"role": "user", "content": f"{AUDIO_START}{AUDIO * num_audio}{AUDIO_END}{prompt}"}
        system = [] if self.system_prompt is None else [{"role": "system", "content": self.system_prompt}]
        prompt_text = self._chat([*system, user], generation_prompt=True)
        prompt_ids = self._encode(prompt_text)
        found = prompt_ids.count(self.audio_id)
        if found != num_audio:
            raise ValueError(f"prompt renders {found} {AUDIO} tokens, expected {num_audio} (does the text contain {AUDIO}?)")
        if target is None:
            return prompt_ids, None
        full_text = self._chat([*system, user, {"role": "assistant", "content": target}], generation_prompt=False)
        if not full_text.startswith(prompt_text):
            raise ValueError("the chat template does not render the prompt as a prefix of the conversation; "
                             "cannot build a loss mask for it")
        response_ids = self._encode(full_text[len(prompt_text):])
        if max_target_tokens is not None and max_target_tokens > 0:
            response_ids = response_ids[:max_target_tokens]
        return prompt_ids + response_ids, [-100] * len(prompt_ids) + response_ids

    # ------------------------------------------------------------------ audio
    def _mel_extractor(self, n_mels: int) -> Any:
        if n_mels not in self._mel_extractors:
            from transformers import WhisperFeatureExtractor

            self._mel_extractors[n_mels] = WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=SAMPLE_RATE)
        return self._mel_extractors[n_mels]

    def features(self, spec: FeatureSpec, waves: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Encoder inputs for one encoder.

        mel: ``features`` (B, n_mels, 3000) float32; with dynamic_length (B, n_mels, M) cut to the
        longest clip's rounded length plus ``mask`` (B, M) int64 marking each clip's own frames.
        wave: ``features`` (B, 480000) float32, normalised per clip (optional), zero-padded.
        """
        if spec.kind == "mel":
            mel = self._mel_extractor(spec.num_mel_bins)(
                waves, sampling_rate=SAMPLE_RATE, padding="max_length", return_tensors="np"
            )["input_features"].astype(np.float32)
            if not spec.dynamic_length:
                return {"features": mel}
            lengths = np.array([spec.tokens_for(w.size) * spec.group * 2 for w in waves])
            m = int(lengths.max())
            mask = (np.arange(m)[None, :] < lengths[:, None]).astype(np.int64)
            return {"features": np.ascontiguousarray(mel[:, :, :m]), "mask": mask}
        if spec.kind == "wave":
            out = np.zeros((len(waves), WINDOW_SAMPLES), dtype=np.float32)
            for i, w in enumerate(waves):
                if spec.normalize:  # over the clip's own samples, before padding (data2vec / HuBERT style)
                    w = (w - w.mean()) / np.sqrt(w.var() + spec.normalize_eps)
                out[i, : w.size] = w
            return {"features": out}
        raise ValueError(f"unknown feature kind {spec.kind!r}")

    # ------------------------------------------------------------------ batch
    def __call__(self, waves: Sequence[np.ndarray], prompts: Sequence[str], targets: Sequence[str] | None = None,
                 max_target_tokens: int | None = None,
                 transcripts: Sequence[str | None] | None = None) -> dict[str, Any]:
        """Batch of clips -> dict of torch tensors (``max_target_tokens``, ``transcripts``: one
        per row or None, see :meth:`render`).

        Returns ``input_ids`` / ``attention_mask`` (B, L) int64 (right-padded with targets,
        left-padded without), ``labels`` (B, L) when targets are given, ``speech_features``,
        ``emotion_features`` (when there is an emotion encoder) and ``speech_attention_mask`` /
        ``emotion_attention_mask`` for dynamic-length Whisper inputs.
        """
        import torch

        if (len(waves) != len(prompts) or (targets is not None and len(targets) != len(waves))
                or (transcripts is not None and len(transcripts) != len(waves))):
            raise ValueError(f"batch sizes differ: {len(waves)} waves, {len(prompts)} prompts"
                             + (f", {len(targets)} targets" if targets is not None else "")
                             + (f", {len(transcripts)} transcripts" if transcripts is not None else ""))
        if not waves:
            raise ValueError("empty batch")
        waves = [np.asarray(w, dtype=np.float32).reshape(-1)[:WINDOW_SAMPLES] for w in waves]
        rows = [self.render(p, None if targets is None else targets[i], self.num_audio_tokens(w.size), max_target_tokens,
                            None if transcripts is None else transcripts[i])
                for i, (w, p) in enumerate(zip(waves, prompts))]
        length = max(len(ids) for ids, _ in rows)
        left = targets is None  # generation: left padding keeps every prompt's end aligned
        ids = np.full((len(rows), length), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.int64)
        labels = np.full((len(rows), length), -100, dtype=np.int64)
        for i, (row_ids, row_labels) in enumerate(rows):
            sl = slice(length - len(row_ids), length) if left else slice(0, len(row_ids))
            ids[i, sl] = row_ids
            mask[i, sl] = 1
            if row_labels is not None:
                labels[i, sl] = row_labels
        batch: dict[str, Any] = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if targets is not None:
            batch["labels"] = torch.from_numpy(labels)
        done: dict[tuple, dict[str, np.ndarray]] = {}  # two Whisper encoders often share one mel setup
        for name, spec in (("speech", self.speech), ("emotion", self.emotion)):
            if spec is None:
                continue
            key = (spec.kind, spec.num_mel_bins, spec.dynamic_length, spec.group if spec.dynamic_length else 0,
                   spec.normalize, spec.normalize_eps)
            feats = done[key] = done[key] if key in done else self.features(spec, waves)
            batch[f"{name}_features"] = torch.from_numpy(feats["features"])
            if "mask" in feats:
                batch[f"{name}_attention_mask"] = torch.from_numpy(feats["mask"])
        return batch

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> None:
        """Write the tokenizer files and ``processor_config.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(directory))
        config = {
            "fusion": self.fusion,
            "speech": dataclasses.asdict(self.speech),
            "emotion": dataclasses.asdict(self.emotion) if self.emotion is not None else None,
            "system_prompt": self.system_prompt,
            "transcript_in_prompt": self.transcript_in_prompt,
            "emotion_pooled_tokens": self.emotion_pooled_tokens,
            "window_seconds": self.window_seconds,
        }
        (directory / PROCESSOR_CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path, tokenizer: Any = None) -> "AudioProcessor":
        """Inverse of :meth:`save_pretrained` (local files only); ``tokenizer``: use this one
        instead of loading the saved copy (the caller already has the same tokenizer)."""
        from transformers import AutoTokenizer

        directory = Path(directory)
        path = directory / PROCESSOR_CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no processor config (was processor.save_pretrained run?)")
        config = json.loads(path.read_text())
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        emotion = FeatureSpec(**config["emotion"]) if config["emotion"] else None
        # processor configs saved before the transcript option have no key: they never had a transcript
        return cls(tokenizer, FeatureSpec(**config["speech"]), emotion, config["fusion"], config.get("system_prompt"),
                   transcript_in_prompt=bool(config.get("transcript_in_prompt", False)),
                   emotion_pooled_tokens=int(config.get("emotion_pooled_tokens", 0)),
                   window_seconds=config.get("window_seconds"))
