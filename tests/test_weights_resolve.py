"""emoreason.weights.resolve: packaged:NAME -> verified, prepared directories; stamps, re-stamping,
checksums, verify, and concurrent first use (the lock). Most tests use a tiny fake weight set
installed into a temporary site directory; the real-weight ones are skipped where not installed.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emoreason.errors import UserError
from emoreason.testing.weights import fake_whisper_weights
from emoreason.weights import REGISTRY, PackagedWeights, ct2_model_dir, is_installed, resolve_packaged, verify
from emoreason.weights import resolve
from emoreason.weights.cache import STAMP

needs = {n: pytest.mark.skipif(not is_installed(w), reason=f"{w.pip_command} not installed") for n, w in REGISTRY.items()}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def fake(tmp_path, monkeypatch) -> PackagedWeights:
    """The tiny fake Whisper registered as ``fake-whisper``; EMOREASON_CACHE is ``tmp_path/cache``."""
    w = fake_whisper_weights(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(REGISTRY, w.name, w)
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path / "cache"))
    return w


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One conversion of the real tiny.en for this module, into a temporary EMOREASON_CACHE."""
    root = tmp_path_factory.mktemp("emocache")
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOREASON_CACHE", str(root))
    yield root
    mp.undo()


# ---------------------------------------------------------------------------------------------- fake weights


def test_resolve_converts_once_and_stamps(fake, tmp_path):
    hf_dir = resolve_packaged("packaged:fake-whisper")
    assert hf_dir == tmp_path / "cache" / "packaged" / "fake-whisper"
    stamp = json.loads((hf_dir / STAMP).read_text())
    assert stamp["name"] == "fake-whisper" and stamp["format_version"] == 1
    assert stamp["packages"] == ["emoreason-fake-weights==0.0.1"] and stamp["source_sha256"] == fake.sha256
    assert stamp["source_files"] == [str(p) for p in resolve.source_paths(fake)]
    assert stamp["outputs"] == {"model.safetensors": hashlib.sha256((hf_dir / "model.safetensors").read_bytes()).hexdigest()}
    assert verify("fake-whisper") == []
    mtime = (hf_dir / "model.safetensors").stat().st_mtime_ns
    assert resolve_packaged("fake-whisper") == hf_dir
    assert (hf_dir / "model.safetensors").stat().st_mtime_ns == mtime  # trusted the stamp: not converted again
    assert sorted(p.name for p in hf_dir.parent.iterdir()) == [".fake-whisper.lock", "fake-whisper"]


def test_split_parts_are_joined_once_for_ctranslate2(fake):
    out = ct2_model_dir("fake-whisper")
    assert out == resolve_packaged("fake-whisper") / "ct2"
    parts = resolve.source_paths(fake)
    assert (out / "model.bin").read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]


def test_touched_source_is_rehashed_not_reconverted(fake):
    hf_dir = resolve_packaged("fake-whisper")
    mtime = (hf_dir / "model.safetensors").stat().st_mtime_ns
    part = resolve.source_paths(fake)[0]
    os.utime(part, ns=(1, 1))  # same bytes, new mtime: a reinstall
    assert resolve_packaged("fake-whisper") == hf_dir
    assert (hf_dir / "model.safetensors").stat().st_mtime_ns == mtime
    assert json.loads((hf_dir / STAMP).read_text())["source_signature"][0][1] == 1
    part.write_bytes(part.read_bytes()[:-1] + b"x")  # different bytes: refused
    with pytest.raises(UserError, match="packaged:fake-whisper: checksum mismatch.*--force-reinstall"):
        resolve_packaged("fake-whisper")


def test_prepare_force_reconverts(fake):
    hf_dir = resolve_packaged("fake-whisper")
    (hf_dir / "marker").write_text("stale")
    assert resolve.prepare("fake-whisper", force=True) == hf_dir
    assert not (hf_dir / "marker").exists() and verify("fake-whisper") == []


def test_checksum_mismatch_leaves_nothing_half_written(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, fake.name, PackagedWeights(fake.name, fake.kind, fake.parts, "f" * 64,
                                                             fake.description, fake.extra_files))
    with pytest.raises(UserError, match="checksum mismatch"):
        resolve_packaged("fake-whisper")
    assert sorted(p.name for p in (tmp_path / "cache" / "packaged").iterdir()) == [".fake-whisper.lock"]


def test_concurrent_threads_convert_once(fake, monkeypatch):
    """Two threads resolving into an empty cache: one converts, the other waits and reuses it."""
    calls = []
    convert = resolve.write_whisper_dir

    def slow_convert(*args, **kwargs):
        calls.append(threading.get_ident())
        time.sleep(0.5)  # widen the window in which an unlocked second caller would also convert
        convert(*args, **kwargs)

    monkeypatch.setattr(resolve, "write_whisper_dir", slow_convert)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(resolve_packaged("fake-whisper"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1] and isinstance(results[0], Path)
    assert len(calls) == 1
    assert verify("fake-whisper") == []


_CHILD = """
import sys, time
from pathlib import Path
from emoreason.testing.weights import fake_whisper_weights
from emoreason.weights import REGISTRY, resolve
w = fake_whisper_weights(Path(sys.argv[1]), install=False)  # installed by the test, on PYTHONPATH
REGISTRY[w.name] = w
convert = resolve.write_whisper_dir
def logged(*args, **kwargs):
    with open(sys.argv[2], "a") as f:
        f.write("converted\\n")
    time.sleep(0.5)  # widen the window in which an unlocked second process would also convert
    convert(*args, **kwargs)
resolve.write_whisper_dir = logged
print(resolve.resolve_packaged(w.name))
"""


def test_concurrent_processes_convert_once(fake, tmp_path):
    """Two processes (e.g. training ranks) resolving into an empty cache both get the same valid directory."""
    site, log = tmp_path / "site", tmp_path / "conversions.log"
    env = {**os.environ, "EMOREASON_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(site), str(log)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] == str(tmp_path / "cache" / "packaged" / "fake-whisper")
    assert log.read_text().count("converted") == 1
    assert verify("fake-whisper") == []  # stamp and converted file agree


# ---------------------------------------------------------------------------------------------- real weights


@pytest.mark.slow
@needs["whisper-tiny.en"]
def test_checksums_recorded_and_cache_reused(cache):
    hf_dir = resolve_packaged("whisper-tiny.en")
    stamp = json.loads((hf_dir / STAMP).read_text())
    source = Path(stamp["source_files"][0])
    assert stamp["source_sha256"] == REGISTRY["whisper-tiny.en"].sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    out_sha = hashlib.sha256((hf_dir / "model.safetensors").read_bytes()).hexdigest()
    assert stamp["outputs"] == {"model.safetensors": out_sha}
    assert verify("whisper-tiny.en") == []
    # A second resolve trusts the stamp: no reconversion (same file, same mtime).
    mtime = (hf_dir / "model.safetensors").stat().st_mtime_ns
    assert resolve_packaged("packaged:whisper-tiny.en") == hf_dir
    assert (hf_dir / "model.safetensors").stat().st_mtime_ns == mtime
    assert not list(hf_dir.parent.glob(".*tmp*"))  # atomic build left nothing behind


@pytest.mark.slow
@needs["whisper-tiny.en"]
def test_same_bytes_at_another_path_are_restamped_not_reconverted(cache, tmp_path, monkeypatch):
    """A second venv on the machine installs the same pinned file elsewhere: hash and re-stamp only."""
    import shutil

    hf_dir = resolve_packaged("whisper-tiny.en")
    original = resolve.source_paths(REGISTRY["whisper-tiny.en"])
    copy = tmp_path / "other-venv" / original[0].name
    copy.parent.mkdir()
    shutil.copy(original[0], copy)
    mtime = (hf_dir / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(resolve, "source_paths", lambda weights: [copy])
    assert resolve_packaged("whisper-tiny.en") == hf_dir
    assert (hf_dir / "model.safetensors").stat().st_mtime_ns == mtime  # not converted again
    assert json.loads((hf_dir / STAMP).read_text())["source_files"] == [str(copy)]
    copy.write_bytes(copy.read_bytes()[:-1] + b"x")  # different bytes there: refused, as before
    with pytest.raises(UserError, match="checksum mismatch"):
        resolve_packaged("whisper-tiny.en")


@pytest.mark.slow
@needs["whisper-tiny.en"]
def test_concurrent_first_use_converts_safely(tmp_path, monkeypatch):
    """Two processes resolving the real tiny.en at once into an empty cache both succeed."""
    env = {**os.environ, "EMOREASON_CACHE": str(tmp_path), "PYTHONPATH": str(REPO)}
    code = "from emoreason.weights import resolve_packaged; print(resolve_packaged('whisper-tiny.en'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] == str(tmp_path / "packaged" / "whisper-tiny.en")
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path))
    assert verify("whisper-tiny.en") == []  # stamp and converted file agree
    assert sorted(p.name for p in (tmp_path / "packaged").iterdir()) == [".whisper-tiny.en.lock", "whisper-tiny.en"]


@needs["whisper-tiny.en"]
def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path))
    w = REGISTRY["whisper-tiny.en"]
    monkeypatch.setitem(REGISTRY, w.name, PackagedWeights(w.name, w.kind, w.parts, "f" * 64, w.description, w.extra_files))
    with pytest.raises(UserError, match="checksum mismatch.*--force-reinstall"):
        resolve_packaged(w.name)
    assert not (tmp_path / "packaged" / w.name).exists()  # nothing half-written


@needs["whisper-tiny.en"]
def test_verify_detects_a_corrupted_conversion(cache):
    hf_dir = resolve_packaged("whisper-tiny.en")
    # Corrupting the 150 MB output would force a reconversion for later tests; changing the
    # recorded hash exercises the same comparison.
    stamp = json.loads((hf_dir / STAMP).read_text())
    stamp["outputs"]["model.safetensors"] = "0" * 64
    (hf_dir / STAMP).write_text(json.dumps(stamp))
    try:
        problems = verify("whisper-tiny.en")
    finally:
        stamp["outputs"]["model.safetensors"] = hashlib.sha256((hf_dir / "model.safetensors").read_bytes()).hexdigest()
        (hf_dir / STAMP).write_text(json.dumps(stamp))
    assert len(problems) == 1 and "model.safetensors" in problems[0]
