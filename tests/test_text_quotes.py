"""Quote extraction, offline groundedness and relevance."""
import pytest

from emoreason.text.quotes import (
    extract_quotes, ground_quote, groundedness, has_content_word, normalize_quote, quote_words, relevance,
)


@pytest.mark.parametrize("text,quotes", [
    ('The phrase "You\'ve got to tell me" shows urgency.', ["You've got to tell me"]),
    ("He says \u201cI hate this\u201d and \u2018leave now\u2019.", ["I hate this", "leave now"]),
    ("The words 'not again' are repeated.", ["not again"]),
    ("The speaker's tone isn't happy; the speakers' voices don't rise.", []),  # apostrophes only
    ("She says 'It's over' quietly.", ["It's over"]),
    ('"Yes!" and "Yes!" again', ["Yes!"]),
    ("No quotes here.", []),
])
def test_extract_quotes(text, quotes):
    assert extract_quotes(text) == quotes


def test_ground_quote_levels():
    transcript = "Oh, I will never forget his face. Ooh-rah [LAUGHTER]."
    assert ground_quote("I will never forget his face", transcript) == 2  # direct
    assert ground_quote("I'll never forget his face", transcript) == 1  # faithful paraphrase
    assert ground_quote("I love this party", transcript) == 0  # not found
    assert groundedness(["I will never forget his face", "I love this party"], transcript) == 1.0
    assert groundedness([], transcript) == 0.0


def test_numbers_said_in_words_quoted_in_digits():
    """Whisper writes "12" for a spoken "twelve": quoting that is quoting what was said."""
    said = "The report has twelve pages and two charts."
    assert ground_quote("The report has 12 pages", said) == 2
    assert ground_quote("has twelve pages", "The report has 12 pages.") == 2
    assert ground_quote("page 40", "I told him the answer was on page forty.") == 2
    assert ground_quote("page 14", "I told him the answer was on page forty.") != 2  # a different number
    assert ground_quote("The report has 13 pages", said) != 2


def test_british_and_american_spellings_are_one_word():
    """Whisper writes "neighbor" for a spoken "neighbour" (the demo's flite speakers): a direct quote."""
    assert ground_quote("Our neighbor", "Our neighbour bought a red bicycle.") == 2
    assert ground_quote("the colour of it", "I loved the color of it.") == 2
    assert ground_quote("Our neighbor", "Our friend bought a red bicycle.") != 2


def test_content_words():
    assert not has_content_word("I will") and not has_content_word("The .") and not has_content_word("")
    assert has_content_word("I hate") and has_content_word("no") and has_content_word("Ich hasse das")


def test_relevance_levels():
    assert relevance(["I hate this"], "angry") == 2  # cue word of the label
    assert relevance(["I am so furious"], "angry") == 2  # synonym of the label
    assert relevance(["this is so unfair!"], "angry") == 1  # generic affective cue, same polarity side
    assert relevance(["the meeting is at noon"], "angry") == 0


def test_quote_words_are_the_shared_normalisation():
    assert quote_words("It’s OVER, isn't it?!") == ["it's", "over", "isn't", "it"]
    assert normalize_quote("  Stop -- touching my_stuff!  ") == "stop touching my stuff"
    # letters of any script survive (a non-Latin quote must not normalise to nothing)
    assert normalize_quote("Un café crème") == "un café crème" and quote_words("你好吗？") == ["你好吗"]
    assert ground_quote("café crème", "Un café crème, s'il vous plaît.") == 2
