"""How accurate are the Whisper transcriber's word timings? espeak-ng words with known boundaries.

    .venv/bin/python benchmarks/whisper_word_timing.py            # packaged:whisper-tiny.en, 8 phrases
    .venv/bin/python benchmarks/whisper_word_timing.py --voices en-us,en-gb-scotland
    .venv/bin/python benchmarks/whisper_word_timing.py --window 30   # every clip in a 30 s window

Each phrase is spoken word by word with espeak-ng (one file per word), and the words are joined
with known silences (0.25 .. 0.6 s, varied), so every word's true span is where its own file's
samples are above a low amplitude threshold. The clip goes through the same path as the engine
(``WhisperDecoderASR``: the 30 s window's encoder frames, greedy decoding, cross-attention DTW).
Phrases whose words Whisper transcribes one-to-one are compared word by word: absolute error of
each start and end, and whether the predicted word's middle lies inside the true span.

Not a test (tests/test_inference_whisper.py checks a bound on one phrase); prints a summary.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

PHRASES = [
    "please open the window", "the garden is green today", "seven yellow birds", "call me tomorrow morning",
    "my brother plays football", "the water is very cold", "turn left at the station", "she bought fresh bread",
]


def spoken_words(words: list[str], voice: str, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The words spoken one by one and joined with varied silences -> (wave (T,), true spans in s)."""
    from emoreason.audio import SAMPLE_RATE, load_audio

    parts: list[np.ndarray] = [np.zeros(int(0.3 * SAMPLE_RATE), np.float32)]
    spans = []
    offset = parts[0].size
    for i, word in enumerate(words):
        path = tmp / f"w{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), word], check=True, capture_output=True)
        wave = load_audio(path)
        loud = np.flatnonzero(np.abs(wave) > 0.02 * np.abs(wave).max())
        spans.append(((offset + loud[0]) / SAMPLE_RATE, (offset + loud[-1]) / SAMPLE_RATE))
        gap = np.zeros(int(rng.uniform(0.25, 0.6) * SAMPLE_RATE), np.float32)
        parts += [wave, gap]
        offset += wave.size + gap.size
    return np.concatenate(parts), spans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--whisper", default="packaged:whisper-tiny.en")
    ap.add_argument("--voices", default="en-us,en-gb")
    ap.add_argument("--window", choices=("auto", "30"), default="auto",
                    help="auto: the transcriber's own choice (15 s for clips up to 8 s); 30: always 30 s")
    args = ap.parse_args()
    import torch

    from emoreason.config import EncoderConfig
    from emoreason.model.builder import build_encoder
    from emoreason.model.whisper_asr import WhisperDecoderASR, encoder_decoder_dir

    encoder, _ = build_encoder(EncoderConfig(type="whisper", path=args.whisper), "speech_encoder")
    encoder.eval()
    asr = WhisperDecoderASR.load(encoder_decoder_dir("whisper", args.whisper, "pretrained", False), encoder,
                                 short_windows=args.window == "auto")
    rng = np.random.default_rng(0)
    start_err, end_err, inside, matched, total = [], [], [], 0, 0
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for voice in args.voices.split(","):
            for phrase in PHRASES:
                words = phrase.split()
                wave, spans = spoken_words(words, voice, rng, Path(tmp))
                [found] = asr.transcribe([wave])
                total += 1
                got = [re.sub(r"[^a-z']", "", w["text"].lower()) for w in found.words]
                if got != words:
                    print(f"{voice:8s} {phrase!r}: heard {found.text!r} (not compared)")
                    continue
                matched += 1
                for w, (s, e) in zip(found.words, spans):
                    start_err.append(abs(w["start"] - s))
                    end_err.append(abs(w["end"] - e))
                    inside.append(s <= (w["start"] + w["end"]) / 2 <= e)
    n = len(start_err)
    print(f"{matched}/{total} phrases transcribed word for word; {n} words compared")
    if n:
        print(f"start error: median {np.median(start_err):.3f} s, 90th pct {np.percentile(start_err, 90):.3f} s, "
              f"max {max(start_err):.3f} s")
        print(f"end error:   median {np.median(end_err):.3f} s, 90th pct {np.percentile(end_err, 90):.3f} s, "
              f"max {max(end_err):.3f} s")
        print(f"word middle inside the true span: {sum(inside)}/{n}")


if __name__ == "__main__":
    main()
