"""Load a script of the checkout's ``benchmarks/`` folder as a module, for the tests that run
benchmarks at tiny sizes (the folder is not a package: its scripts run as ``python benchmarks/X.py``)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
"""The source checkout's benchmarks folder (the tests run from a checkout, not an installed wheel)."""


def load_benchmark(script: str, module_name: str | None = None) -> ModuleType:
    """A fresh module of ``benchmarks/<script>.py``, registered as ``module_name`` (default: the
    script's name) in ``sys.modules``, as dataclasses and pickling look their module up there.
    The folder goes on ``sys.path`` first so a script can import its siblings."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    name = module_name or script
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{script}.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no benchmark script {BENCHMARKS / script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
