"""Label extraction from free text and the offline binary judge's agreement with an LLM judge."""
import json
from pathlib import Path

import pytest

from emoreason.text.label_extraction import (READINGS, BinaryReading, binary_match, extract_labels,
                                             reference_label, strip_quotes)

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
# judged_emotion: written while building the extractor; judged_heldout: written afterwards and
# measured once before any fix (59/62 = 95.2% on first contact; see docs/evaluation.md).
FIXTURE_FILES = ["judged_emotion.jsonl", "judged_heldout.jsonl"]
# judge_reading_cases: hand-written by us (not from any judge log) for the reference-compatible
# reading: near-synonym classes, "no emotion" = neutral, hedges, implied sentiment, ordinary answers.
# judge_reading_heldout: a second batch written after the rules and measured once (41/42 then).
READING_CASES = FIXTURES / "judge_reading_cases.txt"
READING_HELDOUT = FIXTURES / "judge_reading_heldout.txt"
LITERAL = BinaryReading.literal()

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
    ("The speaker sounds more angry than sad.", "emotion", ["angry"], False),  # a comparison's second term
    ("She sounds angrier than sad.", "emotion", ["angry"], False),
    ("The speaker is more than happy to help.", "emotion", ["happy"], False),  # "more than X" asserts X
    ("The speaker sounds happier than usual.", "emotion", ["happy"], False),
    ("The wording is more positive than just saying the word happy. The speaker sounds happy.", "emotion",
     ["happy"], False),  # "the word happy" names the word: not negated by the comparison, not a verdict
    ("Using the term sad would be too strong: the speaker sounds calm.", "emotion", ["neutral"], False),
]


@pytest.mark.parametrize("text,task,primary,undecided", CASES)
def test_extract_labels(text, task, primary, undecided):
    got = extract_labels(text, task)
    assert got.primary == primary
    assert got.undecided is undecided


def test_a_label_named_as_a_word_is_not_negated():
    """A free answer of the full demo's transcript variant, flagged as disagreeing with its own
    label before: the comparison "more positive than ... the word happy" negated happy."""
    text = ("The speaker sounds happy. The way the speaker sounds happy is that the speaker says something "
            "like:\n\nOur neighbor bought a red bicycle. The wording is more positive than just saying the word happy.")
    got = extract_labels(text, "emotion")
    assert got.primary == ["happy"] and got.negated == []


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
    assert binary_match("The speaker is frustrated and angry.", "angry")[0] == 1  # one near-synonym class
    assert binary_match("The speaker is sad and angry.", "angry")[0] == 0  # two classes: not committed
    assert binary_match("The speaker is sad and angry.", "angry", reading=LITERAL)[0] == 1
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


def _reading_cases(path: Path = READING_CASES) -> list[tuple[str, str, str, int, str]]:
    """(kind, task, gold, expected, answer) from the ``kind | task | gold | expected | answer`` file."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            kind, task, gold, expected, answer = (f.strip() for f in line.split(" | ", 4))
            rows.append((kind, task, gold, int(expected), answer))
    return rows


@pytest.mark.parametrize("path,min_rows,min_agreement", [(READING_CASES, 120, 0.97), (READING_HELDOUT, 40, 0.95)])
def test_default_reading_agrees_with_our_hand_written_cases(path, min_rows, min_agreement):
    rows = _reading_cases(path)
    assert len(rows) >= min_rows and {r[0] for r in rows} == {"near_synonym", "no_emotion", "hedged", "implied", "ordinary"}
    agree = {name: 0 for name in READINGS}
    for kind, task, gold, expected, answer in rows:
        label = reference_label(gold, task)
        assert label is not None, gold
        for name, reading in READINGS.items():
            agree[name] += binary_match(answer, label, task, reading)[0] == expected
    assert agree["audiobench"] / len(rows) >= min_agreement  # 144/145 and 41/42 (docs/evaluation.md)
    assert agree["literal"] / len(rows) < 0.7  # the cases are built around what the literal reading misses


def test_ordinary_answers_read_the_same_in_both_readings():
    for kind, task, gold, expected, answer in _reading_cases():
        if kind == "ordinary":
            label = reference_label(gold, task)
            assert binary_match(answer, label, task)[0] == binary_match(answer, label, task, LITERAL)[0] == expected


@pytest.mark.parametrize("flag,answer,task,gold,default,without", [
    ("merge_near_synonyms", "The speaker sounds frustrated.", "emotion", "angry", 1, 0),
    ("merge_near_synonyms", "The speaker is excited.", "emotion", "happy", 1, 0),
    ("merge_near_synonyms", "The speaker is not angry, just frustrated.", "emotion", "angry", 0, 0),
    ("no_emotion_is_neutral", "I cannot detect any emotion in the voice.", "emotion", "neutral", 1, 0),
    ("no_emotion_is_neutral", "The speech is not emotional.", "emotion", "neutral", 1, 0),
    ("no_emotion_is_neutral", "I can't hear audio, so I cannot detect any emotion.", "emotion", "neutral", 0, 0),
    ("hedged_is_wrong", "The speaker could be sad or neutral.", "emotion", "sad", 0, 1),
    ("hedged_is_wrong", "It is unclear whether the speaker is sad.", "emotion", "sad", 0, 1),
    ("hedged_is_wrong", "It might be neutral or slightly sad.", "emotion", "neutral", 0, 1),
    ("hedged_is_wrong", "Hard to say, but the speaker sounds sad.", "emotion", "sad", 1, 1),
    ("hedged_is_wrong", "The speaker is clearly upset and raising their voice in anger.", "emotion", "angry", 1, 1),
    ("implied_sentiment", "The speaker expresses love for her son.", "sentiment", "positive", 1, 0),
    ("implied_sentiment", "The speaker is complaining about the service.", "sentiment", "negative", 1, 0),
    ("implied_sentiment", "The speaker has no complaints; the sentiment is neutral.", "sentiment", "neutral", 1, 1),
])
def test_each_reading_option(flag, answer, task, gold, default, without):
    assert binary_match(answer, gold, task)[0] == default
    assert binary_match(answer, gold, task, BinaryReading(**{flag: False}))[0] == without


def test_doubted_labels_are_reported_and_only_under_the_default_reading():
    got = extract_labels("It's hard to tell if the speaker is angry.")
    assert got.primary == [] and got.doubted == ["angry"] and got.undecided
    assert extract_labels("It's hard to tell if the speaker is angry.", reading=LITERAL).primary == ["angry"]
