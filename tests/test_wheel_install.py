"""emoreason works as an installed wheel, without the checkout: build, install, `--version`, `demo --tiny`.

What it proves:
- the wheel built from this tree (``pip wheel``, offline, no build isolation) holds the package data
  the CLI needs: every packaged config including ``paper/`` and ``accelerate/``, the prompts, the web
  page, and the LICENSE in its metadata;
- installed into a fresh venv outside the checkout, ``import emoreason`` comes from that venv's
  site-packages (asserted: not from the checkout, not from the project venv's editable finder), and
  configs are found there through ``importlib.resources``;
- the console script works from there, in a directory outside the checkout: ``emoreason --version``
  prints the pyproject version, and ``emoreason demo --tiny`` (synthetic speech, offline teacher,
  random tiny models trained and evaluated, report, one analysed clip) finishes and writes its report.

What it does not prove: that the declared dependencies resolve from an index. The test is offline, so
the fresh venv borrows the dependencies already installed in the venv running the tests (a ``.pth``
file naming its site-packages directories; a plain path line, so the editable install's own ``.pth``
hook there is never run). The packaged pretrained weights are not exercised (``--tiny``).

The sources are copied to a temporary directory before building: setuptools writes ``build/`` and
``*.egg-info`` next to ``pyproject.toml``, and a stale ``build/lib`` would leak deleted modules into
the wheel. About 45 s on 2 shared CPU cores, most of it the tiny demo.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "emoreason")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
BIN = "Scripts" if os.name == "nt" else "bin"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run ``cmd``; its stdout, or a failure that shows the tail of both streams."""
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd} -> {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _build_wheel(tmp: Path) -> Path:
    """Copy the sources (no caches) to ``tmp/src`` and build the wheel into ``tmp/dist``."""
    import setuptools

    major = int(setuptools.__version__.split(".")[0])
    assert major >= 77, f"setuptools {setuptools.__version__} < 77 in {sys.prefix}: rerun scripts/setup.sh"
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp / "dist", src], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("emoreason-*.whl")
    return wheel


def _dependency_dirs() -> list[str]:
    """site-packages directories of the interpreter running the tests (found from it, not hard-coded)."""
    paths = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(p for p in paths if Path(p).is_dir()))


def _make_venv(tmp: Path, wheel: Path) -> Path:
    """A fresh venv with the wheel installed; dependencies borrowed from the test venv. Its python."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / BIN / "python"
    # Install before the .pth exists: pip must not see the test venv's (editable) emoreason as installed.
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp)
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip()
    (Path(purelib) / "_emoreason_test_deps.pth").write_text("\n".join(_dependency_dirs()) + "\n")
    return python


def test_wheel_installs_and_runs_the_tiny_demo_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"emoreason/configs/mini.yaml", "emoreason/configs/tiny.yaml", "emoreason/configs/paper/table2-none-joint.yaml",
            "emoreason/configs/accelerate/ddp.yaml", "emoreason/inference/index.html",
            "emoreason/inference/static/page.js", "emoreason/inference/static/page.css",
            "emoreason/eval/templates/report.md.j2", "emoreason/eval/templates/report.html.j2",
            f"emoreason-{VERSION}.dist-info/licenses/LICENSE"} <= names
    in_checkout = {f"emoreason/configs/paper/{p.name}" for p in (ROOT / "emoreason" / "configs" / "paper").glob("*.yaml")}
    assert in_checkout and in_checkout == {n for n in names if n.startswith("emoreason/configs/paper/")}

    python = _make_venv(tmp_path, wheel)
    work = tmp_path / "work"  # cwd outside the checkout: nothing may be found relative to it
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONNOUSERSITE="1", PIP_NO_INDEX="1",
               EMOREASON_CACHE=str(tmp_path / "cache"), TOKENIZERS_PARALLELISM="false")

    probe = ("import json, importlib.metadata as m, emoreason\n"
             "from emoreason.configs import config_path, list_configs\n"
             "print(json.dumps({'file': emoreason.__file__, 'config': str(config_path('tiny')), 'names': list_configs(),"
             " 'version': m.version('emoreason'), 'license': m.metadata('emoreason')['License-Expression']}))")
    info = json.loads(_run([python, "-c", probe], cwd=work, env=env))
    venv = tmp_path / "venv"
    assert Path(info["file"]).is_relative_to(venv) and Path(info["config"]).is_relative_to(venv), info
    assert not Path(info["file"]).is_relative_to(ROOT)
    assert {"mini", "tiny", "accelerate/ddp", "paper/table2-sequence-alt1"} <= set(info["names"])
    assert (info["version"], info["license"]) == (VERSION, "Apache-2.0")

    script = venv / BIN / "emoreason"
    assert _run([script, "--version"], cwd=work, env=env).strip() == f"emoreason {VERSION}"

    out = tmp_path / "demo"
    # one thread: tiny matrices gain nothing from more, and on a shared 2-core machine it halves the CPU time
    stdout = _run([script, "demo", "--tiny", "--threads", "1", "--out", out], cwd=work, env=env, timeout=900)
    assert f"Report: {out / 'report.html'}" in stdout
    report = (out / "report.md").read_text()
    assert "label-dual" in report and "detailed-single" in report
    assert (out / "report.html").stat().st_size > 0
    analysis = json.loads((out / "analysis" / "analysis.json").read_text())
    assert analysis["label"] in analysis["scores"]
    assert (out / "runs" / "label-dual" / "final" / "config.yaml").is_file()
