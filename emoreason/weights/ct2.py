"""A reader for CTranslate2 ``model.bin`` files, so converting needs neither ctranslate2 nor torch."""
from __future__ import annotations

import struct

import numpy as np

from emoreason.errors import UserError

CT2_DTYPES: dict[int, type[np.generic]] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
"""CTranslate2's dtype codes (its ``DataType`` enum) -> numpy dtypes."""
CT2_FORMAT_VERSION = 6
"""The only ``model.bin`` layout this reader knows (what the packaged files use)."""


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
        if version != CT2_FORMAT_VERSION:
            raise ValueError(f"format version {version} (this reader knows {CT2_FORMAT_VERSION})")
        spec = string()
        take("<I")  # spec revision: not needed for the mapping
        (count,) = take("<I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = string()
            (rank,) = take("<B")
            dims = take(f"<{rank}I") if rank else ()
            dtype_code, nbytes = take("<BI")
            dtype = CT2_DTYPES.get(dtype_code)
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
