"""Does speaker normalisation of the emotion frames help a trained model on voices it never heard?

Per set of clips, the model's forced choice (label + scores, no generation) as recorded and with
each speaker's emotion frames normalised to the training clips' statistics (``Engine.iter_analyze(
..., speaker_stats=...)``, :mod:`emoreason.inference.speaker_norm`; the speaker's statistics come
from all of that speaker's clips in the set, without labels). Sets:

- ``heldout``: the emotion rows of ``--data`` (a demo's ``OUT/testset/test.jsonl``: its held-out
  speakers), grouped by their ``speaker`` field;
- ``en`` / ``de`` (``--lang-n N``): new espeak-ng speakers saying neutral sentences with the
  emotions' prosody (``probe_invariance.language_clips``; 8 speakers, grouped by speaker);
- ``--set NAME=MANIFEST`` (repeatable): any manifest's emotion rows, grouped by ``speaker``
  (e.g. one held-out synthesiser's clips, all one voice).

    PYTHONPATH=. python benchmarks/speaker_norm.py --model OUT/runs/label-dual --data OUT/testset/test.jsonl \
        [--lang-n 80] [--set piper=piper.jsonl] [--work DIR] [--json OUT.json]

Each row: accuracy and UA with 95 % bootstrap CIs, the paired difference to the raw answers (same
clips), how many answers changed, and the answer counts (a voice that pushes one label shows up as
that label's count); then the paired difference pooled over every clip of every set. Everything is our own synthetic speech unless a manifest says otherwise.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from model_invariance import row, summarise  # sibling scripts: benchmarks/ is on sys.path when run
from probe_invariance import emotion_rows, language_clips


def language_set(work: Path, n: int, language: str) -> list[dict[str, Any]]:
    """:func:`probe_invariance.language_clips` as rows with their planned speaker."""
    from emoreason.data import synth

    speakers = synth.make_speakers(24, seed=777)[16:24]  # the speakers language_clips plans with
    clips = language_clips(work, n, language)
    return [{"audio": str(path), "label": emotion,
             "speaker": synth.plan_utterance(j, 777, synth.DEFAULT_EMOTIONS, speakers, neutral_text_share=1.0).speaker.id}
            for j, (path, emotion) in enumerate(clips)]


def answers(engine: Any, rows: list[dict[str, Any]], normalise: bool, batch_size: int) -> list[str]:
    """Forced-choice labels of ``rows`` in order; with ``normalise`` each speaker's clips are
    normalised with that speaker's statistics over all of them."""
    stats = None
    if normalise:
        by_speaker: dict[str, list[str]] = {}
        for r in rows:
            by_speaker.setdefault(r["speaker"], []).append(r["audio"])
        of_speaker = {s: engine.speaker_stats(paths, batch_size) for s, paths in by_speaker.items()}
        stats = [of_speaker[r["speaker"]] for r in rows]
    out = []
    for res in engine.iter_analyze([r["audio"] for r in rows], task="emotion", max_new_tokens=0,
                                   batch_size=batch_size, speaker_stats=stats):
        if not hasattr(res, "label"):
            raise SystemExit(f"speaker_norm: analysis failed: {res}")
        out.append(res.label)
    return out


def main(argv: list[str] | None = None) -> None:
    from emoreason.errors import UserError

    try:
        run(argv)
    except UserError as e:
        raise SystemExit(f"speaker_norm: {e}") from None


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="a trained run directory")
    p.add_argument("--data", type=Path, help="manifest of the held-out set (its emotion rows, grouped by speaker)")
    p.add_argument("--lang-n", type=int, default=0, help="clips per language, English and German (0: skip)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=MANIFEST", help="another set (repeatable)")
    p.add_argument("--work", type=Path, default=Path("speaker_norm"), help="where the language clips go")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)

    from emoreason.inference.engine import Engine

    engine = Engine.load(args.model)
    known = set(engine.labels("emotion"))
    sets: dict[str, list[dict[str, Any]]] = {}
    named = ([("heldout", args.data)] if args.data else []) + [tuple(s.split("=", 1)) for s in args.set]
    for name, manifest in named:
        rows = [r for r in emotion_rows(Path(manifest), 0) if r["label"] in known]
        missing = [r.get("id", r["audio"]) for r in rows if not r.get("speaker")]
        if missing:
            raise SystemExit(f"speaker_norm: {manifest}: rows without a speaker, e.g. {missing[0]}")
        sets[name] = rows
    if args.lang_n:
        args.work.mkdir(parents=True, exist_ok=True)
        for language in ("en", "de"):
            sets[language] = language_set(args.work, args.lang_n, language)
    if not sets:
        raise SystemExit("speaker_norm: nothing to measure (give --data, --set or --lang-n)")
    t0 = time.perf_counter()
    engine.training_frame_stats()
    print(f"model {args.model}; training-clip statistics in {time.perf_counter() - t0:.1f} s")
    print("| set, frames | n | speakers | accuracy % [95 % CI] | UA % [95 % CI] | minus raw, paired | answers changed | answered |")
    print("|---|---|---|---|---|---|---|---|")
    results: dict[str, Any] = {}
    gains: list[float] = []  # per clip of every set: normalised hit minus raw hit
    for name, rows in sets.items():
        gold = [r["label"] for r in rows]
        speakers = len(Counter(r["speaker"] for r in rows))
        raw = answers(engine, rows, False, args.batch_size)
        normed = answers(engine, rows, True, args.batch_size)
        results[name] = {"speakers": speakers, "raw": summarise(gold, raw, None),
                         "speaker-norm": summarise(gold, normed, raw)}
        for kind in ("raw", "speaker-norm"):
            line = row(f"{name}, {kind}", results[name][kind])
            print(line.replace(f" | {len(rows)} | ", f" | {len(rows)} | {speakers} | ", 1), flush=True)
        gains += [float(n == g) - float(r == g) for g, r, n in zip(gold, raw, normed)]
    from emoreason.eval.bootstrap import bootstrap_ci

    pooled = results["pooled"] = {"n": len(gains), "delta": bootstrap_ci(gains, scale=100)}
    d = pooled["delta"]
    print(f"all sets pooled (n = {len(gains)}): speaker-norm minus raw {d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "results": results}, indent=1))


if __name__ == "__main__":
    main()
