"""The training loop on a stand-in model (tests/train_fakes.py): what each phase trains and freezes,
which tasks it sees, that loss falls, and that an interrupted run resumes to the same losses."""
import json

import pytest
import torch
from train_fakes import FakeAudioLLM, FakeProcessor

from emoreason.config import DataConfig, TrainConfig
from emoreason.data.dataset import Collator, ManifestDataset
from emoreason.data.dummy import make_dummy_corpus
from emoreason.train.loop import Trainer, token_losses
from emoreason.train.schedule import build_schedule

SPEECH_TASKS, EMOTION_TASKS = {"asr", "sqa"}, {"emotion", "sentiment"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    manifest = make_dummy_corpus(20, tmp_path_factory.mktemp("dummy"))
    return ManifestDataset(manifest, DataConfig().task_groups)  # 16 train rows: 8 speech, 8 emotion


def snapshot(model):
    groups = {k: torch.cat([p.detach().flatten() for p in ps]).clone() for k, ps in model.parameter_groups().items()}
    groups["base"] = torch.cat([model.llm.head.weight.detach().flatten(), model.llm.embed.weight.detach().flatten()]).clone()
    return groups


def changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def make_trainer(dataset, run_dir, phases, **train_kw):
    kw = dict(batch_size=8, lr=1e-2, warmup_ratio=0.0,
              weight_decay=0.1, precision="no", lr_schedule="constant")
    kw.update(train_kw)
    model = FakeAudioLLM()
    return model, Trainer(model, dataset, Collator(FakeProcessor()), phases, TrainConfig(**kw), run_dir)


def test_token_losses_shift_and_mask():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = 10.0  # position 0 predicts label at position 1
    labels = torch.tensor([[-100, 2, -100]])
    sums, counts = token_losses(logits, labels)
    assert counts.tolist() == [1]
    assert sums.item() == pytest.approx(torch.nn.functional.cross_entropy(logits[0, :1], labels[0, 1:2]).item())
    # random batch: summed per example, the same as a full shifted cross entropy
    logits, labels = torch.randn(3, 7, 11), torch.randint(0, 11, (3, 7))
    labels[0, :4] = -100
    labels[2] = -100
    sums, counts = token_losses(logits, labels)
    full = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), reduction="sum")
    assert counts.tolist() == [3, 6, 0] and sums[2] == 0
    assert sums.sum().item() == pytest.approx(full.item(), rel=1e-5)


def test_each_alternating_phase_trains_only_its_groups_and_tasks(dataset, tmp_path):
    phases = build_schedule("alternating", 2, 1, 1, "speech", True, speech_encoder_trainable=True, emotion_encoder_trainable=True)
    model, trainer = make_trainer(dataset, tmp_path, phases)
    s0 = snapshot(model)
    (r1,) = trainer.fit(stop_after=1)  # pass 0: speech phase, one step
    s1 = snapshot(model)
    assert r1.phase == "speech" and set(r1.task_losses) - {"all"} <= SPEECH_TASKS
    assert changed(s0, s1) == {"speech_encoder", "speech_adapter", "lora"}

    (r2,) = trainer.fit(stop_after=2)  # resumes from step-1, pass 1: emotion phase
    s2 = snapshot(model)
    assert r2.phase == "emotion" and set(r2.task_losses) - {"all"} <= EMOTION_TASKS
    assert changed(s1, s2) == {"emotion_encoder", "emotion_adapter", "lora"}

    final = trainer.fit()  # pass 2: final phase, all tasks, adapters + LoRA
    s3 = snapshot(model)
    assert [r.phase for r in final] == ["final", "final"]
    assert set().union(*(r.task_losses for r in final)) - {"all"} == SPEECH_TASKS | EMOTION_TASKS
    assert changed(s2, s3) == {"speech_adapter", "emotion_adapter", "lora"}
    for p in model.llm.head.parameters():  # base LLM weights never require grad
        assert not p.requires_grad


def test_joint_trains_all_trainable_groups_at_once(dataset, tmp_path):
    phases = build_schedule("joint", 1, emotion_encoder_trainable=True)
    model, trainer = make_trainer(dataset, tmp_path, phases, max_steps=1)
    s0 = snapshot(model)
    (r,) = trainer.fit()
    assert r.phase == "joint"
    assert changed(s0, snapshot(model)) == {"emotion_encoder", "speech_adapter", "emotion_adapter", "lora"}


def test_loss_falls_when_overfitting_a_few_examples(dataset, tmp_path):
    phases = build_schedule("joint", 30)
    _, trainer = make_trainer(dataset, tmp_path, phases, lr=3e-2, weight_decay=0.0, batch_size=16)
    losses = [r.loss for r in trainer.fit()]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0]


@pytest.mark.parametrize("scope", ["run", "phase"])
def test_interrupted_run_resumes_to_identical_losses(dataset, tmp_path, scope):
    """N steps straight vs k steps, stop, resume from the last checkpoint (mid-epoch) to N, under the
    run-wide lr schedule and under per-phase schedules."""
    phases = build_schedule("alternating", 3, 1, 2, "speech", True)  # S E S E F
    kw = dict(batch_size=2, grad_accum=2, save_every_steps=2, lr_schedule="cosine", warmup_ratio=0.2,
              lr_schedule_scope=scope)
    _, straight = make_trainer(dataset, tmp_path / "a", phases, **kw)
    results = straight.fit()
    full = [r.loss for r in results]
    assert len(full) == 12  # 4 alternating passes of 2 steps, 4 final steps
    lrs = [r.lr for r in results]
    if scope == "phase":  # each phase decays from the peak (int(0.2 x 2 or 4) = 0 warmup steps)
        assert lrs[0:8:2] == [1e-2] * 4 and lrs[1] == pytest.approx(0.5e-2) and lrs[8] == 1e-2
    else:  # one warmup (2 steps) + cosine over all 12: the final phase starts at 35 % of the peak
        assert lrs[0] == pytest.approx(1e-2 / 3) and lrs[8] == pytest.approx(0.345e-2, abs=1e-5)

    _, first = make_trainer(dataset, tmp_path / "b", phases, **kw)
    part1 = [r.loss for r in first.fit(stop_after=11)]  # stops before step 12; last checkpoint: step 10
    assert part1 == full[:11]
    _, second = make_trainer(dataset, tmp_path / "b", phases, **kw)  # a fresh process's view
    part2 = second.fit()  # auto-resume, mid-epoch
    assert part2[0].step == 11
    assert [r.loss for r in part2] == pytest.approx(full[10:], abs=1e-9, rel=0)

    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["task"] == "all"]
    assert steps == list(range(1, 13))  # step 11 logged once: rows after the checkpoint were dropped
    assert {r["phase"] for r in rows} == {"speech", "emotion", "final"}
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step-10", "step-12"]  # keep=2


def test_grad_norm_and_task_losses_reach_metrics_and_an_accelerate_tracker(dataset, tmp_path):
    """A real accelerate GeneralTracker (what report_to builds for tensorboard / wandb / mlflow) gets
    the per-task losses and the gradient norm of every step; metrics.jsonl has them too."""
    from accelerate import Accelerator
    from accelerate.tracking import GeneralTracker

    class Memory(GeneralTracker):
        name, requires_logging_directory = "memory", False

        def __init__(self):
            super().__init__()
            self.config, self.steps, self.finished = None, {}, False

        @property
        def tracker(self):
            return self

        def store_init_configuration(self, values):
            self.config = values

        def log(self, values, step=None, **kwargs):
            self.steps.setdefault(step, {}).update(values)

        def finish(self):
            self.finished = True

    memory = Memory()
    train = TrainConfig(batch_size=8, lr=1e-2, warmup_ratio=0.0, precision="no", lr_schedule="constant", max_grad_norm=0.0)
    torch.manual_seed(0)
    trainer = Trainer(FakeAudioLLM(), dataset, Collator(FakeProcessor()), build_schedule("joint", 1), train, tmp_path,
                      accelerator=Accelerator(cpu=True, log_with=[memory]))
    results = trainer.fit()
    assert memory.finished and memory.config["lr"] == 1e-2 and memory.config["report_to"] == "none"
    assert sorted(memory.steps) == [r.step for r in results]
    for r in results:
        logged = memory.steps[r.step]
        assert r.grad_norm is not None and r.grad_norm > 0 and logged["grad_norm"] == pytest.approx(r.grad_norm)
        assert {f"loss/{t}" for t in r.task_losses} <= set(logged) and logged["loss/all"] == pytest.approx(r.loss)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {row["task"] for row in rows} >= {"all", "asr", "emotion"}
    assert all(row["grad_norm"] > 0 for row in rows if "loss" in row)
    # with clipping the logged norm is the norm before clipping, and the update uses the clipped one
    torch.manual_seed(0)
    _, trainer2 = make_trainer(dataset, tmp_path / "clip", build_schedule("joint", 1), max_grad_norm=1e-3)
    assert trainer2.fit(stop_after=1)[0].grad_norm == pytest.approx(results[0].grad_norm, rel=1e-4)


def test_length_split_runs_each_batch_as_sub_batches_with_the_same_steps(dataset, tmp_path):
    """train.length_split=2: each batch of 8 runs as two sub-batches of similar rows (sorted by the
    given lengths), gradients accumulated: the same rows, losses and parameters step by step as
    running the batch whole; a run resumed mid-epoch continues to the same losses."""
    phases = build_schedule("alternating", 3, 1, 2, "speech", True)
    lengths = [(i * 7) % 11 + 1 for i in range(len(dataset))]
    # no dropout: its masks depend on the shapes a forward sees, so the two runs would draw others
    config = TrainConfig(batch_size=8, lr=1e-2, warmup_ratio=0.0, weight_decay=0.1, precision="no", lr_schedule="constant")
    whole_model, split_model = FakeAudioLLM(dropout=0.0), FakeAudioLLM(dropout=0.0)
    whole = Trainer(whole_model, dataset, Collator(FakeProcessor()), phases, config, tmp_path / "whole")
    config = TrainConfig(**{**config.__dict__, "length_split": 2})
    split = Trainer(split_model, dataset, Collator(FakeProcessor()), phases, config, tmp_path / "split", lengths=lengths)
    seen: list[list[int]] = []
    collate = split.collate_fn
    split.collate_fn = lambda examples: (seen.append([e["id"] for e in examples]), collate(examples))[1]
    a, b = whole.fit(), split.fit()
    assert [r.step for r in a] == [r.step for r in b] and len(a) > 4
    assert [r.loss for r in b] == pytest.approx([r.loss for r in a], rel=1e-5, abs=1e-6)
    assert [r.task_losses for r in b] == [pytest.approx(r.task_losses, rel=1e-5, abs=1e-6) for r in a]
    before, after = snapshot(whole_model), snapshot(split_model)
    for key in before:
        assert torch.allclose(before[key], after[key], rtol=1e-4, atol=1e-6), key
    assert seen and all(len(s) <= 4 for s in seen)  # collated as halves of the batch of 8
    id_length = {dataset[i]["id"]: lengths[i] for i in range(len(dataset))}
    for first, second in zip(seen[0::2], seen[1::2]):  # each pair: the longer half, then the shorter
        assert min(id_length[i] for i in first) >= max(id_length[i] for i in second)
    config = TrainConfig(**{**config.__dict__, "batch_size": 4, "save_every_steps": 1})  # 2 sub-batches of 2
    steps = [r.loss for r in Trainer(FakeAudioLLM(dropout=0.0), dataset, Collator(FakeProcessor()), phases, config,
                                     tmp_path / "c", lengths=lengths).fit()]
    first = Trainer(FakeAudioLLM(dropout=0.0), dataset, Collator(FakeProcessor()), phases, config, tmp_path / "d",
                    lengths=lengths).fit(stop_after=3)  # mid-pass: 4 steps a pass
    rest = Trainer(FakeAudioLLM(dropout=0.0), dataset, Collator(FakeProcessor()), phases, config, tmp_path / "d",
                   lengths=lengths).fit()
    assert rest[0].step == 4 and [r.loss for r in first + rest] == pytest.approx(steps, abs=1e-9, rel=0)
    with pytest.raises(ValueError, match="length_split"):
        Trainer(FakeAudioLLM(), dataset, Collator(FakeProcessor()), phases, config, tmp_path / "x")
