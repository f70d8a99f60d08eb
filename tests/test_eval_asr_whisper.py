"""The cascade's ASR (emoreason.eval.asr_whisper): 30 s windows and joining, the generation config
derived for the packaged conversions, and transformers greedy decoding of the packaged tiny.en
giving ctranslate2's transcripts on espeak-ng speech (skipped where those are not installed)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from emoreason.audio import WINDOW_SAMPLES
from emoreason.eval.asr_whisper import split_windows, transcribe_in_windows
from emoreason.weights import REGISTRY, is_installed

needs = {n: pytest.mark.skipif(not is_installed(w), reason=f"{w.pip_command} not installed") for n, w in REGISTRY.items()}
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
SENTENCES = ["I hate this, stop doing that right now", "Thank you so much, this is wonderful",
             "The weather report says it will rain tomorrow afternoon."]


@pytest.mark.parametrize("n,sizes", [
    (0, [0]), (16_000, [16_000]), (WINDOW_SAMPLES, [WINDOW_SAMPLES]),
    (WINDOW_SAMPLES + 16_000, [248_000, 248_000]),  # 31 s: two equal halves, not 30 s + a 1 s scrap
    (2 * WINDOW_SAMPLES + 1, [320_001, 320_001, 319_999]),  # the last piece takes the rounding
])
def test_split_windows(n, sizes):
    wave = np.arange(n, dtype=np.float32)
    pieces = split_windows(wave)
    assert [len(p) for p in pieces] == sizes
    assert all(len(p) <= WINDOW_SAMPLES for p in pieces)
    np.testing.assert_array_equal(np.concatenate(pieces), wave)


def test_windows_of_all_clips_decode_together_and_join_per_clip():
    calls = []

    def decode(windows):
        calls.append([len(w) for w in windows])
        return [f"w{i}" if i != 2 else "" for i in range(len(windows))]  # window 2 hears nothing

    waves = [np.zeros(16_000), np.zeros(WINDOW_SAMPLES + 16_000), np.zeros(8_000)]
    assert transcribe_in_windows(waves, decode) == ["w0", "w1", "w3"]
    assert calls == [[16_000, 248_000, 248_000, 8_000]]  # one call: windows of different clips share batches


@needs["whisper-tiny.en"]
@needs["whisper-base"]
def test_packaged_generation_config():
    from transformers import WhisperConfig

    from emoreason.eval.asr_whisper import packaged_generation_config
    from emoreason.weights import resolve_packaged

    tiny = resolve_packaged("whisper-tiny.en")
    gen = packaged_generation_config(tiny, WhisperConfig.from_pretrained(tiny))
    # tiny.en lists language tokens too, but is English-only (vocabulary of 51864)
    assert gen.is_multilingual is False and gen.no_timestamps_token_id == 50362
    assert gen.decoder_start_token_id == 50257 and gen.eos_token_id == 50256
    base = resolve_packaged("whisper-base")
    gen = packaged_generation_config(base, WhisperConfig.from_pretrained(base))
    assert gen.is_multilingual is True and gen.lang_to_id["<|en|>"] == 50259
    assert gen.task_to_id == {"transcribe": 50359, "translate": 50358} and gen.no_timestamps_token_id == 50363
    assert len(gen.lang_to_id) == 99


@pytest.mark.slow
@needs_espeak
@needs["whisper-tiny.en"]
def test_transformers_tiny_en_transcribes_like_ctranslate2(tmp_path):
    """Batched transformers greedy decoding == ctranslate2 greedy decoding of the same weights."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor

    from emoreason.audio import load_audio
    from emoreason.eval.asr_whisper import WhisperASR
    from emoreason.weights import ct2_model_dir

    waves = []
    for i, text in enumerate(SENTENCES):
        subprocess.run(["espeak-ng", "-w", str(tmp_path / f"{i}.wav"), text], check=True, capture_output=True)
        waves.append(load_audio(tmp_path / f"{i}.wav"))
    ours = WhisperASR("packaged:whisper-tiny.en", device="cpu", batch_size=2).transcribe(waves)

    ct2_dir = ct2_model_dir("whisper-tiny.en")
    model = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    feats = WhisperFeatureExtractor(feature_size=80)(waves, sampling_rate=16000, return_tensors="np").input_features
    out = model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)),
                         [["<|startoftranscript|>", "<|notimestamps|>"]] * len(waves), beam_size=1)
    tok = Tokenizer.from_file(str(ct2_dir / "tokenizer.json"))
    theirs = [tok.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in out]
    assert ours == theirs
    assert "hate" in ours[0].lower() and "wonderful" in ours[1].lower()
