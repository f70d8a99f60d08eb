"""``emoreason.text.agreement``: forced answers keep only the sentences that agree with their label."""
from hypothesis import given, settings
from hypothesis import strategies as st

from emoreason.inference.generation import consistency
from emoreason.text.agreement import agreeing_explanation, loops, sentences


def _trim(text: str, label: str = "sad") -> tuple[str, int]:
    return agreeing_explanation(text, lambda t: consistency(label, t, "emotion"))


def test_sentences_split_and_join_back():
    text = "The speaker sounds sad. Why? Slow!\nLow pitch"
    assert sentences(text) == ["The speaker sounds sad.", " Why?", " Slow!", "\n", "Low pitch"]
    assert "".join(sentences(text)) == text


def test_contradictions_and_loops_are_cut_agreement_is_kept():
    # measured failure shapes of a 22-step model (docs/evaluation.md)
    assert _trim("The speaker sounds sad. The speaker's emotional state is sad.\n"
                 "The speaker's emotional state is not sad.\nThe speaker's emotional state is not sad.") == (
        "The speaker sounds sad. The speaker's emotional state is sad.", 3)
    assert _trim("The speaker sounds neutral. The speaker is not expressing a strong emotional state, but they are "
                 "not neutral either. The speaker is not expressing a strong positive or negative emotion.",
                 "neutral") == ("The speaker sounds neutral.", 2)
    assert _trim("The speaker sounds sad. The voice is slow and low.") == (
        "The speaker sounds sad. The voice is slow and low.", 0)
    assert _trim("The speaker sounds sad. The speaker sounds happy and cheerful. Low pitch.") == (
        "The speaker sounds sad.", 2)
    assert _trim("The speaker sounds sad. It is slow. It is slow. It is slow.") == ("The speaker sounds sad. It is slow.", 2)
    assert _trim("") == ("", 0)


WORDS = st.sampled_from(["The", "speaker", "sounds", "is", "not", "very", "sad", "happy", "angry", "neutral",
                         "slow", "voice", "low", "pitch", "and", "but", '"I', 'am', 'fine"', ",", "."])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(WORDS, min_size=1, max_size=8).map(" ".join), max_size=6),
       st.sampled_from(["neutral", "happy", "sad", "angry"]))
def test_a_trimmed_forced_answer_never_disagrees(tail, label):
    text = f"The speaker sounds {label}. " + " ".join(s + "." for s in tail)
    kept, dropped = _trim(text, label)
    assert text.startswith(kept) and dropped >= 0
    assert consistency(label, kept, "emotion") is True


def test_a_sentence_that_loops_is_cut():
    # a full-demo detailed-dual's forced answer to a 5 s clip (twenty-second session), shortened
    looped = ('The speaker sounds neutral. The wording is in line with the speaker\'s emotional state. For example, '
              '"The city,"), "The city,"], "The city,"], "The city,"], "The city,"], "The city')
    assert _trim(looped, "neutral") == (
        "The speaker sounds neutral. The wording is in line with the speaker's emotional state.", 1)
    assert loops('the words "said" and "said" and "said" and "said"')
    assert loops("so slow slow slow slow") and not loops("so slow slow slow")  # one word: four copies
    assert not loops('The voice is slow and low, "I am fine, I am fine" she says.')  # two copies are a quote
    assert _trim("The speaker sounds sad. It is slow. It is slow. It is slow.") == ("The speaker sounds sad. It is slow.", 2)
