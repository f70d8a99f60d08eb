"""Load and render the versioned teacher prompt templates in ``prompts/<version>/``.

Templates are files, not strings in code, so a change to a prompt is a reviewed diff and every
target records which template produced it (``meta.teacher.prompt``, e.g. ``v1/detailed``).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from string import Template

from emoreason.errors import UserError

STYLES = ("summary", "detailed", "label")
DEFAULT_VERSION = "v1"
SENTIMENT_TASKS = {"sentiment", "sr"}


def template_name(style: str, task: str, version: str = DEFAULT_VERSION) -> str:
    """``("detailed", "sentiment") -> "v1/detailed_sentiment"``: the id recorded in row meta.
    The ``label`` style has no template (its target is a corpus answer or ``labels.label_sentence``)."""
    if style == "label":
        raise UserError("the 'label' style has no prompt template (its target is labels.label_sentence)")
    if style not in STYLES:
        raise UserError(f"unknown teacher style {style!r} (expected one of {list(STYLES)})")
    suffix = "_sentiment" if task in SENTIMENT_TASKS else ""
    return f"{version}/{style}{suffix}"


@lru_cache(maxsize=None)
def load_template(name: str) -> Template:
    """``"v1/detailed"`` -> the Template read from ``prompts/v1/detailed.txt``."""
    version, _, stem = name.partition("/")
    path = resources.files("emoreason.teacher.prompts").joinpath(version, f"{stem}.txt")
    if not path.is_file():
        raise UserError(f"teacher prompt template {name!r} not found ({path})")
    return Template(path.read_text(encoding="utf-8"))


def render(name: str, transcript: str, label: str, cue_phrases: list[str] | None = None) -> str:
    """Fill a template. Cue phrases become a block the teacher is asked to cite (or nothing)."""
    cues_block, cue_instruction = "", ""
    if cue_phrases:
        cues_block = "Measured delivery (acoustic cues): " + "; ".join(cue_phrases) + ".\n"
        cue_instruction = " Mention how it was said, citing the measured delivery where it fits."
    text = load_template(name).substitute(
        transcript=transcript, label=label, cues=cues_block, cue_instruction=cue_instruction
    )
    return text.strip() + "\n"
