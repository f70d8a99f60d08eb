"""What moves a trained model's emotion answer that should not: its forced choice on the same
held-out clips played louder, quieter, higher, slower, noisier, through a phone, and (optionally)
the same prosody in German instead of English.

Real corpora differ from our synthetic one in level, voice pitch, speaking rate, room and channel,
so a model that reads one of those instead of the emotion fails on real voices. Each condition is
the held-out clips transformed one way; the table gives accuracy and unweighted accuracy (UA) with
95 % bootstrap CIs, the paired difference to the clean clips, and what the model answered, so a
condition that pushes answers to one label shows up as that label's count.

    PYTHONPATH=. python benchmarks/model_invariance.py --model RUN --data test.jsonl \
        [--n 160] [--conditions clean,gain-12,...] [--lang-n 80] [--work DIR] [--by-wording] [--json OUT.json]

``RUN``: a trained run directory (``emoreason demo``'s ``OUT/runs/VARIANT``). ``test.jsonl``: a
manifest whose emotion rows are the clips (``emoreason demo``'s ``OUT/testset/test.jsonl``); only
labels the model knows are kept. Forced choice only (``max_new_tokens=0``: label + scores, no
transcript, no explanation). ``pitch`` and ``tempo`` use sox (pitch without tempo, tempo without
pitch); ``speed`` changes both, like tape. The language rows are new espeak-ng speakers saying
neutral sentences with the emotions' prosody (``probe_invariance.language_clips``), written to
``--work`` once. Everything here is our own synthetic speech unless ``--data`` says otherwise.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from probe_invariance import emotion_rows, language_clips, level  # a sibling script: benchmarks/ is on sys.path when run

SR = 16000


def sox(wave: np.ndarray, *effect: str) -> np.ndarray:
    """``wave`` (S,) float32 at 16 kHz through one sox effect chain (raw float32 in and out)."""
    raw = ["-t", "raw", "-r", str(SR), "-e", "floating-point", "-b", "32", "-c", "1"]
    done = subprocess.run(["sox", "-D", "-V1", *raw, "-", *raw, "-", *effect],
                          input=wave.astype(np.float32).tobytes(), capture_output=True, check=True)
    return np.clip(np.frombuffer(done.stdout, dtype=np.float32), -1.0, 1.0)


def conditions() -> dict[str, Callable[[np.ndarray, str], np.ndarray]]:
    """name -> f(wave (S,), clip key) -> transformed wave; the key seeds any randomness."""
    from emoreason.data import augment

    return {
        "clean": lambda w, k: w,
        "gain-12": lambda w, k: level(w, -12, False),
        "gain+12": lambda w, k: level(w, 12, False),
        "rms-23": lambda w, k: level(w, 0, True),
        "pitch-400": lambda w, k: sox(w, "pitch", "-400"),
        "pitch+400": lambda w, k: sox(w, "pitch", "400"),
        "tempo0.85": lambda w, k: sox(w, "tempo", "-s", "0.85"),
        "tempo1.15": lambda w, k: sox(w, "tempo", "-s", "1.15"),
        "speed0.9": lambda w, k: augment.speed(w, 0.9),
        "speed1.1": lambda w, k: augment.speed(w, 1.1),
        "noise20": lambda w, k: augment.add_noise(w, 20.0, augment.rng_for("noise", k)),
        "noise10": lambda w, k: augment.add_noise(w, 10.0, augment.rng_for("noise", k)),
        "reverb0.5": lambda w, k: augment.reverb(w, 0.5, augment.rng_for("reverb", k)),
        "phone": lambda w, k: augment.phone_channel(w),
    }


def summarise(gold: list[str], pred: list[str], clean: list[str] | None) -> dict[str, Any]:
    """Accuracy and UA (mean per-gold-label recall) with bootstrap CIs; the paired difference in
    accuracy to ``clean`` (same clips' answers) when given; predicted-label counts and, per gold
    label, what was answered (``confusion``)."""
    from emoreason.eval.bootstrap import bootstrap_balanced_ci, bootstrap_ci

    hit = [float(g == p) for g, p in zip(gold, pred)]
    out = {"n": len(gold), "acc": bootstrap_ci(hit, scale=100), "ua": bootstrap_balanced_ci(hit, gold, scale=100),
           "predicted": dict(sorted(Counter(map(str, pred)).items())),
           "confusion": {g: dict(sorted(Counter(str(p) for gg, p in zip(gold, pred) if gg == g).items()))
                         for g in sorted(set(gold))}}
    if clean is not None:
        base = [float(g == p) for g, p in zip(gold, clean)]
        out["delta"] = bootstrap_ci([h - b for h, b in zip(hit, base)], scale=100)
        out["changed"] = sum(p != c for p, c in zip(pred, clean))
    return out


def by_wording(rows: list[dict[str, Any]], gold: list[str], pred: list[str],
               wording: dict[str, str]) -> dict[str, dict[str, float]]:
    """Accuracy with a bootstrap CI per wording kind (``neutral`` / ``emotional``, from
    :func:`emoreason.demo.report.wordings`) of the rows that have one; {} when none has."""
    from emoreason.eval.bootstrap import bootstrap_ci

    hits: dict[str, list[float]] = {}
    for r, g, p in zip(rows, gold, pred):
        kind = wording.get(r.get("id", ""))
        if kind:
            hits.setdefault(kind, []).append(float(g == p))
    return {kind: bootstrap_ci(values, scale=100) for kind, values in sorted(hits.items())}


def row(name: str, s: dict[str, Any]) -> str:
    """One markdown table row of :func:`summarise`'s result."""
    ci = lambda d, key="mean": f"{d[key]:.1f} [{d['low']:.1f}, {d['high']:.1f}]"  # noqa: E731
    delta = f"{s['delta']['mean']:+.1f} [{s['delta']['low']:+.1f}, {s['delta']['high']:+.1f}]" if "delta" in s else "-"
    changed = str(s.get("changed", "-"))
    counts = ", ".join(f"{k} {v}" for k, v in s["predicted"].items())
    return f"| {name} | {s['n']} | {ci(s['acc'])} | {ci(s['ua'])} | {delta} | {changed} | {counts} |"


def answer(engine: Any, clips: list[tuple[str, np.ndarray]], batch_size: int) -> list[str]:
    """The engine's forced-choice emotion label of each (name, wave) clip, in order."""
    labels = []
    for r in engine.analyze(clips, task="emotion", max_new_tokens=0, batch_size=batch_size):
        if not hasattr(r, "label"):
            raise SystemExit(f"analysis failed: {r}")
        labels.append(r.label)
    return labels


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; a bad model directory, manifest or clip stops it with one line."""
    from emoreason.errors import UserError

    try:
        run(argv)
    except UserError as e:
        raise SystemExit(f"model_invariance: {e}") from None


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="a trained run directory")
    p.add_argument("--data", required=True, type=Path, help="manifest whose emotion rows are the clips")
    p.add_argument("--n", type=int, default=0, help="clips (seeded subsample; 0: all)")
    p.add_argument("--conditions", default=",".join(conditions()), help="comma list (default: all)")
    p.add_argument("--lang-n", type=int, default=0, help="clips per language, English and German (0: skip)")
    p.add_argument("--work", type=Path, default=Path("model_invariance"), help="where the language clips go")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--by-wording", action="store_true",
                   help="also split each condition's accuracy by the clips' wording (synthetic rows' meta.wording: "
                        "neutral vs emotional sentences, as the demo report does)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)

    from emoreason.audio import load_audio
    from emoreason.demo.report import wordings
    from emoreason.inference.engine import Engine

    table = conditions()
    names = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = [c for c in names if c not in table]
    if unknown:
        raise SystemExit(f"unknown condition(s) {unknown}; known: {', '.join(table)}")
    if "clean" not in names:
        names.insert(0, "clean")  # the paired differences need it
    engine = Engine.load(args.model)
    known = set(engine.labels("emotion"))
    rows = [r for r in emotion_rows(args.data, 0) if r["label"] in known]
    if args.n:
        keep = sorted(np.random.default_rng(0).permutation(len(rows))[: args.n])
        rows = [rows[i] for i in keep]
    if not rows:
        raise SystemExit(f"{args.data}: no emotion rows with a label among {sorted(known)}")
    gold = [r["label"] for r in rows]
    wording = wordings(args.data) if args.by_wording else {}
    waves = [load_audio(r["audio"]).astype(np.float32) for r in rows]
    print(f"model {args.model}; {len(rows)} clips of {args.data}; labels {dict(sorted(Counter(gold).items()))}")
    print("| condition | n | accuracy % [95 % CI] | UA % [95 % CI] | minus clean, paired | answers changed | answered |")
    print("|---|---|---|---|---|---|---|")
    results: dict[str, Any] = {}
    clean: list[str] | None = None
    for name in names:
        t0 = time.perf_counter()
        clips = [(f"{i}.wav", table[name](w, f"{i}")) for i, w in enumerate(waves)]
        pred = answer(engine, clips, args.batch_size)
        if name == "clean":
            clean = pred
        results[name] = summarise(gold, pred, None if name == "clean" else clean)
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(row(name, results[name]), flush=True)
        if args.by_wording:
            results[name]["by_wording"] = by_wording(rows, gold, pred, wording)
            print("|  | " + "; ".join(f"{kind} words {c['mean']:.1f} [{c['low']:.1f}, {c['high']:.1f}] (n={c['n']})"
                                      for kind, c in results[name]["by_wording"].items()) + " | | | | | |", flush=True)
    if args.lang_n:
        args.work.mkdir(parents=True, exist_ok=True)
        lang_pred: dict[str, list[str]] = {}
        for language in ("en", "de"):
            clips = language_clips(args.work, args.lang_n, language)
            lang_gold = [e for _, e in clips]
            lang_pred[language] = answer(engine, [(str(path), load_audio(path)) for path, _ in clips], args.batch_size)
            results[f"lang-{language}"] = summarise(lang_gold, lang_pred[language],
                                                    lang_pred["en"] if language == "de" else None)
            print(row(f"neutral words, {language}", results[f"lang-{language}"]), flush=True)
        for language in ("en", "de"):  # which emotions an unfamiliar voice is mistaken for
            confusion = results[f"lang-{language}"]["confusion"]
            print(f"  {language}, gold -> answered: " + "; ".join(
                f"{g} -> " + ", ".join(f"{p} {c}" for p, c in answered.items()) for g, answered in confusion.items()))
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "data": str(args.data), "results": results}, indent=1))


if __name__ == "__main__":
    main()
