"""Audio special tokens, and the byte-level tokenizer of the ``builtin:tiny`` test LLM.

Every LLM gets three special tokens: ``<audio_start>``, ``<audio>`` (the placeholder the model
replaces with adapter outputs) and ``<audio_end>``. For the built-in tokenizer they are part of the
vocabulary; for real LLMs :func:`add_audio_tokens` appends them (the builder then grows the
embedding matrix only if the tokenizer outgrew it; see ``builder._fit_embeddings``).

Why real special tokens and not plain-text markers: a placeholder must be exactly one token so that
"N placeholders" is a token count the processor and the model agree on; the start/end markers are
special too so that no user text can forge them. Their embedding rows are never trained (LoRA only):
``<audio>`` rows are overwritten by audio embeddings, the markers keep a fixed (mean) embedding.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy import only for type checkers
    from transformers import PreTrainedTokenizerBase

AUDIO_START = "<audio_start>"
AUDIO = "<audio>"
AUDIO_END = "<audio_end>"
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


def add_audio_tokens(tokenizer: "PreTrainedTokenizerBase") -> int:
    """Register the three audio tokens as special tokens (no-op when present); return how many were new."""
    missing = [t for t in AUDIO_TOKENS if t not in tokenizer.get_vocab()]
    if not missing:
        return 0
    return tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)


def audio_token_ids(tokenizer: "PreTrainedTokenizerBase") -> tuple[int, int, int]:
    """(start, placeholder, end) ids; raises ValueError when the tokenizer lacks them."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in AUDIO_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"tokenizer has no {missing} tokens: call add_audio_tokens() first")
    return vocab[AUDIO_START], vocab[AUDIO], vocab[AUDIO_END]
