"""Two suspected causes of the synthetic corpus's poor transfer to real speech, checked with the
demo's linear probe (frozen emotion encoder, mean + std pooled frames, logistic regression):

1. **Recording level.** Our corpus speaks sad quietly and angry loudly (sox gain per emotion), so
   a probe could read the absolute level, which a real corpus's microphone sets instead. Held-out
   clips are played at -12, 0 and +12 dB (clipped to [-1, 1]); a level-reading probe would move
   its predictions. Also the same with every clip RMS-normalised to -23 dBFS before the encoder.
2. **Language.** The corpus is English and the real corpus of issue 12 is not. New espeak-ng
   speakers say neutral sentences in English and in German with the same emotion prosody; a
   probe that leans on English would drop on the German clips.

    PYTHONPATH=. python benchmarks/probe_invariance.py --demo-out DEMO_OUT [--train-n 200] \
        [--test-n 120] [--lang-n 80] [--work DIR]

``DEMO_OUT``: an ``emoreason demo`` output directory (its ``targets/train_label.jsonl`` emotion rows
train the probe, seeded subsample; its ``testset/test.jsonl`` emotion rows are the held-out clips).
The language clips are written to ``--work`` (espeak-ng + sox, 8 speakers of seed 777, never the
demo's). Prints accuracy, unweighted accuracy and the predicted-label counts per condition. All of
it is speech we synthesised: it says whether these two causes exist in our own data, not how real
speech behaves.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

GAINS_DB = (-12, 0, 12)
TARGET_RMS_DBFS = -23.0
SENTENCES = {
    "en": ["The bus arrives at eight o'clock.", "I put the book on the table.", "Tomorrow we will go shopping together.",
           "The kitchen window is open.", "He wrote the letter yesterday.", "The meeting starts after lunch.",
           "We have lived in this city for three years.", "She left the bag in the car.",
           "The train leaves from platform four today.", "The paper is next to the printer."],
    "de": ["Der Bus kommt um acht Uhr an.", "Ich habe das Buch auf den Tisch gelegt.", "Morgen gehen wir zusammen einkaufen.",
           "Das Fenster in der Küche ist offen.", "Er hat den Brief gestern geschrieben.",
           "Die Sitzung beginnt nach dem Mittagessen.", "Wir wohnen seit drei Jahren in dieser Stadt.",
           "Sie hat die Tasche im Auto vergessen.", "Der Zug fährt heute von Gleis vier.", "Das Papier liegt neben dem Drucker."],
}
"""Neutral-worded sentences (ours), the same meanings in both languages: the words never tell the label."""
LANG_VOICE = {"en": None, "de": "de"}
"""espeak-ng voice per language (None: the planned speaker's own English voice)."""


def emotion_rows(manifest: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Up to ``n`` emotion rows of ``manifest`` (a seeded subsample, in manifest order), audio
    paths made absolute."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("task") == "emotion"]
    keep = sorted(np.random.default_rng(seed).permutation(len(rows))[:n]) if n else range(len(rows))
    out = []
    for i in keep:
        row = dict(rows[i])
        audio = Path(row["audio"])
        row["audio"] = str(audio if audio.is_absolute() else (manifest.parent / audio).resolve())
        out.append(row)
    return out


def level(wave: np.ndarray, gain_db: float, normalise: bool) -> np.ndarray:
    """``wave`` (S,) float32, RMS-normalised to :data:`TARGET_RMS_DBFS` first when ``normalise``,
    then ``gain_db`` louder, clipped to [-1, 1] as a recorder would."""
    if normalise:
        wave = wave * (10 ** (TARGET_RMS_DBFS / 20) / (float(np.sqrt(np.mean(wave ** 2))) + 1e-9))
    return np.clip(wave * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def scores(gold: list[str], pred: list[str]) -> str:
    """"acc A  UA U  predicted {label: count}" (UA: mean per-class recall over the gold labels)."""
    acc = 100 * np.mean([g == p for g, p in zip(gold, pred)])
    ua = 100 * np.mean([np.mean([p == g for g, p in zip(gold, pred) if g == label]) for label in sorted(set(gold))])
    return f"acc {acc:5.1f}  UA {ua:5.1f}  predicted {dict(sorted(Counter(map(str, pred)).items()))}"


def language_clips(work: Path, n: int, language: str) -> list[tuple[Path, str]]:
    """``n`` clips (emotions balanced) of new espeak-ng speakers in ``language``, written once."""
    from emoreason.data import synth

    speakers = synth.make_speakers(24, seed=777)[16:24]
    out = []
    for j in range(n):
        u = synth.plan_utterance(j, 777, synth.DEFAULT_EMOTIONS, speakers, neutral_text_share=1.0)
        voice = LANG_VOICE[language]
        speaker = u.speaker if voice is None else dataclasses.replace(u.speaker, voice=voice)
        u = dataclasses.replace(u, text=SENTENCES[language][j % len(SENTENCES[language])], speaker=speaker)
        path = work / f"{language}{j:04d}.wav"
        if not path.exists():
            synth.synthesize(u, path)
        out.append((path, u.emotion))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo-out", required=True, type=Path, help="an `emoreason demo` output directory")
    p.add_argument("--train-n", type=int, default=200, help="training clips for the probe (0: all)")
    p.add_argument("--test-n", type=int, default=120, help="held-out demo clips for the level check (0: all)")
    p.add_argument("--lang-n", type=int, default=80, help="clips per language (0: skip the language check)")
    p.add_argument("--work", type=Path, default=Path("probe_invariance"), help="where the language clips go")
    args = p.parse_args(argv)

    import torch

    from emoreason.audio import load_audio
    from emoreason.data.synth import check_tools
    from emoreason.eval.probe import fit_probe, pooled_features, resolve_encoder

    torch.set_num_threads(1)
    encoder = resolve_encoder(None, "mini")
    train = emotion_rows(args.demo_out / "targets" / "train_label.jsonl", args.train_n)
    test = emotion_rows(args.demo_out / "testset" / "test.jsonl", args.test_n)
    waves = {r["audio"]: load_audio(r["audio"]).astype(np.float32) for r in train + test}
    by_label: dict[str, list[float]] = {}
    for r in train:
        by_label.setdefault(r["label"], []).append(20 * np.log10(np.sqrt(np.mean(waves[r["audio"]] ** 2)) + 1e-9))
    print(f"training clips: {len(train)}; RMS dBFS by label: "
          + ", ".join(f"{k} {np.mean(v):.1f}" for k, v in sorted(by_label.items())))
    gold = [r["label"] for r in test]
    print(f"1. level: held-out clips n={len(test)}")
    for normalise in (False, True):
        feats = np.stack([pooled_features(encoder, level(waves[r["audio"]], 0, normalise)) for r in train])
        probe = fit_probe(feats, [r["label"] for r in train])
        for gain in GAINS_DB:
            x = np.stack([pooled_features(encoder, level(waves[r["audio"]], gain, normalise)) for r in test])
            name = f"{'RMS-normalised, ' if normalise else 'as recorded,   '} {gain:+d} dB"
            print(f"  {name}: {scores(gold, list(probe.predict(x)))}", flush=True)
        if not normalise:
            raw_probe = probe
    if args.lang_n:
        check_tools()
        args.work.mkdir(parents=True, exist_ok=True)
        print(f"2. language: new speakers, neutral sentences, n={args.lang_n} per language (probe as recorded)")
        for language in SENTENCES:
            clips = language_clips(args.work, args.lang_n, language)
            x = np.stack([pooled_features(encoder, load_audio(path)) for path, _ in clips])
            print(f"  {language}: {scores([e for _, e in clips], list(raw_probe.predict(x)))}", flush=True)


if __name__ == "__main__":
    main()
