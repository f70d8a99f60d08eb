"""Schedules as data: phases, their epoch ranges, task-group filters and parameter groups."""
import pytest

from emoreason.config import ConfigError
from emoreason.train.schedule import build_schedule, phase_at, trainable_keys


def test_paper_alt1_alternates_every_epoch_then_final():
    phases = build_schedule("alternating", epochs=5, switch_every=1, alternation_epochs=4)
    assert [(p.name, p.start_epoch, p.end_epoch, p.group) for p in phases] == [
        ("speech", 0, 1, "speech"), ("emotion", 1, 2, "emotion"), ("speech", 2, 3, "speech"),
        ("emotion", 3, 4, "emotion"), ("final", 4, 5, None),
    ]
    # encoders frozen by default (paper): adapters + LoRA only
    assert phases[0].param_groups == ("speech_adapter", "fusion_adapter", "lora")
    assert phases[1].param_groups == ("emotion_adapter", "fusion_adapter", "lora")
    assert phases[4].param_groups == ("speech_adapter", "emotion_adapter", "fusion_adapter", "lora")


def test_paper_alt4_one_block_per_side_within_alternation():
    phases = build_schedule("alternating", epochs=5, switch_every=4, alternation_epochs=4, first_group="emotion")
    assert [(p.name, p.start_epoch, p.end_epoch) for p in phases] == [("emotion", 0, 4), ("final", 4, 5)]
    assert [phase_at(phases, e).name for e in range(5)] == ["emotion"] * 4 + ["final"]


def test_alt2_switches_every_two_epochs():
    phases = build_schedule("alternating", epochs=5, switch_every=2, alternation_epochs=4)
    assert [phase_at(phases, e).name for e in range(5)] == ["speech", "speech", "emotion", "emotion", "final"]


def test_trainable_encoders_join_their_side_only():
    phases = build_schedule("alternating", 3, 1, 2, speech_encoder_trainable=True, emotion_encoder_trainable=False)
    assert "speech_encoder" in phases[0].param_groups and "emotion_encoder" not in phases[0].param_groups
    assert "emotion_encoder" not in phases[1].param_groups and "speech_encoder" not in phases[1].param_groups
    assert not any(k.endswith("_encoder") for k in phases[2].param_groups)  # final: adapters + LoRA


def test_joint_trains_everything_trainable_on_all_tasks():
    (phase,) = build_schedule("joint", epochs=5, emotion_encoder_trainable=True)
    assert (phase.start_epoch, phase.end_epoch, phase.group) == (0, 5, None)
    assert set(phase.param_groups) == {"speech_adapter", "emotion_encoder", "emotion_adapter", "fusion_adapter", "lora"}


def test_no_final_phase_needs_epochs_equal_alternation():
    phases = build_schedule("alternating", epochs=4, alternation_epochs=4, final_phase=False)
    assert phases[-1].name == "emotion" and phases[-1].end_epoch == 4
    with pytest.raises(ConfigError, match="train.epochs=5"):
        build_schedule("alternating", epochs=5, alternation_epochs=4, final_phase=False)
    with pytest.raises(ConfigError, match="train.epochs=4"):
        build_schedule("alternating", epochs=4, alternation_epochs=4, final_phase=True)


def test_trainable_keys_skip_groups_the_model_lacks():
    phases = build_schedule("alternating", 5)
    assert trainable_keys(phases, {"speech_adapter", "emotion_adapter", "lora", "speech_encoder"}) == [
        "speech_adapter", "emotion_adapter", "lora"
    ]
