"""Offline SQA judge: rules on single cases, and its agreement with hand ratings on
tests/fixtures/eval/sqa_judged.jsonl (question / reference / answer triples and 0-5 ratings we
wrote ourselves following the open-ended rubric; see docs/evaluation.md)."""
import json
from pathlib import Path

import pytest

from emoreason.eval.judges.offline import OfflineJudge
from emoreason.eval.judges.sqa_offline import rate_sqa

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


@pytest.mark.parametrize("question,reference,answer,rating,reason", [
    ("Where are the keys?", "On the kitchen table.", "She left her keys on the kitchen table.", 5, "containment"),
    ("Where are the keys?", "On the kitchen table.", "In the kitchen.", 3, "containment"),
    ("Where are the keys?", "On the kitchen table.", "I'm sorry, I cannot tell from the audio.", 0, "refusal"),
    ("How many came?", "Twelve people came.", "12 people came.", 5, "containment"),
    ("How many came?", "Twelve people came.", "About twenty people.", 0, "number"),
    ("How long did it take?", "Three months.", "Three years.", 0, "number"),
    ("Is it open on Sundays?", "No, it is closed on Sundays.", "Yes, it is open.", 0, "yes-no"),
    ("Is it open on Sundays?", "No, it is closed on Sundays.", "No.", 4, "yes-no"),
    ("What is her job?", "She is a nurse at the city hospital.", "A nurse.", 4, "containment"),
    ("Where is it held?", "At the Marina Bay convention centre.", "The Marina Bay convention center.", 5, "containment"),
])
def test_rules(question, reference, answer, rating, reason):
    got = rate_sqa(reference, answer, question)
    assert (got.rating, got.reason) == (rating, reason)


def test_question_echo_is_not_an_answer():
    # every reference word is in the question: the answer must still contain them to score
    assert rate_sqa("The red car.", "What colour was the car?", "What colour was the car?").rating == 0


def test_offline_judge_dispatches_sqa():
    out = OfflineJudge().judge({"task": "sqa", "reference": "Red", "prediction": "The car was red.",
                                "question": "What color was the car?"})
    assert out["score"] == 5.0 and out["judge"]["reason"] == "containment"


def _agreement(path: Path) -> tuple[int, int, int]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    got = [rate_sqa(r["reference"], r["prediction"], r["question"]).rating for r in rows]
    exact = sum(g == r["rating"] for g, r in zip(got, rows))
    within1 = sum(abs(g - r["rating"]) <= 1 for g, r in zip(got, rows))
    return len(rows), exact, within1


def test_agreement_with_hand_ratings():
    n, exact, within1 = _agreement(FIXTURES / "sqa_judged.jsonl")
    # numbers reported in docs/evaluation.md; a drop means a rule changed
    assert (n, exact, within1) == (56, 41, 52)


def test_agreement_on_the_heldout_fixture():
    # 19 / 30 exact and 22 / 30 within one on first contact; these after three generic fixes
    # ("$15" = "15 dollars", "heavily" -> "heavy", "all" / "every" as stop words)
    assert _agreement(FIXTURES / "sqa_judged_heldout.jsonl") == (30, 22, 25)
