"""``packaged:NAME`` -> a verified, prepared directory: the entry points the rest of emoreason calls.

    resolve_packaged("whisper-tiny.en")        # -> Path (HF Whisper directory)
    resolve_packaged("smollm2-135m-instruct")  # -> {"path": dir, "gguf_file": "SmolLM2-....gguf"}
    llm_dir("smollm2-135m-instruct")           # -> Path (the GGUF de-quantised once, fp32 safetensors)
    ct2_model_dir("whisper-base")              # -> Path ctranslate2.models.Whisper loads

Every source file is pinned by sha256 (``registry``): a different or corrupted file is refused
rather than silently converted. The verified hash is stamped (with file size and mtime) in the
cache directory (``cache``) so later calls skip re-hashing; :func:`verify` re-hashes everything.
Builds run under the name's file lock, so concurrent first uses convert once.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from emoreason.errors import UserError
from emoreason.weights.cache import (
    atomic_dir,
    cache_root,
    file_signature,
    name_lock,
    new_stamp,
    read_stamp,
    sha256_files,
    stamp_holds,
    stamp_is_current,
    write_stamp,
)
from emoreason.weights.gguf import write_llm_dir
from emoreason.weights.registry import GGUF, WHISPER_CT2, PackagedWeights, locate, lookup, source_paths
from emoreason.weights.whisper_convert import write_whisper_dir


def _check_sha(weights: PackagedWeights, digest: str) -> None:
    if digest != weights.sha256:
        raise UserError(
            f"packaged:{weights.name}: checksum mismatch (sha256 {digest[:16]}..., expected {weights.sha256[:16]}...); "
            f"reinstall with: {weights.pip_command} --force-reinstall"
        )


def prepare(name: str, force: bool = False) -> Path:
    """Verify (sha256) and, for Whisper, convert; return the cache directory holding the stamp.

    Idempotent and cheap once done: a current stamp (same source size/mtime, same pinned hash,
    same format version) skips both hashing and conversion.
    """
    weights = lookup(name)
    sources = source_paths(weights)
    out = cache_root() / weights.name
    if not force and stamp_is_current(out, weights.sha256, sources):
        return out
    with name_lock(weights.name):
        if not force and stamp_is_current(out, weights.sha256, sources):  # another process just built it
            return out
        if not force and _restamp_if_same_bytes(out, weights, sources):
            return out
        _build_prepared(weights, sources, out)
    return out


def _restamp_if_same_bytes(directory: Path, weights: PackagedWeights, sources: list[Path]) -> bool:
    """The same pinned files at another path or mtime (a second venv, a reinstall): re-hash them and,
    when they still match, only rewrite the stamp. The conversion depends on the bytes alone, so
    redoing it (15-40 s for the GGUF LLM) would be wasted. Caller holds the name's lock."""
    stamp = stamp_holds(directory, weights.sha256)
    if stamp is None or sha256_files(sources) != weights.sha256:
        return False
    stamp.update(source_files=[str(p) for p in sources], source_signature=file_signature(sources))
    write_stamp(directory, stamp)
    return True


def _build_prepared(weights: PackagedWeights, sources: list[Path], out: Path) -> None:
    """Hash-check the sources and write ``out`` (converted model, if any, and the stamp)."""

    def build(tmp: Path) -> None:
        outputs: dict[str, str] = {}
        if weights.kind == WHISPER_CT2:
            data = b"".join(p.read_bytes() for p in sources)  # the base model is split in two parts
            _check_sha(weights, hashlib.sha256(data).hexdigest())
            extras = [locate(s, weights) for s in weights.extra_files]  # CT2 config, tokenizer, vocabulary
            write_whisper_dir(weights.name, data, extras[0], extras[1], extras[1:], tmp)
            outputs = {"model.safetensors": sha256_files([tmp / "model.safetensors"])}
        else:
            _check_sha(weights, sha256_files(sources))
        write_stamp(tmp, new_stamp(weights.name, weights.packages, sources, weights.sha256, outputs))

    atomic_dir(out, build)


def resolve_packaged(name: str) -> Path | dict[str, str]:
    """``packaged:NAME`` (or bare NAME) -> what ``from_pretrained`` needs.

    Whisper names -> Path of the transformers directory (converted on first use);
    ``smollm2-135m-instruct`` -> ``{"path": dir, "gguf_file": filename}``.
    Raises UserError for an unknown name, a missing package (message has the pip command), or a
    checksum mismatch.
    """
    weights = lookup(name)
    out = prepare(weights.name)
    if weights.kind == GGUF:
        gguf = locate(weights.parts[0], weights)
        return {"path": str(gguf.parent), "gguf_file": gguf.name}
    return out


def llm_dir(name: str) -> Path:
    """A GGUF LLM as a transformers directory (fp32 ``model.safetensors`` + tokenizer), made once.

    transformers de-quantises GGUF on every ``from_pretrained`` (about 15-40 s for SmolLM2-135M on
    2 busy cores); the converted directory (``hf/`` in the cache) loads in about a second and holds
    exactly the de-quantised weights and the same tokenizer and chat template.
    """
    weights = lookup(name)
    if weights.kind != GGUF:
        raise UserError(f"packaged:{weights.name} is not a GGUF LLM")
    out = prepare(weights.name) / "hf"  # prepare() checks the pinned hash of the GGUF file
    with name_lock(weights.name):
        if not (out / "model.safetensors").is_file():
            atomic_dir(out, lambda tmp: write_llm_dir(locate(weights.parts[0], weights), tmp))
    return out


def ct2_model_dir(name: str) -> Path:
    """A directory ``ctranslate2.models.Whisper`` can load (for ASR without transformers).

    tiny.en is used in place; the split base model is joined once into the cache (``ct2/``).
    """
    weights = lookup(name)
    if weights.kind != WHISPER_CT2:
        raise UserError(f"packaged:{weights.name} is not a CTranslate2 Whisper model")
    sources = source_paths(weights)
    if len(sources) == 1:
        return sources[0].parent
    out = prepare(weights.name) / "ct2"  # prepare() checks the pinned hash of the joined parts
    with name_lock(weights.name):
        if not (out / "model.bin").is_file():
            _join_ct2_parts(weights, sources, out)
    return out


def _join_ct2_parts(weights: PackagedWeights, sources: list[Path], out: Path) -> None:
    """Concatenate the split ``model.bin`` and copy the CT2 companion files into ``out``."""

    def build(tmp: Path) -> None:
        with open(tmp / "model.bin", "wb") as f:
            for p in sources:
                f.write(p.read_bytes())
        for src in weights.extra_files:
            shutil.copyfile(locate(src, weights), tmp / Path(src.relpath).name)

    atomic_dir(out, build)


def verify(name: str) -> list[str]:
    """Re-hash the sources and the converted outputs; return problems (empty list: all good)."""
    weights = lookup(name)
    problems = []
    try:
        sources = source_paths(weights)
    except UserError as e:
        return [str(e)]
    digest = sha256_files(sources)
    if digest != weights.sha256:
        problems.append(f"{weights.name}: source sha256 {digest[:16]}... != pinned {weights.sha256[:16]}...")
    out = cache_root() / weights.name
    stamp = read_stamp(out)
    if stamp is None:
        problems.append(f"{weights.name}: not prepared yet (run: emoreason weights prepare {weights.name})")
        return problems
    for fname, want in stamp.get("outputs", {}).items():
        path = out / fname
        got = sha256_files([path]) if path.is_file() else "missing"
        if got != want:
            problems.append(f"{weights.name}: {path} sha256 {got[:16]} != recorded {want[:16]}")
    return problems
