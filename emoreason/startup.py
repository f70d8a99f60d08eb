"""Start-up of the console commands: Python's cyclic garbage collector paused while torch,
transformers and a model load, and what they built frozen afterwards.

Why: every full (generation 2) collection walks every live container object. Importing torch and
transformers' modeling code creates ~380k of them and triggers six full collections on the way,
and the interpreter walks them all once more at exit. Measured on a 2-core machine
(docs/inference.md, "Third pass: the garbage collector"): the imports took 3.2 s with the
collector on and 2.3 s with it off, the whole process 4.4 s on and 2.5 s with the collector off
and then ``gc.freeze()``, which moves the objects alive at that point (modules, functions,
classes, the model) to a permanent generation that later collections, and the one at exit, skip.
One full collection in a loaded engine process took ~0.25 s (the first quote's token index paid
it); a cold ``emoreason analyze`` of a 5 s clip went from 8.3 to 5.7 s.

The cost: cyclic garbage made while the collector is paused is kept until the process ends
(reference counting still frees everything else), and frozen objects are never collected.
Import and load make little such garbage. Only a command line opts in (``cli.main`` called
without ``argv``: the console script, ``python -m emoreason``; :func:`enable`), never a library
caller or a test calling ``cli.main([...])`` in process, whose heaps hold objects of their own.
"""
from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_enabled = False


def enable() -> None:
    """Called by ``cli.main`` for a command line before the command runs: from then on
    :func:`gc_paused` pauses and freezes."""
    global _enabled
    _enabled = True


@contextmanager
def gc_paused(enabled: bool | None = None) -> Iterator[None]:
    """Around a start-up block (imports, ``Engine.load``): the cyclic collector off inside it; on
    leaving, everything alive is frozen (``gc.freeze``) and the collector is on again if it was
    before. ``enabled``: None = only in a console command (:func:`enable`)."""
    if not (_enabled if enabled is None else enabled):
        yield
        return
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_on:
            gc.enable()


def import_ml_stack() -> None:
    """Import torch and transformers' modeling code (what every model-loading command needs) inside
    :func:`gc_paused`; nothing when they are imported already."""
    if "transformers.modeling_utils" in sys.modules:
        return
    with gc_paused():
        import torch  # noqa: F401
        import transformers.modeling_utils  # noqa: F401
