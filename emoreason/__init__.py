"""emoreason: speech emotion reasoning with multi-task audio LLMs.

    from emoreason import Engine, load_model, train
    engine = Engine.load("runs/x")                       # analyse clips: engine.analyze(...)
    model, processor = load_model("runs/x/final")        # the AudioLLM + processor themselves
    train("mini", "runs/x", overrides=["train.epochs=2"])  # the training recipe (config name or file)

``import emoreason`` stays cheap: the public names are imported on first use (PEP 562), so the CLI's
``--help`` and ``--version`` never load torch.
"""
from __future__ import annotations

import importlib
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
