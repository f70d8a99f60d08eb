"""The engine's transcriber choice (``Engine.load(transcriber=...)``, ``--transcriber``): another
Whisper checkpoint writes the transcript, with its own encoder or sharing the model's encoder of
that checkpoint (the emotion encoder's frames then serve its decoder); transcripts record the
source; anything that is not a Whisper checkpoint with a decoder is one clear error. Real packaged
weights (whisper-tiny.en, whisper-base) and espeak-ng speech; skipped where they are missing."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emoreason.errors import UserError
from emoreason.weights import REGISTRY, is_installed

needs_weights = pytest.mark.skipif(
    not (is_installed(REGISTRY["whisper-tiny.en"]) and is_installed(REGISTRY["whisper-base"])),
    reason="packaged whisper-tiny.en / whisper-base not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
BASE = "packaged:whisper-base"
SAID = "please open the window"


def _plain(text: str) -> list[str]:
    return [re.sub(r"[^a-z']", "", w.lower()) for w in text.split()]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    from emoreason.audio import load_audio
    from emoreason.testing.fixtures import speak

    return load_audio(speak(SAID, tmp_path_factory.mktemp("said") / "said.wav"))


def _run(directory: Path, emotion: str | None) -> Path:
    """A run over the packaged whisper-tiny.en speech encoder (30 s windows) under the tiny random
    LLM; ``emotion``: the path of a frozen pretrained Whisper emotion encoder, or None for none."""
    from emoreason.testing.tiny import save_tiny_whisper_run

    return save_tiny_whisper_run(directory, emotion_encoder=emotion)


def _conv1_calls(encoder: torch.nn.Module, calls: list[int]) -> torch.utils.hooks.RemovableHandle:
    return encoder.encoder.conv1.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))


@pytest.mark.slow  # two models over real whisper-tiny.en + whisper-base weights: ~40 s on 2 idle cores
@needs_weights
@needs_espeak
def test_whisper_base_transcribes_with_its_own_or_the_shared_encoder(tmp_path, clip):
    """Without an emotion encoder of that checkpoint, base's own encoder is loaded and runs once per
    batch; with the model's emotion encoder being whisper-base, that encoder is shared and runs
    once per batch for the LLM and the decoder together. Same words either way (same frames)."""
    from emoreason.inference.engine import Engine

    clips = [("a.wav", clip), ("b.wav", clip * 0.5)]
    own = Engine.load(_run(tmp_path / "own", None), device="cpu", transcriber=BASE)
    assert own.whisper_encoder is None and own.has_whisper and own.whisper_source == f"whisper:{BASE}"
    results = own.analyze(clips, max_new_tokens=4, batch_size=2)
    calls: list[int] = []
    hook = _conv1_calls(own._whisper.encoder, calls)
    try:
        own.analyze(clips, max_new_tokens=4, batch_size=2)
    finally:
        hook.remove()
    assert calls == [2]  # base's own encoder: one pass over the two windows
    for r in results:
        assert r.transcript.source == f"whisper:{BASE}" and _plain(r.transcript.text) == SAID.split(), r.transcript
        assert [_plain(w["text"])[0] for w in r.transcript.words] == SAID.split()
        assert all(0.0 <= w["probability"] <= 1.0 for w in r.transcript.words)
        assert all(q.grounded for q in r.quotes)
    assert own.analyze(clips[:1], max_new_tokens=4, transcript="model")[0].transcript.source == "model-asr"

    shared = Engine.load(_run(tmp_path / "shared", BASE), device="cpu", transcriber=BASE)
    assert shared.whisper_encoder == "emotion"
    calls.clear()
    hook = _conv1_calls(shared.model.emotion_encoder, calls)
    try:
        again = shared.analyze(clips, max_new_tokens=4, batch_size=2)
    finally:
        hook.remove()
    assert calls == [2]  # the emotion encoder once: its frames serve the LLM and base's decoder
    assert shared._whisper.encoder is shared.model.emotion_encoder
    assert [r.transcript.text for r in again] == [r.transcript.text for r in results]
    # the default is unchanged: the speech encoder's own decoder (tiny.en)
    default = Engine.load(tmp_path / "shared", device="cpu")
    assert default.whisper_encoder == "speech" and default.whisper_source == "whisper"


@needs_weights
def test_a_path_that_is_not_a_whisper_decoder_is_one_clear_error(tmp_path):
    from safetensors.torch import save_file

    from emoreason.model.whisper_asr import resolve_transcriber
    from emoreason.weights.resolve import resolve_packaged

    assert resolve_transcriber(BASE) == resolve_packaged("whisper-base")
    encoder_only = tmp_path / "encoder-only"
    encoder_only.mkdir()
    base = resolve_packaged("whisper-base")
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(base / name, encoder_only / name)
    save_file({"model.encoder.conv1.weight": torch.zeros(2, 2)}, str(encoder_only / "model.safetensors"))
    llm_dir = tmp_path / "llm"
    llm_dir.mkdir()
    (llm_dir / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "empty").mkdir()
    for spec in (str(encoder_only), str(llm_dir), str(tmp_path / "empty"), "nobody/no-such-whisper"):
        with pytest.raises(UserError, match="is not a Whisper checkpoint with a decoder") as err:
            resolve_transcriber(spec)
        assert "\n" not in str(err.value)
        if spec.startswith("nobody/"):  # the hub's reason is named, not swallowed
            assert "the hub fetch failed (" in str(err.value)


def test_cli_refuses_a_bad_transcriber_in_one_line(tmp_path, capsys):
    import soundfile as sf

    from emoreason.audio import SAMPLE_RATE
    from emoreason.cli import main
    from emoreason.testing.fixtures import tone
    from emoreason.testing.tiny import save_tiny_run

    run = save_tiny_run(tmp_path / "run")
    wav = tmp_path / "x.wav"
    sf.write(wav, tone(1.0), SAMPLE_RATE)
    assert main(["analyze", "--model", str(run), str(wav), "--transcriber", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "is not a Whisper checkpoint with a decoder" in err and len(err.splitlines()) == 1, err
    assert main(["analyze", "--server", "http://127.0.0.1:9", str(wav), "--transcriber", BASE]) == 1
    assert "`emoreason serve --transcriber" in capsys.readouterr().err
