"""Quotes held to the words two transcribers heard (``quote_check``): a second Whisper transcribes
each window too, transcript words it did not hear are marked ``confirmed: false``, and constrained
quotes may not hold them. Unit tests of the alignment and the quotable spans, then the engine with
the real packaged whisper-tiny.en (transcriber) and whisper-base (check) on espeak-ng speech."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoreason.errors import UserError
from emoreason.inference.quote_constraint import quotable_spans
from emoreason.text.transcript_check import confirm_words
from emoreason.weights import REGISTRY, is_installed

needs_weights = pytest.mark.skipif(
    not (is_installed(REGISTRY["whisper-tiny.en"]) and is_installed(REGISTRY["whisper-base"])),
    reason="packaged whisper-tiny.en / whisper-base not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
BASE = "packaged:whisper-base"


def _words(text: str, probability: float = 0.99) -> list[dict]:
    return [{"text": w, "probability": probability} for w in text.split()]


def test_words_the_other_transcript_has_in_order_are_confirmed():
    mine = _words("This is the worst, the only sight I've ever had.")
    theirs = _words("this is the worst service I have ever had")
    confirm_words(mine, theirs)
    assert [w["confirmed"] for w in mine] == [True, True, True, True, False, False, False, False, True, True]
    # case, punctuation and curly apostrophes do not matter; a lone punctuation token cannot be misheard
    mine = _words("Don’t GO - now")
    confirm_words(mine, _words("don't go"))
    assert [w["confirmed"] for w in mine] == [True, True, True, False]
    assert [w["confirmed"] for w in confirm_words(_words("hello there"), [])] == [False, False]


def test_unconfirmed_words_break_the_quotable_spans():
    words = confirm_words(_words("I hate this awful place so much"), _words("I hate this place so much"))
    assert quotable_spans("I hate this awful place so much", words, 0.0) == ["I hate this", "place so much"]
    # with the probability threshold too: either reason keeps a word out
    words[5]["probability"] = 0.2
    assert quotable_spans("I hate this awful place so much", words, 0.7) == ["I hate this", "place", "much"]
    # nothing held back: the text whole, as before the check existed
    assert quotable_spans("a b", confirm_words(_words("a b"), _words("a b")), 0.0) == ["a b"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["i", "am", "so", "happy", "sad", "the", "cat", "Dog", "it's"]), min_size=1, max_size=12),
       st.lists(st.sampled_from(["i", "am", "so", "happy", "sad", "the", "cat", "dog", "its"]), max_size=12))
def test_every_quotable_word_was_heard_by_both(mine_text, theirs_text):
    """Property: each span word is a word the other transcript has (so a quote, a run of span
    words, holds only words both transcribers heard), and the confirmed words keep their order."""
    from emoreason.text.quotes import quote_words

    mine = confirm_words(_words(" ".join(mine_text)), _words(" ".join(theirs_text)))
    heard = set(quote_words(" ".join(theirs_text)))
    spans = quotable_spans(" ".join(mine_text), mine, 0.0)
    for span in spans:
        assert all(w in heard for w in quote_words(span))
    assert sum(len(s.split()) for s in spans) == sum(w["confirmed"] for w in mine)


@pytest.mark.slow  # tiny random LLM over real whisper-tiny.en + whisper-base: ~30 s on 2 idle cores
@needs_weights
@needs_espeak
def test_engine_marks_words_and_keeps_unconfirmed_ones_out_of_quotes(tmp_path, monkeypatch):
    from emoreason.audio import load_audio
    from emoreason.inference import generation
    from emoreason.inference.engine import Engine
    from emoreason.testing.fixtures import speak
    from emoreason.testing.tiny import save_tiny_whisper_run

    said = "please open the window"
    clip = load_audio(speak(said, tmp_path / "said.wav"))
    engine = Engine.load(save_tiny_whisper_run(tmp_path / "run"), device="cpu", quote_check=BASE)
    assert engine.quote_check == BASE and engine.check_encoder is None  # base is not one of this model's encoders
    seen: list[list[list[str]]] = []
    real = generation._quotable

    def spy(plan, transcripts, words):
        out = real(plan, transcripts, words)
        seen.append(out)
        return out

    monkeypatch.setattr(generation, "_quotable", spy)
    [r] = engine.analyze([("said.wav", clip)], max_new_tokens=4)
    words = r.transcript.words
    assert words and all(w["confirmed"] is True for w in words), words  # both heard the clear sentence
    assert seen[-1] == [quotable_spans(r.transcript.text, words, 0.7)]
    # a checker that hears something else: nothing it missed may be quoted
    checker = engine._checker_asr()
    heard = checker.transcribe

    def mishear(waves, frames=None):
        out = heard(waves, frames)
        for t in out:
            t.words = [w for w in t.words if "window" not in w["text"].lower()]
        return out

    monkeypatch.setattr(checker, "transcribe", mishear)
    [r2] = engine.analyze([("said.wav", clip)], max_new_tokens=4)
    flags = {w["text"].strip(" .").lower(): w["confirmed"] for w in r2.transcript.words}
    assert flags["window"] is False and flags["open"] is True
    assert all("window" not in span.lower() for span in seen[-1][0])
    # free quotes and --transcript none ignore the check (no second transcription)
    calls: list[int] = []
    monkeypatch.setattr(checker, "transcribe", lambda waves, frames=None: calls.append(len(waves)) or heard(waves, frames))
    [free] = engine.analyze([("said.wav", clip)], max_new_tokens=4, quotes="free")
    assert calls == [] and all("confirmed" not in w for w in free.transcript.words)


@needs_weights
def test_quote_check_without_a_transcript_to_check_is_refused(tmp_path):
    from emoreason.inference.engine import Engine
    from emoreason.testing.tiny import save_tiny_run

    run = save_tiny_run(tmp_path / "run")  # a random tiny speech encoder: no Whisper decoder
    with pytest.raises(UserError, match="needs a Whisper transcript to check"):
        Engine.load(run, device="cpu", quote_check=BASE)
    with pytest.raises(UserError, match="is not a Whisper checkpoint with a decoder"):
        Engine.load(run, device="cpu", quote_check=str(tmp_path))


def test_cli_quote_check_with_server_is_refused(tmp_path, capsys):
    import soundfile as sf

    from emoreason.audio import SAMPLE_RATE
    from emoreason.cli import main
    from emoreason.testing.fixtures import tone

    wav = tmp_path / "x.wav"
    sf.write(wav, tone(1.0), SAMPLE_RATE)
    assert main(["analyze", "--server", "http://127.0.0.1:9", str(wav), "--quote-check", BASE]) == 1
    assert "`emoreason serve --quote-check" in capsys.readouterr().err


def test_eval_mode_records_the_check():
    from emoreason.eval.run import GenerationMode

    mode = GenerationMode.make("auto", None, "free", None, None, BASE)
    assert mode.quote_check == BASE and mode.fields()["quote_check"] == BASE
    assert GenerationMode.of_row(mode.fields()) == mode
    assert "--quote-check packaged:whisper-base" in mode.flags()
    assert GenerationMode.make("auto", "free", "free", None, None, BASE).quote_check is None  # nothing to check
    assert GenerationMode.of_row({"transcript_mode": "auto", "quotes_mode": "constrained"}).quote_check is None


@needs_weights
@needs_espeak
def test_engines_sharing_a_transcript_cache_transcribe_each_clip_once(tmp_path):
    """The demo's variants hear the same clips with the same frozen Whisper: a shared
    ``TranscriptCache`` makes the second engine reuse the first one's transcript (no decoding),
    the same text and words, and what a caller changes in a result does not reach the cache."""
    from emoreason.audio import load_audio
    from emoreason.inference.engine import Engine
    from emoreason.model.whisper_asr import TranscriptCache
    from emoreason.testing.fixtures import speak
    from emoreason.testing.tiny import save_tiny_whisper_run

    clip = load_audio(speak("please open the window", tmp_path / "said.wav"))
    run = save_tiny_whisper_run(tmp_path / "run")
    cache = TranscriptCache()
    [first] = Engine.load(run, device="cpu", transcript_cache=cache).analyze([("a.wav", clip)], max_new_tokens=2)
    assert (cache.hits, cache.misses) == (0, 1)
    first.transcript.words[0]["text"] = "changed"  # a caller's edit (confirm_words marks words in place)
    second = Engine.load(run, device="cpu", transcript_cache=cache)
    asr = second._whisper_asr()
    calls: list[int] = []
    generate = asr.model.generate
    asr.model.generate = lambda *a, **k: calls.append(1) or generate(*a, **k)
    [again] = second.analyze([("b.wav", clip)], max_new_tokens=2)
    assert calls == [] and (cache.hits, cache.misses) == (1, 1)
    assert again.transcript.text == first.transcript.text and again.transcript.words[0]["text"] != "changed"
    [other] = second.analyze([("c.wav", clip * 0.5)], max_new_tokens=2)  # other samples: transcribed
    assert calls == [1] and cache.misses == 2 and other.transcript.text
