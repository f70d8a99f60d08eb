"""Fake packaged weights for tests: CTranslate2 bytes, a tiny Whisper, and an installed fake distribution.

``fake_whisper_weights(site)`` writes a distribution that ``importlib.metadata`` finds once ``site``
is on ``sys.path`` (``monkeypatch.syspath_prepend`` or ``PYTHONPATH``), holding a tiny Whisper in
CT2 format split in two parts, and returns its ``PackagedWeights`` with the right pin. Register it
with ``monkeypatch.setitem(REGISTRY, w.name, w)``. Converting it takes well under a second, so the
cache, the lock and the conversion can be tested without the real weights.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from emoreason.weights.registry import WHISPER_CT2, PackagedWeights, SourceFile

_CODES = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
          np.dtype(np.float16): 4}

FAKE_DIST = "emoreason-fake-weights"
FAKE_VERSION = "0.0.1"
FAKE_SPECIAL = {"<|endoftext|>": 7, "<|startoftranscript|>": 8, "<|notimestamps|>": 9}
"""Special token ids of the fake Whisper (vocabulary of 10)."""


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def ct2_bytes(variables: dict[str, np.ndarray], aliases: dict[str, str], spec: str = "WhisperSpec") -> bytes:
    """A CTranslate2 ``model.bin`` (format 6, revision 3) holding ``variables`` and ``aliases``."""
    out = struct.pack("<I", 6) + _ct2_string(spec) + struct.pack("<II", 3, len(variables))
    for name, arr in variables.items():
        out += _ct2_string(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += struct.pack("<BI", _CODES[arr.dtype], arr.nbytes) + arr.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _ct2_string(alias) + _ct2_string(target)
    return out


def tiny_whisper_ct2(d: int = 8, heads: int = 2, ffn: int = 16, layers: int = 1, vocab: int = 10,
                     mel: int = 80, source_positions: int = 1500, target_positions: int = 12,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Random CT2 Whisper variables (float16, as the packaged files), named as CT2's WhisperSpec names them."""
    rng = np.random.default_rng(seed)
    v: dict[str, np.ndarray] = {}

    def put(name: str, *shape: int) -> None:
        v[name] = rng.standard_normal(shape).astype(np.float16)

    def lin(name: str, n_out: int, n_in: int) -> None:
        put(f"{name}/weight", n_out, n_in)
        put(f"{name}/bias", n_out)

    def norm(name: str) -> None:
        put(f"{name}/gamma", d)
        put(f"{name}/beta", d)

    for side in ("encoder", "decoder"):
        v[f"{side}/num_heads"] = np.array(heads, dtype=np.int16)
        norm(f"{side}/layer_norm")
        for i in range(layers):
            s = f"{side}/layer_{i}"
            lin(f"{s}/self_attention/linear_0", 3 * d, d)
            lin(f"{s}/self_attention/linear_1", d, d)
            norm(f"{s}/self_attention/layer_norm")
            if side == "decoder":
                lin(f"{s}/attention/linear_0", d, d)
                lin(f"{s}/attention/linear_1", 2 * d, d)
                lin(f"{s}/attention/linear_2", d, d)
                norm(f"{s}/attention/layer_norm")
            lin(f"{s}/ffn/linear_0", ffn, d)
            lin(f"{s}/ffn/linear_1", d, ffn)
            norm(f"{s}/ffn/layer_norm")
    put("encoder/conv1/weight", d, mel, 3)
    put("encoder/conv1/bias", d)
    put("encoder/conv2/weight", d, d, 3)
    put("encoder/conv2/bias", d)
    put("encoder/position_encodings/encodings", source_positions, d)
    put("decoder/position_encodings/encodings", target_positions, d)
    put("decoder/embeddings/weight", vocab, d)
    return v


def install_fake_dist(site: Path, dist: str, version: str, files: dict[str, bytes]) -> None:
    """Write a minimal installed distribution (``*.dist-info/METADATA`` and ``files``) under ``site``."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)


def fake_whisper_weights(site: Path, name: str = "fake-whisper", seed: int = 0, install: bool = True) -> PackagedWeights:
    """Install a tiny CT2 Whisper (``model.bin`` in two parts) under ``site``; return its pinned weight set.

    ``install=False`` only returns the weight set (the bytes are deterministic): for a second process
    that must not rewrite, and so re-date, files another process is reading.
    """
    data = ct2_bytes(tiny_whisper_ct2(seed=seed), {"decoder/projection/weight": "decoder/embeddings/weight"})
    half = len(data) // 2
    pkg = FAKE_DIST.replace("-", "_")
    tokenizer = {"added_tokens": [{"id": i, "content": t, "special": True} for t, i in FAKE_SPECIAL.items()]}
    files = {
        f"{pkg}/model.bin.part1": data[:half],
        f"{pkg}/model.bin.part2": data[half:],
        f"{pkg}/config.json": json.dumps({"suppress_ids": [1, 2], "suppress_ids_begin": [7]}).encode(),
        f"{pkg}/tokenizer.json": json.dumps(tokenizer).encode(),
        f"{pkg}/vocabulary.txt": "\n".join(f"tok{i}" for i in range(10)).encode(),
    }
    if install:
        install_fake_dist(site, FAKE_DIST, FAKE_VERSION, files)
    src = [SourceFile(FAKE_DIST, FAKE_VERSION, rel) for rel in files]
    return PackagedWeights(name=name, kind=WHISPER_CT2, parts=tuple(src[:2]), sha256=hashlib.sha256(data).hexdigest(),
                           description="a tiny random Whisper for tests", extra_files=tuple(src[2:]))
