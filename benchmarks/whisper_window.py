"""Short clips in a 15 s window instead of 30 s: Whisper's WER and time, side by side in one run.

    .venv/bin/python benchmarks/whisper_window.py --out /tmp/ww                 # 160 synthetic clips, tiny.en + base
    .venv/bin/python benchmarks/whisper_window.py --out /tmp/ww --join          # also pairs of clips (6-8 s)
    .venv/bin/python benchmarks/whisper_window.py --manifest corpus/manifest.jsonl  # rows with transcripts

The transcriber (``emoreason.model.whisper_asr.WhisperDecoderASR``, the engine's own path: frames
encoded by the transcriber, greedy decoding, word timings) runs over the same clips twice per
checkpoint: ``short_windows`` off (every clip padded to 30 s, as Whisper was trained) and on (clips
up to 8 s padded to 15 s; a transcript that loops is made again in the 30 s window). Default
clips: a fresh ``emoreason data synth`` corpus (style v4: espeak-ng and flite voices, our own
sentences, emotional prosody), made in ``--out``; ``--join`` adds clips of two of them joined with
0.3 s of silence (up to 8 s, the longest clip the short window takes). WER is the Whisper-normalised
corpus WER against what was said (``emoreason.eval.wer``) with a 95 % bootstrap CI over clips;
seconds are wall time of ``transcribe`` over batches of 8 (``--threads`` torch threads).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def load_clips(args: argparse.Namespace) -> tuple[list[np.ndarray], list[str]]:
    """The benchmark's (T,) 16 kHz clips and what was said in each."""
    from emoreason.audio import load_audio
    from emoreason.data.manifest import read_manifest, resolve_audio

    manifest = args.manifest
    if manifest is None:
        from emoreason.data.synth import synth_corpus

        if args.out is None:
            raise SystemExit("give --out (where the synthetic clips go) or --manifest")
        synth_corpus(Path(args.out) / "corpus", n=args.clips, seed=args.seed, tasks="emotion")
        manifest = Path(args.out) / "corpus" / "manifest.jsonl"
    rows = [r for r in read_manifest(manifest) if r.transcript][: args.clips]
    waves = [load_audio(resolve_audio(r, manifest)) for r in rows]
    return waves, [r.transcript for r in rows]


def joined(waves: list[np.ndarray], texts: list[str], max_seconds: float = 8.0) -> tuple[list[np.ndarray], list[str]]:
    """Neighbouring clips joined in pairs with 0.3 s of silence, those up to ``max_seconds``."""
    gap = np.zeros(4800, np.float32)
    pairs = [(np.concatenate([waves[i], gap, waves[i + 1]]), f"{texts[i]} {texts[i + 1]}") for i in range(0, len(waves) - 1, 2)]
    kept = [(w, t) for w, t in pairs if w.size <= max_seconds * 16000]
    return [w for w, _ in kept], [t for _, t in kept]


def wer_ci(refs: list[str], hyps: list[str], seed: int = 0, draws: int = 1000) -> tuple[float, float, float]:
    """Corpus WER % and its 95 % bootstrap CI over clips."""
    from emoreason.eval.wer import utterance_counts

    errors, words = (np.asarray(x, dtype=float) for x in utterance_counts(refs, hyps))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(refs), size=(draws, len(refs)))
    boot = errors[picks].sum(1) / np.maximum(words[picks].sum(1), 1)
    return 100 * errors.sum() / max(words.sum(), 1), 100 * np.percentile(boot, 2.5), 100 * np.percentile(boot, 97.5)


def transcribe_all(asr, waves: list[np.ndarray]) -> tuple[list[str], float]:
    import torch

    texts: list[str] = []
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(waves), 8):
            texts += [t.text for t in asr.transcribe(waves[i : i + 8])]
    return texts, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="folder for the synthetic corpus")
    ap.add_argument("--manifest", help="a manifest whose rows have transcripts (instead of the synthetic corpus)")
    ap.add_argument("--clips", type=int, default=160)
    ap.add_argument("--seed", type=int, default=3, help="synthetic corpus seed")
    ap.add_argument("--join", action="store_true", help="also clips of two joined (6-8 s)")
    ap.add_argument("--whispers", default="packaged:whisper-tiny.en,packaged:whisper-base")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from emoreason.config import EncoderConfig
    from emoreason.model.builder import build_encoder
    from emoreason.model.whisper_asr import WhisperDecoderASR, encoder_decoder_dir

    torch.set_num_threads(args.threads)
    waves, refs = load_clips(args)
    sets = {"clips": (waves, refs)}
    if args.join:
        sets["joined pairs"] = joined(waves, refs)
    print(f"{'checkpoint':28s} {'clips':14s} {'n':>4s} {'s/clip':>6s}  {'WER 30 s window [95% CI]':28s} "
          f"{'WER short window [95% CI]':28s} {'time 30 s':>9s} {'short':>7s} {'speed-up':>8s}")
    for spec in args.whispers.split(","):
        encoder, _ = build_encoder(EncoderConfig(type="whisper", path=spec), "speech_encoder")
        encoder.eval()
        directory = encoder_decoder_dir("whisper", spec, "pretrained", False)
        runs = {flag: WhisperDecoderASR.load(directory, encoder, shared=None, short_windows=flag) for flag in (False, True)}
        for name, (w, r) in sets.items():
            if not w:
                continue
            transcribe_all(runs[True], w[:2])  # warm-up (first-call allocations), not timed
            full, t_full = transcribe_all(runs[False], w)
            short, t_short = transcribe_all(runs[True], w)
            a, b = wer_ci(r, full), wer_ci(r, short)
            seconds = np.mean([x.size for x in w]) / 16000
            print(f"{spec:28s} {name:14s} {len(w):4d} {seconds:6.1f}  "
                  f"{a[0]:5.1f} [{a[1]:5.1f}, {a[2]:5.1f}]{'':10s} {b[0]:5.1f} [{b[1]:5.1f}, {b[2]:5.1f}]{'':10s} "
                  f"{t_full:8.1f}s {t_short:6.1f}s {t_full / t_short:7.2f}x")


if __name__ == "__main__":
    main()
