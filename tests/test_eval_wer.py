"""WER normaliser in AudioBench's order (Whisper's English normaliser with its spelling map, digits
to words, brackets, jiwer transforms, hesitations) on hand-checked examples, and the corpus-WER
bootstrap."""
import pytest

from emoreason.eval.bootstrap import bootstrap_ratio_ci
from emoreason.eval.wer import corpus_wer, normalize, spelling_map, utterance_counts


@pytest.mark.parametrize("raw,expected", [
    # contractions: Whisper expands them before its symbol step removes apostrophes
    ("I can't believe it's over", "i can not believe it is over"),
    ("We're gonna win, aren't we?", "we are going to win are not we"),
    ("I'd like that", "i would like that"),
    ("She's been here", "she has been here"),
    # possessive 's is read as "is" by Whisper's rule, on both sides alike
    ("The organisation's plan", "the organization is plan"),
    # numbers: Whisper writes spelled numbers as digits, AudioBench writes 0-20 and tens back as words
    ("ten", "ten"),
    ("twenty five dollars", "$25"),
    ("$25", "$25"),
    ("one hundred and one", "101"),
    ("The 10 dogs; 4 cats.", "the ten dogs four cats"),
    # Whisper's number step reads the "o" of "o'clock" as zero: a quirk kept for AudioBench parity
    ("5 o'clock", "fifty clock"),
    # British -> American spelling map (english.json)
    ("The colour of my favourite centre", "the color of my favorite center"),
    ("We realised the programme was cancelled", "we realized the program was canceled"),
    # fillers: Whisper drops uh / um / hmm, AudioBench's last step er / ah / umm
    ("uh I um think er it's ah fine", "i think it is fine"),
    ("Umm, hmm, okay", "okay"),
    ("Um... er, ah", "empty"),
    # punctuation, brackets, titles, hyphens, spaces
    ("Mr. Smith went to St. Louis!", "mister smith went to saint louis"),
    ("Hello [laughter] there (noise) <unk> friend", "hello there friend"),
    ("well-known   FACT", "well known fact"),
    ("", "empty"),
])
def test_normalizer_hand_checked(raw, expected):
    assert normalize(raw) == expected


def test_spelling_map_is_whispers():
    mapping = spelling_map()
    assert len(mapping) == 1739  # openai-whisper's english.json, as packaged by whisper-normalizer
    assert mapping["colour"] == "color" and mapping["organisation"] == "organization"


def test_spelling_and_numbers_do_not_count_as_errors():
    refs = ["The colour is grey and I have twelve apples", "uh it's five o'clock"]
    hyps = ["the color is gray and i've 12 apples", "It is 5 o'clock."]
    w = corpus_wer(refs, hyps)
    # "the color is gray and i have twelve apples" (9 words) + "it is fifty clock" (4) on both sides
    assert w["wer"] == 0 and w["n_ref_words"] == 13


def test_corpus_wer_bootstrap_interval_is_of_the_pooled_ratio():
    refs = ["a b c d e f g h i j", "k l", "m n o p"]
    hyps = ["a b c d e f g h i j", "x y", "m n o q"]
    errors, words = utterance_counts(refs, hyps)
    assert (errors, words) == ([0, 2, 1], [10, 2, 4])
    ci = bootstrap_ratio_ci(errors, words, resamples=500, seed=1, scale=100)
    assert ci["value"] == pytest.approx(100 * 3 / 16) == pytest.approx(100 * corpus_wer(refs, hyps)["wer"])
    assert ci["low"] <= ci["value"] <= ci["high"]
    assert ci == bootstrap_ratio_ci(errors, words, resamples=500, seed=1, scale=100)  # seeded
