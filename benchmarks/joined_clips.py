"""Does a model label two utterances heard together as it labels each alone?

    .venv/bin/python benchmarks/joined_clips.py --demo-out demo_out --run label-dual [--run detailed-dual]

Takes the held-out emotion clips of a finished demo (``OUT/testset/test.jsonl``), pairs them
within each (speaker, emotion) in manifest order, and asks each run's engine for the forced-choice
label (no transcript, no explanation) of every clip alone and of every pair joined end to end
(no pause). A model that learned clip length as a cue (our synthetic corpus speaks the same
sentences slower when sad) labels the joined pairs near chance; a window of long audio holding two
utterances is such a pair. Prints, per run, accuracy with a 95 % bootstrap CI over the clips /
pairs, and the joined pairs by length.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def held_out_emotion_clips(test: Path) -> dict[tuple[str, str], list[str]]:
    """A demo's held-out emotion clips (``OUT/testset/test.jsonl``) by (speaker, emotion): absolute
    paths, in manifest order."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in test.open():
        r = json.loads(line)
        if r["task"] == "emotion":
            groups[(r["speaker"], r["label"])].append(str((test.parent / r["audio"]).resolve()))
    return groups


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-out", required=True, help="a finished demo's output directory")
    ap.add_argument("--run", action="append", required=True, help="a variant name under OUT/runs (repeatable)")
    args = ap.parse_args()

    from emoreason.audio import load_audio
    from emoreason.eval.bootstrap import bootstrap_ci
    from emoreason.inference.engine import Engine

    out = Path(args.demo_out)
    test = out / "testset" / "test.jsonl"
    groups = held_out_emotion_clips(test)
    waves = {c: load_audio(c) for clips in groups.values() for c in clips}
    pairs = [(label, a, b) for (_, label), clips in sorted(groups.items()) for a, b in zip(clips[0::2], clips[1::2])]
    print(f"{test}: {len(waves)} held-out emotion clips, {len(pairs)} same-speaker same-emotion pairs")
    for run in args.run:
        engine = Engine.load(str(out / "runs" / run))
        gold = {c: label for (_, label), clips in groups.items() for c in clips}
        alone = engine.analyze([(c, w) for c, w in waves.items()], max_new_tokens=0, transcript="none", batch_size=16)
        hits_alone = [r.label == gold[r.file] for r in alone]
        joined = engine.analyze([(f"{a}+{b}", np.concatenate([waves[a], waves[b]])) for _, a, b in pairs],
                                max_new_tokens=0, transcript="none", batch_size=8)
        hits_joined = [r.label == label for r, (label, _, _) in zip(joined, pairs)]
        by_length: dict[str, list[bool]] = defaultdict(list)
        for r, hit in zip(joined, hits_joined):
            by_length["<= 5 s" if r.duration <= 5 else "5-7 s" if r.duration <= 7 else "> 7 s"].append(hit)
        a = bootstrap_ci([float(h) for h in hits_alone], scale=100)
        j = bootstrap_ci([float(h) for h in hits_joined], scale=100)
        print(f"{run}: alone {sum(hits_alone)}/{a['n']} = {a['mean']:.1f} % [{a['low']:.1f}, {a['high']:.1f}]; "
              f"joined {sum(hits_joined)}/{j['n']} = {j['mean']:.1f} % [{j['low']:.1f}, {j['high']:.1f}]; "
              "joined by length: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in sorted(by_length.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
