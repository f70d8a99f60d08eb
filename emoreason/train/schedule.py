"""Training schedules as data: a list of phases, each an epoch range, a task-group filter and the
parameter groups the optimizer steps.

One loop runs every schedule: the sampler yields only the phase's task group, and only the
phase's parameter groups get ``requires_grad=True`` (everything else is frozen *and* not stepped).

Parameter-group keys are ``emoreason.config.PARAMETER_GROUPS``, the keys
``AudioLLM.parameter_groups()`` uses (docs/core-api.md). A phase may name keys the model lacks (e.g. ``fusion_adapter`` in a
sequence-fusion model); they are skipped.

Paper (Alt x): alternate speech / emotion every x epochs until each side has seen 4 epochs of its
own tasks, then one final epoch with all adapters + LoRA on all tasks. Joint: everything
trainable on all tasks for every epoch. Emotion then all (section 6, Table 7): a warm-started
model trains its emotion side on emotion tasks, then all adapters + LoRA on all tasks.
"""
from __future__ import annotations

from dataclasses import dataclass

from emoreason.config import PARAMETER_GROUPS, ConfigError

ADAPTER_KEYS = tuple(k for k in PARAMETER_GROUPS if k.endswith("_adapter"))


@dataclass(frozen=True)
class Phase:
    """Passes ``[start_epoch, end_epoch)`` training ``param_groups`` on tasks of ``group``.

    A pass is one epoch over the phase's examples: in an alternating phase that is the speech
    (or emotion) rows only, so one alternating round S + E costs about one epoch of all data.
    """

    name: str
    """``speech`` | ``emotion`` | ``final`` | ``joint`` (logged with every step)."""
    start_epoch: int
    end_epoch: int
    group: str | None
    """Task group the sampler keeps (``speech`` / ``emotion``); None keeps all tasks."""
    param_groups: tuple[str, ...]

    def covers(self, epoch: int) -> bool:
        return self.start_epoch <= epoch < self.end_epoch


def side_keys(side: str, encoder_trainable: bool) -> tuple[str, ...]:
    """Parameter groups of one side's phase: its encoder (if trainable), its adapter, the shared
    feature-fusion adapter, and LoRA."""
    keys = (f"{side}_encoder",) if encoder_trainable else ()
    return keys + (f"{side}_adapter", "fusion_adapter", "lora")


def build_schedule(
    kind: str,
    epochs: int,
    switch_every: int = 1,
    alternation_epochs: int = 4,
    first_group: str = "speech",
    final_phase: bool = True,
    speech_encoder_trainable: bool = False,
    emotion_encoder_trainable: bool = False,
) -> list[Phase]:
    """Phases covering passes ``0 .. n-1`` without gaps (a pass = one epoch over the phase's tasks).

    ``joint``: one phase of ``epochs`` passes over all tasks, every trainable part.

    ``alternating`` (paper, section 3.3 and Table 2): each side gets ``alternation_epochs`` epochs
    of its own tasks, in blocks of ``switch_every`` epochs, starting with ``first_group``; so
    "Alt 1" is S E S E S E S E and "Alt 4" is S S S S E E E E. With ``final_phase`` the remaining
    ``epochs - alternation_epochs`` epochs (at least one) train all adapters + LoRA on all tasks;
    without it ``epochs`` must equal ``alternation_epochs``. Every task is thus seen ``epochs``
    times, as in joint training.

    ``emotion_then_all`` (section 6, Table 7, for a warm-started model, ``train.init_from``): the
    emotion side (its encoder if trainable, its adapter, LoRA) for ``alternation_epochs`` epochs of
    emotion tasks, then the final phase as above; the speech side is never trained on its own.
    """
    trainable = {"speech": speech_encoder_trainable, "emotion": emotion_encoder_trainable}
    if kind == "joint":
        keys = tuple(k for k in PARAMETER_GROUPS if not k.endswith("_encoder") or trainable[k.split("_")[0]])
        return [Phase("joint", 0, epochs, None, keys)]
    if kind not in ("alternating", "emotion_then_all"):
        raise ConfigError(f"train.schedule={kind!r}: expected 'alternating', 'joint' or 'emotion_then_all'")
    if switch_every < 1 or alternation_epochs < 1:
        raise ConfigError("train.switch_every and train.alternation_epochs must be >= 1")
    needed = alternation_epochs + (1 if final_phase else 0)
    if (final_phase and epochs < needed) or (not final_phase and epochs != alternation_epochs):
        rule = f">= alternation_epochs + 1 = {needed}" if final_phase else f"== alternation_epochs = {alternation_epochs}"
        raise ConfigError(
            f"train.epochs={epochs}: the {kind} schedule needs epochs {rule} "
            f"(set train.epochs, train.alternation_epochs or train.final_phase)"
        )
    phases: list[Phase] = []
    start = 0
    if kind == "emotion_then_all":
        phases.append(Phase("emotion", 0, alternation_epochs, "emotion", side_keys("emotion", trainable["emotion"])))
        start = alternation_epochs
    if first_group not in trainable:
        raise ConfigError(f"train.first_group={first_group!r}: expected 'speech' or 'emotion'")
    order = [first_group, "emotion" if first_group == "speech" else "speech"]
    for done in range(0, alternation_epochs if kind == "alternating" else 0, switch_every):
        length = min(switch_every, alternation_epochs - done)
        for side in order:
            phases.append(Phase(side, start, start + length, side, side_keys(side, trainable[side])))
            start += length
    if final_phase:
        phases.append(Phase("final", start, start + epochs - alternation_epochs, None, ADAPTER_KEYS + ("lora",)))
    return phases


def num_passes(phases: list[Phase]) -> int:
    """Total passes of a schedule (the loop's epoch counter runs to this)."""
    return phases[-1].end_epoch


def phase_at(phases: list[Phase], epoch: int) -> Phase:
    """The phase covering ``epoch``."""
    for phase in phases:
        if phase.covers(epoch):
            return phase
    raise IndexError(f"epoch {epoch} is outside the schedule")


def trainable_keys(phases: list[Phase], available: set[str]) -> list[str]:
    """Keys trained in at least one phase and present in the model, in canonical order."""
    used = {k for p in phases for k in p.param_groups}
    return [k for k in PARAMETER_GROUPS if k in used and k in available]
