"""The package surface: `emoreason --version`, the lazy top-level exports, the license metadata."""
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import emoreason
from emoreason.cli import main, package_version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_version_flag_prints_the_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"emoreason {package_version()}"


def test_dunder_version_matches_pyproject_and_metadata():
    assert emoreason.__version__ == PYPROJECT["version"]
    assert package_version() == PYPROJECT["version"]  # the installed (editable) metadata agrees


def test_version_falls_back_to_dunder_version_when_not_installed(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert package_version() == emoreason.__version__


def test_top_level_exports_resolve_lazily():
    # a fresh interpreter: `import emoreason` must not pull torch; the names load on first use
    code = (
        "import sys, emoreason\n"
        "assert 'torch' not in sys.modules and 'emoreason.inference' not in sys.modules\n"
        "from emoreason import Engine, load_model, train\n"
        "from emoreason.inference.engine import Engine as E\n"
        "from emoreason.model.builder import load_pretrained\n"
        "from emoreason.train.recipe import train as recipe_train\n"
        "assert Engine is E and load_model is load_pretrained and train is recipe_train\n"
        "assert {'Engine', 'load_model', 'train'} <= set(dir(emoreason))\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_all_names_exist_and_unknown_names_raise():
    for name in emoreason.__all__:
        assert getattr(emoreason, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        emoreason.nope
    from emoreason import hardware  # submodules still import as usual

    assert hardware.__name__ == "emoreason.hardware"


def test_license_file_matches_pyproject():
    assert PYPROJECT["license"] == "Apache-2.0" and PYPROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text
