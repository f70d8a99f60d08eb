"""Task-group sampler: phase filtering, sharding across replicas, resumable position."""
import pytest

from emoreason.train.sampler import TaskGroupSampler

GROUPS = ["speech", "emotion"] * 7 + ["speech"]  # 8 speech, 7 emotion


def test_yields_only_the_phase_group_and_covers_it():
    s = TaskGroupSampler(GROUPS, micro_batch=3, seed=1)
    for group in ("speech", "emotion"):
        s.set_epoch(2, group)
        seen = [i for b in s for i in b]
        assert {GROUPS[i] for i in seen} == {group}
        assert set(seen) == {i for i, g in enumerate(GROUPS) if g == group}
        assert all(len(b) == 3 for b in s)  # last batch filled by wrap-around


def test_epochs_reshuffle_deterministically():
    s = TaskGroupSampler(GROUPS, micro_batch=4, seed=0)
    s.set_epoch(0, None)
    e0 = list(s)
    s.set_epoch(1, None)
    assert list(s) != e0
    s.set_epoch(0, None)
    assert list(s) == e0


def test_two_replicas_split_each_global_batch_of_one_replica():
    one = TaskGroupSampler(GROUPS, micro_batch=4, seed=3)
    r0 = TaskGroupSampler(GROUPS, micro_batch=2, num_replicas=2, rank=0, seed=3)
    r1 = TaskGroupSampler(GROUPS, micro_batch=2, num_replicas=2, rank=1, seed=3)
    for s in (one, r0, r1):
        s.set_epoch(1, "speech")
    assert len(one) == len(r0) == len(r1) == 2
    assert [a + b for a, b in zip(r0, r1)] == list(one)


def test_resume_mid_epoch_continues_where_it_stopped():
    s = TaskGroupSampler(GROUPS, micro_batch=2, seed=5)
    s.set_epoch(3, "emotion")
    full = list(s)
    s.start = 2
    state = s.state_dict()
    t = TaskGroupSampler(GROUPS, micro_batch=2, seed=0)
    t.load_state_dict(state)
    assert list(t) == full[2:]


def test_length_grouped_batches_hold_similar_lengths():
    from emoreason.train.sampler import GROUP_WINDOW

    lengths = [(i * 37) % 101 for i in range(GROUP_WINDOW * 4 * 3)]
    plain = TaskGroupSampler(["g"] * len(lengths), 4, seed=1)
    grouped = TaskGroupSampler(["g"] * len(lengths), 4, seed=1, lengths=lengths)

    def padding(sampler):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in sampler)

    assert sorted(i for b in grouped for i in b) == sorted(i for b in plain for i in b)  # same rows
    assert padding(grouped) < padding(plain) / 3
    assert [b for b in grouped] == [b for b in TaskGroupSampler(["g"] * len(lengths), 4, seed=1, lengths=lengths)]
    grouped.set_epoch(1, None)
    first = list(grouped)
    grouped.start = 3
    assert list(grouped) == first[3:]  # resumable mid-epoch


def test_smaller_length_windows_pad_more_and_mix_more():
    """``group_window`` global batches per sorted window: 2 (the mini config's) pads less than no
    grouping and more than 8, and each batch's rows come from two neighbouring batches of the
    shuffle only; a window of 1 sorts each batch alone, which changes no batch's rows."""
    lengths = [(i * 37) % 101 for i in range(8 * 4 * 3)]
    groups = ["g"] * len(lengths)

    def padding(sampler):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in sampler)

    plain = TaskGroupSampler(groups, 4, seed=1)
    by = {w: TaskGroupSampler(groups, 4, seed=1, lengths=lengths, group_window=w) for w in (1, 2, 8)}
    assert padding(by[8]) < padding(by[2]) < padding(plain)
    assert padding(by[1]) == padding(plain)
    shuffled = [set(b) for b in plain]
    pairs = [shuffled[k] | shuffled[k + 1] for k in range(0, len(shuffled), 2)]
    assert all(any(set(b) <= p for p in pairs) for b in by[2])
    with pytest.raises(ValueError):
        TaskGroupSampler(groups, 4, lengths=lengths, group_window=0)


def test_row_lengths_sort_each_batch_and_keep_its_rows():
    lengths = [(i * 37) % 101 for i in range(30)]
    plain = list(TaskGroupSampler(["g"] * 30, 8, seed=2))
    sorted_rows = list(TaskGroupSampler(["g"] * 30, 8, seed=2, row_lengths=lengths))
    assert [sorted(b) for b in sorted_rows] == [sorted(b) for b in plain]
    assert all([lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True) for b in sorted_rows)
