"""Learning-rate schedules per parameter group: one clock for the run, per group, or per phase."""
import pytest
import torch

from emoreason.train.optim import build_lr_scheduler, build_optimizer, group_lr_lambdas, lr_lambda

# Alt-like plan: speech phase (4 steps), emotion phase (4), final (2); "a" speech adapter, "b" emotion adapter
PLAN = [(0, frozenset({"a", "l"}), 4), (1, frozenset({"b", "l"}), 4), (2, frozenset({"a", "b", "l"}), 2)]


def values(fn, n=10):
    return [round(fn(s), 6) for s in range(n)]


def test_run_scope_is_the_old_single_schedule():
    fns = group_lr_lambdas("cosine", 0.2, "run", PLAN, ["a", "b", "l"])
    assert values(fns[0]) == values(fns[2]) == values(lr_lambda("cosine", 10, 2))


def test_phase_scope_warms_up_and_decays_in_every_phase_of_a_group():
    a, b, lora = group_lr_lambdas("constant", 0.5, "phase", PLAN, ["a", "b", "l"])
    # 4-step phases warm up over 2 steps, the 2-step final phase over 1; frozen steps are 0
    assert values(a) == pytest.approx([1 / 3, 2 / 3, 1, 1, 0, 0, 0, 0, 0.5, 1], abs=1e-6)
    assert values(b) == pytest.approx([0, 0, 0, 0, 1 / 3, 2 / 3, 1, 1, 0.5, 1], abs=1e-6)
    assert values(lora) == pytest.approx([1 / 3, 2 / 3, 1, 1, 1 / 3, 2 / 3, 1, 1, 0.5, 1], abs=1e-6)
    cos_a = group_lr_lambdas("cosine", 0.0, "phase", PLAN, ["a"])[0]
    assert cos_a(0) == 1.0 and cos_a(8) == 1.0 and 0 < cos_a(3) < cos_a(2)  # the final phase starts at the peak


def test_group_scope_counts_only_the_steps_a_group_is_trained():
    a, lora = group_lr_lambdas("linear", 0.0, "group", PLAN, ["a", "l"])
    # "a" is trained 6 steps (0-3, 8-9): one linear decay over those, paused while frozen
    assert values(a) == pytest.approx([1, 5 / 6, 4 / 6, 3 / 6, 0, 0, 0, 0, 2 / 6, 1 / 6], abs=1e-6)
    assert values(lora) == pytest.approx(values(lr_lambda("linear", 10, 0)), abs=1e-6)  # always on: the run's clock


def test_scheduler_sets_each_param_group_and_restores_from_state():
    params = {k: [torch.nn.Parameter(torch.zeros(2))] for k in ("a", "b", "l")}
    opt = build_optimizer(params, ["a", "b", "l"], lr=1.0, group_lr={"b": 2.0})
    sched = build_lr_scheduler(opt, "constant", 0.5, "phase", PLAN)
    seen = []
    for _ in range(6):
        seen.append([round(g["lr"], 6) for g in opt.param_groups])
        opt.step()
        sched.step()
    assert seen[4] == [0.0, round(2 / 3, 6), round(1 / 3, 6)]  # first emotion step: b (base 2.0) warms up again
    state = sched.state_dict()
    assert all(v is None for v in state["lr_lambdas"])  # the table is rebuilt from the config, not stored
    opt2 = build_optimizer(params, ["a", "b", "l"], lr=1.0, group_lr={"b": 2.0})
    sched2 = build_lr_scheduler(opt2, "constant", 0.5, "phase", PLAN)
    opt2.load_state_dict(opt.state_dict())  # as Trainer._restore does: the optimizer holds the current lrs
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == sched.get_last_lr() == [g["lr"] for g in opt2.param_groups]
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups] == [0.0, 2.0, 1.0]  # step 7: a frozen


def test_own_lr_gives_some_parameters_of_a_group_their_own_rate_under_the_same_name():
    a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    opt = build_optimizer({"emotion_adapter": [a, b], "lora": [c]}, ["emotion_adapter", "lora"], 1e-3,
                          group_lr={"emotion_adapter": 2e-3}, own_lr={"emotion_adapter": ([b], 0.0)})
    got = [(g["name"], g["lr"], [id(p) for p in g["params"]]) for g in opt.param_groups]
    assert got == [("emotion_adapter", 2e-3, [id(a)]), ("emotion_adapter", 0.0, [id(b)]), ("lora", 1e-3, [id(c)])]
