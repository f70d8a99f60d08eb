"""How well does a model label long audio of many utterances, by window length?

    .venv/bin/python benchmarks/long_audio_windows.py --demo-out demo_out --run label-dual \
        [--run detailed-dual] [--windows model,30,11,7] [--cut pause,fixed] [--draws 5]

Builds "long audio" from a finished demo's held-out emotion clips (``OUT/testset/test.jsonl``):
for every (speaker, emotion), ``--draws`` files of ``--clips`` (default 6) of its clips drawn at
random (seeded), joined with 0.15-0.6 s of silence between them (about 20 s a file). Each file is
analysed whole by the engine (``Engine.analyze``: cut into windows, each scored, the scores
averaged by duration), at each window length (``model``: the length the model recorded at
training, ``audio.window_for_clips``; 30 s for models saved before it) and cut (``pause``, the
engine's, or ``fixed``). Prints, per run and setting, the files labelled right with a 95 %
bootstrap CI, windows per file and seconds. Every file holds one speaker and one emotion, so the
right label is known; all audio is the demo's own synthetic speech.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def long_files(test: Path, clips: int, draws: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(emotion, wave (T,)) files of ``clips`` same-speaker same-emotion held-out clips each."""
    from joined_clips import held_out_emotion_clips  # a sibling script: benchmarks/ is on sys.path when run

    from emoreason.audio import SAMPLE_RATE, load_audio

    groups = held_out_emotion_clips(test)
    rng = np.random.default_rng(seed)
    files = []
    for (_, label), paths in sorted(groups.items()):
        if len(paths) < clips:
            continue
        for _ in range(draws):
            parts = []
            for path in rng.choice(paths, clips, replace=False):
                gap = int(rng.uniform(0.15, 0.6) * SAMPLE_RATE)
                parts += [load_audio(path), np.zeros(gap, dtype=np.float32)]
            files.append((label, np.concatenate(parts)))
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-out", required=True, help="a finished demo's output directory")
    ap.add_argument("--run", action="append", required=True, help="a variant name under OUT/runs (repeatable)")
    ap.add_argument("--windows", default="model,30,11,7", help="window lengths in seconds, or 'model' (default: model,30,11,7)")
    ap.add_argument("--cut", default="pause", help="comma-separated: pause (the engine's), fixed (default: pause)")
    ap.add_argument("--clips", type=int, default=6, help="utterances per file (default: 6)")
    ap.add_argument("--draws", type=int, default=5, help="files per (speaker, emotion) (default: 5)")
    args = ap.parse_args()

    import emoreason.audio as audio
    from emoreason.eval.bootstrap import bootstrap_ci
    from emoreason.inference.engine import Engine

    files = long_files(Path(args.demo_out) / "testset" / "test.jsonl", args.clips, args.draws)
    seconds = np.mean([w.size for _, w in files]) / audio.SAMPLE_RATE
    print(f"{len(files)} files of {args.clips} held-out utterances each (one speaker, one emotion), {seconds:.1f} s mean")
    print("| run | window | cut | files right [95 % CI] | windows / file | seconds |\n|---|---|---|---|---|---|")
    for run in args.run:
        engine = Engine.load(str(Path(args.demo_out) / "runs" / run))
        trained = engine.window_seconds
        for window in args.windows.split(","):
            engine.window_seconds = trained if window == "model" else float(window)
            for cut in args.cut.split(","):
                engine.window_cut = cut
                start = time.perf_counter()
                results = engine.analyze([(f"f{i}", w) for i, (_, w) in enumerate(files)], max_new_tokens=0,
                                         transcript="none", batch_size=8)
                took = time.perf_counter() - start
                hits = [float(r.label == label) for r, (label, _) in zip(results, files)]
                ci = bootstrap_ci(hits, scale=100)
                per_file = np.mean([len(r.segments) or 1 for r in results])
                name = f"{engine.window_seconds:g} s" + (" (model)" if window == "model" else "")
                print(f"| {run} | {name} | {cut} | {int(sum(hits))}/{len(hits)} = {ci['mean']:.1f} % "
                      f"[{ci['low']:.1f}, {ci['high']:.1f}] | {per_file:.1f} | {took:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
