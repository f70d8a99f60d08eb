"""Question pools: deterministic choice, stable across processes, every task covered."""
import random
import subprocess
import sys

import pytest

from emoreason.data import questions as q
from emoreason.errors import UserError


def test_pools_cover_tasks_and_are_distinct():
    assert set(q.POOLS) == {"emotion", "sentiment", "asr", "sqa"}
    for task, pool in q.POOLS.items():
        assert len(pool) >= 5, task
        assert len(set(pool)) == len(pool), task
    # the paper's three example questions are in the emotion pool
    assert "What emotion do you think the speaker is expressing?" in q.POOLS["emotion"]
    assert all(any(w in s for w in ("positive", "sentiment", "neutral")) for s in q.POOLS["sentiment"])


def test_seed_key_is_deterministic_and_spreads():
    a = [q.sample_instruction("emotion", f"k{i}") for i in range(200)]
    b = [q.sample_instruction("emotion", f"k{i}") for i in range(200)]
    assert a == b
    # a uniform-ish spread: every template gets used over 200 keys
    assert set(a) == set(q.POOLS["emotion"])


def test_random_instance_advances_and_reproduces():
    r1, r2 = random.Random(3), random.Random(3)
    s1 = [q.sample_instruction("asr", r1) for _ in range(10)]
    s2 = [q.sample_instruction("asr", r2) for _ in range(10)]
    assert s1 == s2 and len(set(s1)) > 1


def test_instruction_for_stable_across_processes():
    code = "from emoreason.data.questions import instruction_for as f; print(f('iemocap/Ses01F_impro01_F000','emotion',7))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == q.instruction_for("iemocap/Ses01F_impro01_F000", "emotion", 7)
    seeds = {q.instruction_for("row-1", "emotion", s) for s in range(30)}
    assert len(seeds) > 3  # the seed matters


def test_sqa_fills_question_and_requires_it():
    for i in range(20):
        text = q.instruction_for(f"r{i}", "sqa", 0, question="What colour is the car?")
        assert "colour is the car?" in text and "{" not in text
    with pytest.raises(UserError):  # every SQA template needs the question
        for i in range(20):
            q.instruction_for(f"r{i}", "sqa", 0)
    with pytest.raises(UserError):
        q.sample_instruction("nope", 1)


def test_label_target():
    assert q.label_target("emotion", "angry") == "The speaker sounds angry."
    assert q.label_target("sentiment", "negative") == "The speaker's sentiment is negative."
    with pytest.raises(UserError):
        q.label_target("asr", "x")
