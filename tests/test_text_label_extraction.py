"""Label extraction from free text and the offline binary judge's agreement with an LLM judge."""
import json
from pathlib import Path

import pytest

from emoreason.text.label_extraction import binary_match, extract_labels, reference_label, strip_quotes

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
# judged_emotion: written while building the extractor; judged_heldout: written afterwards and
# measured once before any fix (59/62 = 95.2% on first contact; see docs/evaluation.md).
FIXTURE_FILES = ["judged_emotion.jsonl", "judged_heldout.jsonl"]

CASES = [  # (text, task, expected primary, expected undecided)
    ("angry", "emotion", ["angry"], False),
    ("Neutral.", "emotion", ["neutral"], False),
    ("hap", "emotion", ["happy"], False),  # corpus code in a bare answer
    ("The speaker's tone sounds anger.", "emotion", ["angry"], False),
    ("The speaker's emotion is happiness.", "emotion", ["happy"], False),
    ("The speaker sounds joyful.", "emotion", ["happy"], False),
    ("The speaker is not angry, just a bit sad.", "emotion", ["sad"], False),
    ("The speaker isn't happy or excited; they sound frustrated.", "emotion", ["frustrated"], False),
    ("There is no sign of anger; the speaker sounds calm.", "emotion", ["neutral"], False),
    ("The speaker might be sad.", "emotion", ["sad"], False),  # hedge keeps the verdict
    ("It could be either anger or frustration.", "emotion", ["angry", "frustrated"], False),
    ("It could be happy, sad, or angry.", "emotion", ["happy", "sad", "angry"], True),
    ("The speaker sounds neutral, but with hints of sadness.", "emotion", ["neutral"], False),
    ('The speaker says "I am so happy" but sounds annoyed.', "emotion", ["angry"], False),
    ("The speaker says \u201cI am so happy\u201d and sounds sad.", "emotion", ["sad"], False),
    ("Although the words sound happy, the tone is sad.", "emotion", ["sad"], False),
    ("The speaker is frustrated and angry.", "emotion", ["frustrated", "angry"], False),
    ("The content of the speech is about work; the speaker sounds excited.", "emotion", ["excited"], False),
    ("The speaker feels down.", "emotion", ["sad"], False),
    ("The speaker does not sound angry at all, rather calm.", "emotion", ["neutral"], False),
    ("The speaker doesn't express any particular emotion.", "emotion", ["neutral"], False),
    ("The speaker is neither happy nor sad.", "emotion", ["neutral"], False),
    ("I cannot determine the emotion from the audio.", "emotion", [], True),
    ("Oh, I will never forget his face. I want to go home with you.", "emotion", [], True),  # transcript echo
    ("The speaker's tone is positive.", "emotion", [], False),  # polarity is not an emotion
    ("I'd say the person talking is pretty irritated.", "emotion", ["angry"], False),  # not a transcript echo
    ("The speaker uses a normal tone of voice.", "emotion", ["neutral"], False),
    ("The speaker is laughing.", "emotion", ["happy"], False),  # behaviour word when no label is named
    ("The speaker is excited, laughing as they speak.", "emotion", ["excited"], False),  # ... and only then
    ("The speaker sounds like they are about to cry.", "emotion", ["sad"], False),
    ("The speaker sounds happy.", "sentiment", ["positive"], False),
    ("The speaker sounds angry, so the sentiment is negative.", "sentiment", ["negative"], False),
    ("The sentiment is neither positive nor negative.", "sentiment", ["neutral"], False),
    ("The sentiment seems mostly neutral, with a slightly negative undertone.", "sentiment", ["neutral"], False),
]


@pytest.mark.parametrize("text,task,primary,undecided", CASES)
def test_extract_labels(text, task, primary, undecided):
    got = extract_labels(text, task)
    assert got.primary == primary
    assert got.undecided is undecided


def test_negated_and_secondary_are_reported():
    got = extract_labels("The speaker isn't angry. Later they sound a little sad.")
    assert "angry" in got.negated
    assert got.primary == ["sad"]  # a softened verdict is still the verdict when nothing else is asserted
    got = extract_labels("The speaker sounds neutral. They also seem slightly annoyed.")
    assert got.primary == ["neutral"] and got.secondary == ["angry"]


def test_strip_quotes_handles_straight_curly_and_single():
    text = 'He said "so happy", then \u201csad\u201d and \'very angry\' but it\'s fine'
    out = strip_quotes(text)
    assert "happy" not in out and "sad" not in out and "angry" not in out
    assert "it's fine" in out  # apostrophes are not quotes


@pytest.mark.parametrize("ref,label", [
    ("The speaker's tone sounds anger.", "angry"), ("neu", "neutral"), ("Joy", "happy"),
    ("The speaker's emotion seems disgust.", "disgusted"), ("The speaker's sentiment is negative.", "negative"),
])
def test_reference_label(ref, label):
    task = "sentiment" if "sentiment" in ref else "emotion"
    assert reference_label(ref, task) == label


def test_binary_match_rules():
    assert binary_match("The speaker is frustrated and angry.", "angry")[0] == 1
    assert binary_match("The speaker sounds neutral, with hints of sadness.", "sad")[0] == 0
    assert binary_match("The speaker is not sad at all.", "sad")[0] == 0
    assert binary_match("It could be happy, sad, or angry.", "sad")[0] == 0


@pytest.mark.parametrize("name,min_rows", [("judged_emotion.jsonl", 200), ("judged_heldout.jsonl", 60)])
def test_offline_judge_agrees_with_llm_judge_on_fixture(name, min_rows):
    rows = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]
    assert len(rows) >= min_rows
    agree = 0
    for r in rows:
        ref = reference_label(r["reference"], r["task"])
        assert ref is not None, r["reference"]
        agree += binary_match(r["prediction"], ref, r["task"])[0] == r["llm_rating"]
    assert agree / len(rows) >= 0.95
