"""emoreason.weights.cache: cache location, per-name locks, atomic directories, stamps."""
from __future__ import annotations

import os
import threading
import time

import pytest

from emoreason.weights import cache


def test_cache_root_follows_emoreason_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path))
    assert cache.cache_root() == tmp_path / "packaged"
    monkeypatch.delenv("EMOREASON_CACHE")
    assert str(cache.cache_root()).endswith(os.path.join(".cache", "emoreason", "packaged"))


def test_atomic_dir_replaces_only_on_success(tmp_path):
    final = tmp_path / "out"
    cache.atomic_dir(final, lambda tmp: (tmp / "a.txt").write_text("one"))
    assert (final / "a.txt").read_text() == "one"

    def broken(tmp):
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("crash mid-build")

    with pytest.raises(RuntimeError):
        cache.atomic_dir(final, broken)
    assert (final / "a.txt").read_text() == "one"  # the old directory survives a failed build
    cache.atomic_dir(final, lambda tmp: (tmp / "b.txt").write_text("two"))
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]  # a stale directory is replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind


def test_stamp_is_current_until_a_source_changes(tmp_path):
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    digest = cache.sha256_files([src])
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"converted")
    stamp = cache.new_stamp("x", ["pkg==1"], [src], digest, {"model.safetensors": cache.sha256_files([out / "model.safetensors"])})
    cache.write_stamp(out, stamp)
    assert cache.read_stamp(out) == stamp and stamp["format_version"] == cache.FORMAT_VERSION
    assert cache.stamp_is_current(out, digest, [src])
    assert not cache.stamp_is_current(out, "0" * 64, [src])  # another pin
    os.utime(src, ns=(1, 1))
    assert not cache.stamp_is_current(out, digest, [src])  # touched: must be re-hashed
    assert cache.stamp_holds(out, digest) == stamp  # ... but the outputs are still usable
    (out / "model.safetensors").unlink()
    assert cache.stamp_holds(out, digest) is None


def test_sha256_files_hashes_the_concatenation(tmp_path):
    import hashlib

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"abc")
    b.write_bytes(b"def")
    assert cache.sha256_files([a, b]) == hashlib.sha256(b"abcdef").hexdigest()


def test_name_lock_excludes_other_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path))
    inside, peak = [0], [0]

    def hold() -> None:
        with cache.name_lock("x"):
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            time.sleep(0.1)
            inside[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
    assert [p.name for p in (tmp_path / "packaged").iterdir()] == [".x.lock"]  # the same lock file as before filelock
