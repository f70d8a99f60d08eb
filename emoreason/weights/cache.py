"""The on-disk cache of prepared weights: where it lives, per-name locks, atomic directories, stamps.

Layout (unchanged since the first release, so existing caches stay valid)::

    $EMOREASON_CACHE/packaged/          (default ~/.cache/emoreason/packaged/)
        .NAME.lock                      inter-process lock file for NAME
        NAME/packaged.json              the stamp: provenance and checksums
        NAME/...                        converted files (Whisper) or nothing (GGUF)

A directory appears atomically (built in a hidden sibling, then renamed), so a crash never leaves
a half-written model that later runs would trust. The stamp records the verified source hash with
each source's size and mtime, so later calls can trust it without re-hashing gigabytes.

Nothing here knows about particular weight sets: callers pass hashes and paths.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

STAMP = "packaged.json"
"""Name of the provenance/checksum record written into every cache directory."""
FORMAT_VERSION = 1
"""Bump when the conversion output changes, so stale cache directories are rebuilt."""


def cache_root() -> Path:
    """``$EMOREASON_CACHE/packaged`` or ``~/.cache/emoreason/packaged``."""
    base = os.environ.get("EMOREASON_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "emoreason") / "packaged"


def name_lock(name: str) -> FileLock:
    """The inter-process lock for ``name`` (``cache_root()/.NAME.lock``).

    Several training ranks resolving the same name convert it once: the first holds the lock while
    it builds, the others wait and then find the stamp current. The lock is ``flock`` based, so a
    crashed holder releases it with its process; the lock file itself stays (it is never trusted).
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return FileLock(root / f".{name}.lock")


def atomic_dir(final: Path, build: Callable[[Path], None]) -> None:
    """Run ``build(tmp_dir)`` then rename tmp_dir -> ``final`` (replacing a stale ``final``).

    Callers hold the name's lock: the temporary name is per process, and replacing ``final`` is two
    steps (remove, rename) that must not interleave with another builder.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        if final.exists():  # stale (failed its stamp check)
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sha256_files(paths: list[Path]) -> str:
    """sha256 of the concatenation of ``paths`` (streamed, 8 MiB blocks)."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(8 << 20):
                h.update(block)
    return h.hexdigest()


def file_signature(paths: list[Path]) -> list[list[int]]:
    """[size, mtime_ns] per file: cheap evidence that a hashed file has not changed since."""
    return [[p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


def new_stamp(name: str, packages: list[str], sources: list[Path], source_sha256: str,
              outputs: dict[str, str]) -> dict[str, Any]:
    """The stamp of a freshly built directory; ``outputs`` maps file name -> sha256."""
    return {
        "name": name,
        "format_version": FORMAT_VERSION,
        "packages": packages,
        "source_files": [str(p) for p in sources],
        "source_sha256": source_sha256,
        "source_signature": file_signature(sources),
        "outputs": outputs,
    }


def read_stamp(directory: Path) -> dict[str, Any] | None:
    """The stamp in ``directory``, or None when it is missing or unreadable."""
    try:
        return json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return None


def write_stamp(directory: Path, stamp: dict[str, Any]) -> None:
    """Write ``stamp`` into ``directory`` atomically (a reader sees the old or the new one, whole)."""
    tmp = directory / f"{STAMP}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(stamp, indent=2))
    os.replace(tmp, directory / STAMP)


def stamp_holds(directory: Path, source_sha256: str) -> dict[str, Any] | None:
    """The stamp when it is of this format, for this pinned hash, and its outputs all exist; else None.

    It says nothing yet about whether today's source files are the ones hashed: see ``stamp_is_current``.
    """
    stamp = read_stamp(directory)
    if (stamp and stamp.get("format_version") == FORMAT_VERSION and stamp.get("source_sha256") == source_sha256
            and all((directory / name).is_file() for name in stamp.get("outputs", {}))):
        return stamp
    return None


def stamp_is_current(directory: Path, source_sha256: str, sources: list[Path]) -> bool:
    """``stamp_holds`` and the sources have the size and mtime they had when hashed: nothing to redo."""
    stamp = stamp_holds(directory, source_sha256)
    return bool(stamp and stamp.get("source_signature") == file_signature(sources))
