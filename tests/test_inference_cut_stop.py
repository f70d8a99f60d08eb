"""``generation.CutSentenceStop``: a forced explanation stops at the first sentence that would be cut,
and the printed (trimmed) explanation is the one the full generation gives."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emoreason.inference.generation import CutSentenceStop, consistency, join_answer
from emoreason.text.agreement import agreeing_explanation

PROMPT_COLUMNS = 5  # input_ids in the criterion may hold prompt columns before the generated tokens


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from emoreason.weights import llm_dir

    return AutoTokenizer.from_pretrained(llm_dir("smollm2-135m-instruct"))


def _trim(text: str, label: str) -> tuple[str, int]:
    return agreeing_explanation(text, lambda t: consistency(label, t, "emotion"))


def _generate(tokenizer, prefix: str, continuation: str, label: str | None) -> tuple[str, bool]:
    """Feed ``continuation``'s tokens one at a time, as ``generate`` would; (the answer up to the stop, stopped?)."""
    ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    stop = CutSentenceStop(tokenizer, [prefix], [label], "emotion")
    seq = torch.zeros((1, PROMPT_COLUMNS), dtype=torch.long)
    for token in ids:
        seq = torch.cat([seq, torch.tensor([[token]])], dim=1)
        if bool(stop(seq, None)[0]):
            return join_answer(prefix, tokenizer.decode(seq[0, PROMPT_COLUMNS:]).strip()), True
    return join_answer(prefix, tokenizer.decode(ids).strip()), False


def test_a_loop_stops_after_the_repeated_sentence(tokenizer):
    prefix = "The speaker sounds sad."
    continuation = " The voice is slow. The voice is slow. The voice is slow. The voice is slow. The voice is slow."
    answer, stopped = _generate(tokenizer, prefix, continuation, "sad")
    assert stopped and len(answer) < len(join_answer(prefix, continuation.strip()))
    assert _trim(answer, "sad")[0] == "The speaker sounds sad. The voice is slow."


def test_an_agreeing_answer_runs_to_its_end(tokenizer):
    continuation = ' The voice is slow and low. The words "I miss him" are sad too. It trails off.'
    answer, stopped = _generate(tokenizer, "The speaker sounds sad.", continuation, "sad")
    assert not stopped and answer.endswith("It trails off.")


def test_a_row_without_a_label_never_stops(tokenizer):
    _, stopped = _generate(tokenizer, "", " It is slow. It is slow. It is slow.", None)
    assert not stopped


WORDS = st.sampled_from(["The", "speaker", "sounds", "is", "not", "very", "sad", "happy", "angry", "neutral",
                         "slow", "voice", "low", "pitch", "and", "but", '"I', "am", 'fine"', ",", "4.5", "page"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(WORDS, min_size=1, max_size=7).map(" ".join), max_size=6),
       st.sampled_from(["neutral", "happy", "sad", "angry"]), st.sampled_from([".", "!", "?", ".\n", "..."]))
def test_the_stopped_answer_trims_to_the_full_answers_trim(tokenizer, tail, label, end):
    prefix = f"The speaker sounds {label}."
    continuation = "".join(" " + s + end for s in tail)
    answer, stopped = _generate(tokenizer, prefix, continuation, label)
    full = join_answer(prefix, tokenizer.decode(tokenizer(continuation, add_special_tokens=False)["input_ids"]).strip())
    kept, cut = _trim(full, label)
    assert _trim(answer, label)[0] == kept
    if stopped:  # it stops only where the full answer is cut
        assert cut > 0


def test_a_loop_inside_a_sentence_stops_the_row(tokenizer):
    """A loop that never reaches an end of sentence (the measured shape) stops after its third copy,
    and the printed answer is the one the whole budget's text trims to."""
    prefix = "The speaker sounds neutral."
    continuation = ' The wording is calm. For example, ' + ', '.join(['"The city,"]'] * 20)
    answer, stopped = _generate(tokenizer, prefix, continuation, "neutral")
    full = join_answer(prefix, continuation.strip())
    assert stopped and len(answer) < len(full) / 2
    assert _trim(answer, "neutral") == _trim(full, "neutral") == ("The speaker sounds neutral. The wording is calm.", 1)
