"""emoreason: speech emotion reasoning with multi-task audio LLMs.

    from emoreason import Engine, load_model, train
    engine = Engine.load("runs/x")                       # analyse clips: engine.analyze(...)
    model, processor = load_model("runs/x/final")        # the AudioLLM + processor themselves
    train("mini", "runs/x", overrides=["train.epochs=2"])  # the training recipe (config name or file)

``import emoreason`` stays cheap: the public names are imported on first use (PEP 562), so the CLI's
``--help`` and ``--version`` never load torch.

It also registers ``model_type: emoreason`` with transformers (``AutoConfig`` / ``AutoModel``
``.from_pretrained(run/final)``, see ``emoreason.model.hf``): at once when transformers is already
imported, else right after transformers' own import, so importing emoreason alone loads neither.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # keep equal to pyproject's version (a test checks); installs report their metadata

# public name -> (module, attribute), imported on first access
_LAZY: dict[str, tuple[str, str]] = {
    "Engine": ("emoreason.inference.engine", "Engine"),
    "load_model": ("emoreason.model.builder", "load_pretrained"),
    "train": ("emoreason.train.recipe", "train"),
}

__all__ = [
    "Engine",
    "load_model",
    "train",
    "__version__",
]

if TYPE_CHECKING:  # static tools see the real objects
    from emoreason.inference.engine import Engine
    from emoreason.model.builder import load_pretrained as load_model
    from emoreason.train.recipe import train


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


_HF_MODULE = "emoreason.model.hf"
"""Imported for its side effect: registers the emoreason model type with transformers' Auto classes."""


class _RegisterAfterTransformers(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``transformers`` is imported, wraps its loader so that the
    emoreason model type is registered as soon as transformers has finished loading."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "transformers":
            return None
        # Stays installed until transformers really executes: availability checks
        # (importlib.util.find_spec("transformers"), as accelerate and peft do) also land here.
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module: Any) -> None:
            exec_module(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _register_hf()

        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


def _register_hf() -> None:
    try:
        importlib.import_module(_HF_MODULE)
    except ImportError:  # torch missing, or a transformers without the Auto registry: no registration
        pass


if "transformers" in sys.modules:
    _register_hf()
elif not any(isinstance(f, _RegisterAfterTransformers) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterTransformers())
