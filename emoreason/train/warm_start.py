"""Warm start (``train.init_from``, paper section 6 / Table 7): a trained run's weights loaded into
a freshly built model before training, e.g. a speech-only base AudioLLM that gains an emotion
encoder. Only the builder reads checkpoints (``load_weights``); this module picks the files and
turns a mismatch into one line."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from emoreason.errors import UserError
from emoreason.model.builder import RANDOM_BASE_FILE, TRAINABLE_FILE, load_weights


def model_dir_of(path: str | Path) -> Path:
    """``RUN_DIR`` -> ``RUN_DIR/final``; a model directory (``final/``, ``best/``) as it is."""
    path = Path(path)
    for candidate in (path / "final", path):
        if (candidate / TRAINABLE_FILE).is_file():
            return candidate
    raise UserError(f"train.init_from={path}: neither it nor {path / 'final'} holds {TRAINABLE_FILE} "
                    "(give a finished run directory or a model directory)")


def warm_start(model: nn.Module, path: str | Path) -> list[str]:
    """Load ``path``'s randomly initialised base parts (if any) and trained weights into ``model``;
    return the names loaded.

    Every saved weight must exist in ``model`` with the same shape; parts the saved model lacks (a
    new emotion encoder and adapter) keep their fresh initialisation. Every *trained* weight must
    also belong to one of ``model``'s parameter groups: those are what this run's ``final/`` saves,
    so a trained speech encoder whose config now says ``trainable: false`` would otherwise be
    loaded here and silently dropped from the result.

    Raises:
        UserError: no model directory at ``path``, or its weights do not fit (one line naming a few).
    """
    directory = model_dir_of(path)
    loaded: list[str] = []
    for name in (RANDOM_BASE_FILE, TRAINABLE_FILE):
        if not (directory / name).is_file():
            continue
        try:
            names = load_weights(model, directory / name)
        except ValueError as e:  # the builder names the file and a few keys
            raise UserError(f"train.init_from: {e}") from None
        loaded += names
        if name == TRAINABLE_FILE:
            kept = {id(p) for params in model.parameter_groups().values() for p in params}
            own = dict(model.named_parameters())
            dropped = sorted(n for n in names if n in own and id(own[n]) not in kept)
            if dropped:
                raise UserError(f"train.init_from: {len(dropped)} trained weights of {directory} are in no parameter group "
                                f"of this model, so its final/ would not keep them, e.g. {dropped[:3]} "
                                "(set that encoder's trainable: true)")
    return loaded
