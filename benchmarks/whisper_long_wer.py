"""Per-window WER of the engine's Whisper transcript source on long espeak-ng clips of known text,
against Whisper run directly through transformers (the packaged tiny.en) on the same windows.

    PYTHONPATH=. python benchmarks/whisper_long_wer.py OUT_DIR [--clips 0,1,2,3] [--cut pause|fixed] [--window 30]

Clips: 16 sentences written by us, in a seeded order, spoken by espeak-ng (en default voice) at
four speeds with pauses (clip 0: 67.6 s / 192 words, 1: 81.1 s / 221, 2: 95.2 s / 273,
3: 65.1 s / 169), cut into the engine's windows (``split_windows``: ``--window`` seconds, 30 by
default, ended at pauses, or every 30 s with ``--cut fixed``). A window's reference is
the words whose midpoint (by character share of their sentence's span) lies inside it, so words
cut at a window boundary count against one side. The speech encoder is built from the packaged
checkpoint (frozen, as in the demo model) without the LLM; frames are encoded by the Whisper
path itself (``frames=None``, what dynamic-length models use). Prints one line per window and
the pooled WER of both; writes OUT_DIR/wer.json (and the clips, reused by a rerun).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

SENTENCES = [
    "The train to the airport leaves at half past nine.",
    "I waited all evening, but nobody came to see me.",
    "We won the match, I can hardly believe how great this feels!",
    "I told you three times already, and you still did not fix it!",
    "My sister planted tomatoes and beans behind the old garage.",
    "Please bring the blue folder to the meeting on Thursday.",
    "The river was cold, so we walked along the bank instead.",
    "Nobody answered the phone when the doctor called back.",
    "He painted the kitchen yellow and forgot to open the windows.",
    "The library closes early on public holidays.",
    "Our neighbours adopted a small grey cat last winter.",
    "She finished the report before lunch and went for a run.",
    "The bus was late again, and everyone was soaked by the rain.",
    "I found my grandfather's watch in a box under the stairs.",
    "They moved the concert to the park because the hall was flooded.",
    "Turn left at the bakery and the station is straight ahead.",
]
CLIPS = {0: (70.0, 175, 0.5), 1: (85.0, 160, 0.3), 2: (95.0, 190, 0.7), 3: (65.0, 165, 0.6)}
"""clip id -> (longest length in seconds, espeak speed in words per minute, pause in seconds)."""


def make_clip(out: Path, k: int) -> None:
    """Speak clip ``k`` (seeded sentence order) into OUT/clip{k}.npy (T,) 16 kHz, its text
    (clip{k}.txt) and each sentence's (start s, end s, text) (clip{k}.json)."""
    from emoreason.audio import SAMPLE_RATE, load_audio
    from emoreason.testing.fixtures import speak

    seconds, speed, gap_s = CLIPS[k]
    order = np.random.default_rng(k).permutation(len(SENTENCES)).tolist() * 3
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    pieces, spans, total = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for j in order:
            wave = load_audio(speak(SENTENCES[j], Path(tmp) / f"{j}.wav", speed=speed))
            if (total + wave.size) / SAMPLE_RATE > seconds:
                break
            spans.append((total / SAMPLE_RATE, (total + wave.size) / SAMPLE_RATE, SENTENCES[j]))
            pieces += [wave, gap]
            total += wave.size + gap.size
    np.save(out / f"clip{k}.npy", np.concatenate(pieces))
    (out / f"clip{k}.txt").write_text(" ".join(text for _, _, text in spans))
    (out / f"clip{k}.json").write_text(json.dumps(spans))


def window_reference(spans: list[tuple[float, float, str]], start: float, end: float) -> str:
    """Words whose midpoint (placed by their share of their sentence's characters) lies in [start, end)."""
    words = []
    for s, e, text in spans:
        tokens = text.split()
        length = sum(len(w) + 1 for w in tokens)
        pos = 0
        for w in tokens:
            if start <= s + (e - s) * (pos + len(w) / 2) / length < end:
                words.append(w)
            pos += len(w) + 1
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the clips and wer.json")
    parser.add_argument("--clips", default="0,1,2,3", help="clip ids, comma-separated")
    parser.add_argument("--cut", choices=["pause", "fixed"], default="pause", help="where windows end (default: pause, the engine's)")
    parser.add_argument("--window", type=float, default=30.0, help="window length in seconds (default: 30)")
    args = parser.parse_args()
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    from emoreason.audio import SAMPLE_RATE, split_windows
    from emoreason.eval.wer import corpus_wer
    from emoreason.model.encoders import WhisperFrames, load_whisper_encoder
    from emoreason.model.whisper_asr import WhisperDecoderASR
    from emoreason.weights.resolve import resolve_packaged

    args.out.mkdir(parents=True, exist_ok=True)
    path = resolve_packaged("whisper-tiny.en")
    # the demo model's speech encoder is this checkpoint, frozen (no Engine: the LLM is not needed)
    asr = WhisperDecoderASR.load(path, WhisperFrames(load_whisper_encoder(path)).eval())
    direct_model = WhisperForConditionalGeneration.from_pretrained(path).eval()
    features = WhisperFeatureExtractor.from_pretrained(path)
    eot = direct_model.generation_config.eos_token_id
    rows = []
    for k in (int(x) for x in args.clips.split(",")):
        if not (args.out / f"clip{k}.npy").exists():
            make_clip(args.out, k)
        wave = np.load(args.out / f"clip{k}.npy")
        spans = json.loads((args.out / f"clip{k}.json").read_text())
        windows = split_windows(wave, args.window, args.cut)
        tic = time.time()
        ours = asr.transcribe([w for _, _, w in windows])
        seconds = time.time() - tic
        with torch.inference_mode():
            mel = features([w for _, _, w in windows], sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
            generated = direct_model.generate(mel, max_new_tokens=440)
        direct = [asr.tokenizer.decode([t for t in row if t < eot]).strip() for row in generated.tolist()]
        for (a, b, _), mine, theirs in zip(windows, ours, direct):
            ref = window_reference(spans, a, b)
            row = {"clip": k, "start": a, "end": b, "ref": ref, "ours": mine.text, "direct": theirs,
                   "n_ref": len(ref.split()), "wer_ours": corpus_wer([ref], [mine.text])["wer"],
                   "wer_direct": corpus_wer([ref], [theirs])["wer"], "n_words_timed": len(mine.words)}
            rows.append(row)
            print(f"clip{k} {a:5.1f}-{b:5.1f}s n={row['n_ref']:3d} WER ours {row['wer_ours']:.3f} "
                  f"direct {row['wer_direct']:.3f} | ours: {mine.text[:60]!r} | direct: {theirs[:60]!r}", flush=True)
        print(f"clip{k}: our source took {seconds:.1f} s", flush=True)
    refs = [r["ref"] for r in rows]
    print("pooled per-window WER, ours:", corpus_wer(refs, [r["ours"] for r in rows]))
    print("pooled per-window WER, direct:", corpus_wer(refs, [r["direct"] for r in rows]))
    (args.out / "wer.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
