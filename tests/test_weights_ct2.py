"""emoreason.weights.ct2: the CTranslate2 model.bin reader."""
from __future__ import annotations

import numpy as np
import pytest

from emoreason.errors import UserError
from emoreason.testing.weights import ct2_bytes
from emoreason.weights.ct2 import read_ct2


def test_read_ct2_parses_shapes_dtypes_scalars_and_aliases():
    w = np.arange(6, dtype=np.float16).reshape(2, 3)
    data = ct2_bytes({"a/weight": w, "a/num_heads": np.array(6, dtype=np.int16), "b": np.array([1, 2], dtype=np.int32)}, {"c": "a/weight"})
    spec, v = read_ct2(data)
    assert spec == "WhisperSpec"
    assert v["a/weight"].dtype == np.float16 and v["a/weight"].shape == (2, 3)
    np.testing.assert_array_equal(v["a/weight"], w)
    assert int(v["a/num_heads"]) == 6 and v["a/num_heads"].shape == ()
    np.testing.assert_array_equal(v["b"], [1, 2])
    assert v["c"] is v["a/weight"]


def test_read_ct2_rejects_truncated_and_trailing_bytes():
    data = ct2_bytes({"x": np.ones(4, dtype=np.float32)}, {})
    with pytest.raises(UserError, match="CTranslate2"):
        read_ct2(data[:-7])
    with pytest.raises(UserError, match="trailing"):
        read_ct2(data + b"\0\0")


def test_read_ct2_rejects_another_format_version():
    data = bytearray(ct2_bytes({"x": np.ones(1, dtype=np.float32)}, {}))
    data[0] = 5
    with pytest.raises(UserError, match="format version 5"):
        read_ct2(bytes(data))
