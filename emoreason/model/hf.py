"""transformers view of a saved model directory: ``config.json`` with ``model_type: emoreason``.

    import emoreason                                   # registers the model type with transformers
    from transformers import AutoConfig, AutoModel
    config = AutoConfig.from_pretrained("runs/x/final")  # EmoReasonConfig (the model config inside)
    model = AutoModel.from_pretrained("runs/x/final")    # EmoReasonModel: .audiollm, .processor

``config.yaml`` stays the source of truth of a directory (``builder.read_config``); ``config.json``
(written by ``builder.save_pretrained``, with the LoRA as a PEFT ``adapter/`` folder) carries the
same ``ModelConfig`` (``emoreason`` field) plus a format version, so transformers' Auto classes can
find the class that reads it. Loading goes through ``builder.load_pretrained``
(one code path reads checkpoints): ``EmoReasonModel.from_pretrained`` is that call wrapped in a
``PreTrainedModel``, not a second weight loader.

Registration (:func:`register`) runs when transformers is imported after ``import emoreason``, or
at once if it already is (see ``emoreason/__init__.py``), so ``import emoreason`` stays torch-free.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from emoreason.config import to_dict
from emoreason.errors import UserError
from emoreason.model.builder import CONFIG_FILE, FORMAT_VERSION, HF_CONFIG_FILE, MODEL_TYPE, load_pretrained, read_config


class EmoReasonConfig(PretrainedConfig):
    """transformers config of an emoreason model directory.

    Args:
        emoreason: the ``ModelConfig`` as a plain dict (``emoreason.config.to_dict``).
        format_version: layout version of the directory (:data:`FORMAT_VERSION`).
    """

    model_type = MODEL_TYPE

    def __init__(self, emoreason: dict[str, Any] | None = None, format_version: int = FORMAT_VERSION, **kwargs: Any) -> None:
        self.emoreason = emoreason or {}
        self.format_version = format_version
        super().__init__(**kwargs)


class EmoReasonModel(PreTrainedModel):
    """An ``AudioLLM`` and its processor behind transformers' ``from_pretrained``.

    ``model.audiollm`` is the :class:`emoreason.model.audiollm.AudioLLM` (forward, generate,
    score_candidates); ``model.processor`` the :class:`AudioProcessor` that builds its inputs.
    ``forward`` passes through to the AudioLLM.
    """

    config_class = EmoReasonConfig
    base_model_prefix = "audiollm"
    main_input_name = "input_ids"

    def __init__(self, config: EmoReasonConfig, audiollm: torch.nn.Module | None = None, processor: Any = None) -> None:
        super().__init__(config)
        if audiollm is None:
            raise ValueError("EmoReasonModel is loaded with from_pretrained(directory) (it needs the saved weights)")
        self.audiollm = audiollm
        self.processor = processor

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.audiollm(*args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *args: Any, config: EmoReasonConfig | None = None,
                        device_map: Any = None, **kwargs: Any) -> "EmoReasonModel":
        """Load a local emoreason directory (``final/`` or an export) with ``builder.load_pretrained``.

        ``device_map``: a single device (``"cpu"``, ``"cuda:0"``) or None; other transformers
        loading options do not apply and are ignored.
        """
        directory = Path(pretrained_model_name_or_path)
        if not (directory / CONFIG_FILE).is_file():
            raise UserError(f"{directory}: not an emoreason model directory (no {CONFIG_FILE}); a run directory's "
                            f"model is RUN/final, and `emoreason export RUN --out DIR` writes a self-contained one")
        if config is None:  # a directory saved before config.json existed: the same config from config.yaml
            config = (EmoReasonConfig.from_pretrained(str(directory)) if (directory / HF_CONFIG_FILE).is_file()
                      else EmoReasonConfig(emoreason=to_dict(read_config(directory))))
        if config.format_version > FORMAT_VERSION:
            raise UserError(f"{directory}: written by a newer emoreason (layout version {config.format_version}, "
                            f"this one reads up to {FORMAT_VERSION}): upgrade emoreason")
        device = device_map if isinstance(device_map, (str, torch.device)) and device_map != "auto" else None
        audiollm, processor = load_pretrained(directory, device=device)
        return cls(config, audiollm, processor)


_registered = False


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` know ``model_type: emoreason`` (idempotent)."""
    global _registered
    if _registered:
        return
    AutoConfig.register(MODEL_TYPE, EmoReasonConfig, exist_ok=True)
    AutoModel.register(EmoReasonConfig, EmoReasonModel, exist_ok=True)
    _registered = True


register()
