"""Schedules as data: phases, their epoch ranges, task-group filters and parameter groups."""
import pytest

from emoreason.config import ConfigError
from emoreason.train.schedule import build_schedule, num_passes, phase_at, trainable_keys


def test_paper_alt1_alternates_every_epoch_then_final():
    phases = build_schedule("alternating", epochs=5, switch_every=1, alternation_epochs=4)
    # each side sees 4 epochs of its own tasks, one at a time; then one epoch of everything
    assert [(p.name, p.start_epoch, p.end_epoch, p.group) for p in phases] == [
        ("speech", 0, 1, "speech"), ("emotion", 1, 2, "emotion"), ("speech", 2, 3, "speech"),
        ("emotion", 3, 4, "emotion"), ("speech", 4, 5, "speech"), ("emotion", 5, 6, "emotion"),
        ("speech", 6, 7, "speech"), ("emotion", 7, 8, "emotion"), ("final", 8, 9, None),
    ]
    # encoders frozen by default (paper): adapters + LoRA only
    assert phases[0].param_groups == ("speech_adapter", "fusion_adapter", "lora")
    assert phases[1].param_groups == ("emotion_adapter", "fusion_adapter", "lora")
    assert phases[8].param_groups == ("speech_adapter", "emotion_adapter", "fusion_adapter", "lora")
    assert num_passes(phases) == 9


def test_paper_alt4_four_epochs_per_side_then_final():
    phases = build_schedule("alternating", epochs=5, switch_every=4, alternation_epochs=4, first_group="emotion")
    assert [(p.name, p.start_epoch, p.end_epoch) for p in phases] == [("emotion", 0, 4), ("speech", 4, 8), ("final", 8, 9)]
    assert [phase_at(phases, e).name for e in range(9)] == ["emotion"] * 4 + ["speech"] * 4 + ["final"]


def test_alt2_switches_every_two_epochs():
    phases = build_schedule("alternating", epochs=5, switch_every=2, alternation_epochs=4)
    names = [phase_at(phases, e).name for e in range(num_passes(phases))]
    assert names == ["speech", "speech", "emotion", "emotion"] * 2 + ["final"]


def test_switch_every_not_dividing_alternation_epochs():
    phases = build_schedule("alternating", epochs=6, switch_every=3, alternation_epochs=4)
    assert [(p.name, p.end_epoch - p.start_epoch) for p in phases] == [
        ("speech", 3), ("emotion", 3), ("speech", 1), ("emotion", 1), ("final", 2)
    ]


def test_trainable_encoders_join_their_side_only():
    phases = build_schedule("alternating", 2, 1, 1, speech_encoder_trainable=True, emotion_encoder_trainable=False)
    assert [p.name for p in phases] == ["speech", "emotion", "final"]
    assert "speech_encoder" in phases[0].param_groups and "emotion_encoder" not in phases[0].param_groups
    assert "emotion_encoder" not in phases[1].param_groups and "speech_encoder" not in phases[1].param_groups
    assert not any(k.endswith("_encoder") for k in phases[2].param_groups)  # final: adapters + LoRA


def test_joint_trains_everything_trainable_on_all_tasks():
    (phase,) = build_schedule("joint", epochs=5, emotion_encoder_trainable=True)
    assert (phase.start_epoch, phase.end_epoch, phase.group) == (0, 5, None)
    assert set(phase.param_groups) == {"speech_adapter", "emotion_encoder", "emotion_adapter", "fusion_adapter", "lora"}


def test_no_final_phase_needs_epochs_equal_alternation():
    phases = build_schedule("alternating", epochs=4, alternation_epochs=4, final_phase=False)
    assert phases[-1].name == "emotion" and phases[-1].end_epoch == 8
    with pytest.raises(ConfigError, match="train.epochs=5"):
        build_schedule("alternating", epochs=5, alternation_epochs=4, final_phase=False)
    with pytest.raises(ConfigError, match="train.epochs=4"):
        build_schedule("alternating", epochs=4, alternation_epochs=4, final_phase=True)


def test_trainable_keys_skip_groups_the_model_lacks():
    phases = build_schedule("alternating", 5)
    assert trainable_keys(phases, {"speech_adapter", "emotion_adapter", "lora", "speech_encoder"}) == [
        "speech_adapter", "emotion_adapter", "lora"
    ]


def test_emotion_then_all_trains_the_emotion_side_then_everything():
    """Table 7 (section 6): emotion encoder + adapter + LoRA on emotion tasks, then adapters + LoRA on all."""
    phases = build_schedule("emotion_then_all", epochs=5, alternation_epochs=4, emotion_encoder_trainable=True,
                            speech_encoder_trainable=True)
    assert [(p.name, p.start_epoch, p.end_epoch, p.group) for p in phases] == [("emotion", 0, 4, "emotion"), ("final", 4, 5, None)]
    assert phases[0].param_groups == ("emotion_encoder", "emotion_adapter", "fusion_adapter", "lora")
    assert "speech_encoder" not in trainable_keys(phases, {"speech_encoder", "speech_adapter", "emotion_encoder", "lora"})
    with pytest.raises(ConfigError, match="emotion_then_all schedule needs epochs >= alternation_epochs \\+ 1"):
        build_schedule("emotion_then_all", epochs=4, alternation_epochs=4)
