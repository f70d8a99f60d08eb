"""Transcripts in the speech's own language (``transcript_language``): a multilingual Whisper is
told the language, an English-only one is refused for any other before the model loads, and eval
rows and the demo record which language and transcriber they used."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from emoreason.errors import UserError
from emoreason.weights import REGISTRY, is_installed

needs_weights = pytest.mark.skipif(
    not (is_installed(REGISTRY["whisper-tiny.en"]) and is_installed(REGISTRY["whisper-base"])),
    reason="packaged whisper-tiny.en / whisper-base not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
BASE = "packaged:whisper-base"


@needs_weights
def test_languages_a_checkpoint_can_transcribe():
    from emoreason.model.whisper_asr import check_language, is_multilingual, resolve_transcriber

    tiny, base = resolve_transcriber("packaged:whisper-tiny.en"), resolve_transcriber(BASE)
    assert is_multilingual(base) and not is_multilingual(tiny)
    check_language(tiny, "en", "tiny")  # English is always fine
    check_language(base, "de", "base")
    with pytest.raises(UserError, match="transcribes English only.*packaged:whisper-base"):
        check_language(tiny, "de", "transcriber 'x'")
    with pytest.raises(UserError, match="unknown transcript language 'xx'"):
        check_language(base, "xx", "base")


@pytest.mark.slow  # a tiny random LLM over the real packaged Whispers: ~40 s on 2 idle cores
@needs_weights
@needs_espeak
def test_german_speech_is_transcribed_in_german(tmp_path):
    from emoreason.audio import load_audio
    from emoreason.inference.engine import Engine
    from emoreason.testing.tiny import save_tiny_whisper_run

    wav = tmp_path / "de.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-w", str(wav), "Ich habe das Buch auf den Tisch gelegt."],
                   check=True, capture_output=True)
    clip = load_audio(wav)
    run = save_tiny_whisper_run(tmp_path / "run")  # speech encoder: tiny.en, English only
    with pytest.raises(UserError, match="speech encoder's decoder transcribes English only"):
        Engine.load(run, device="cpu", transcript_language="de")
    with pytest.raises(UserError, match="quote check 'packaged:whisper-tiny.en' transcribes English only"):
        Engine.load(run, device="cpu", transcriber=BASE, quote_check="packaged:whisper-tiny.en", transcript_language="de")
    german = Engine.load(run, device="cpu", transcriber=BASE, transcript_language="de")
    [r] = german.analyze([("de.wav", clip)], max_new_tokens=2)
    words = r.transcript.text.lower()
    assert "tisch" in words and ("buch" in words or "habe" in words), r.transcript.text
    english = Engine.load(run, device="cpu", transcriber=BASE)  # the default: English, whatever was said
    [e] = english.analyze([("de.wav", clip)], max_new_tokens=2)
    assert "tisch" not in e.transcript.text.lower(), e.transcript.text


def test_eval_mode_records_the_language():
    from emoreason.eval.run import GenerationMode

    mode = GenerationMode.make("auto", None, "free", None, BASE, None, "de")
    assert mode.fields()["transcript_language"] == "de" and GenerationMode.of_row(mode.fields()) == mode
    assert "--transcript-language de" in mode.flags()
    assert GenerationMode.make("none", None, "free", None, None, None, "de").transcript_language == "en"  # no Whisper
    assert GenerationMode.of_row({"transcript_mode": "auto", "quotes_mode": "constrained"}).transcript_language == "en"


def test_demo_picks_a_multilingual_transcriber_for_another_language(tmp_path):
    from emoreason.demo.pipeline import OTHER_LANGUAGE_TRANSCRIBER, test_language, transcription_for

    test = tmp_path / "test.jsonl"
    rows = [{"task": "emotion", "meta": {"language": "de"}}, {"task": "asr", "meta": {}},
            {"task": "emotion", "meta": {"language": "de"}}]
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert test_language(test) == "de"
    assert transcription_for(tmp_path, "de") == {"transcriber": OTHER_LANGUAGE_TRANSCRIBER, "quote_check": None,
                                                 "transcript_language": "de"}
    rows.append({"task": "emotion", "meta": {}})  # mixed: one engine transcribes one language
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert test_language(test) == "en"


def test_cli_transcript_language_with_server_is_refused(tmp_path, capsys):
    import soundfile as sf

    from emoreason.audio import SAMPLE_RATE
    from emoreason.cli import main
    from emoreason.testing.fixtures import tone

    wav = tmp_path / "x.wav"
    sf.write(wav, tone(1.0), SAMPLE_RATE)
    assert main(["analyze", "--server", "http://127.0.0.1:9", str(wav), "--transcript-language", "de"]) == 1
    assert "`emoreason serve --transcript-language" in capsys.readouterr().err


@needs_weights
def test_eval_without_a_whisper_transcript_ignores_the_language(tmp_path):
    """``--transcript none``: no Whisper transcribes, so the language does not matter and the
    English-only speech encoder is not refused (the rows record ``en``)."""
    from emoreason.eval.run import model_predictions
    from emoreason.testing.fixtures import make_manifest
    from emoreason.testing.tiny import save_tiny_whisper_run

    manifest = make_manifest(tmp_path / "m", rows=[("r1", "hello there", "happy", "emotion", "s1")], audio=False)
    out = model_predictions(save_tiny_whisper_run(tmp_path / "run"), manifest, tmp_path / "preds.jsonl",
                            max_new_tokens=2, transcript="none", transcript_language="de")
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["transcript_language"] == "en" and row["transcript_mode"] == "none"
