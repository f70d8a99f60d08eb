"""How long does offline scoring of N predictions take? Prints a table per stage.

    .venv/bin/python benchmarks/eval_offline_speed.py [--n 10000]

Rows are the judged fixture (tests/fixtures/eval/*.jsonl) cycled to N, with a transcript and a
quote on every third row so the quote scorer runs too. The whole `eval score` path is timed
(read + validate, label extraction, judging, scores.jsonl, metrics with 1000 bootstrap resamples,
report with the confusion PNGs).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_predictions(path: Path, n: int) -> None:
    base = []
    for name in ("judged_emotion.jsonl", "judged_heldout.jsonl"):
        base += [json.loads(l) for l in (ROOT / "tests" / "fixtures" / "eval" / name).read_text().splitlines()]
    with open(path, "w") as fh:
        for i in range(n):
            row = dict(base[i % len(base)])
            row["id"] = f"r{i}"
            if i % 3 == 0:
                row["transcript"] = "Oh, I will never forget his face, it was the best day of my life."
                row["prediction"] += ' They say "I will never forget his face".'
            fh.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000, help="number of predictions (default 10000)")
    args = ap.parse_args()

    from emoreason.eval.judges.offline import OfflineJudge
    from emoreason.eval.predictions import read_predictions
    from emoreason.eval.report import write_report
    from emoreason.eval.scoring import prepare_row, score_file
    from emoreason.eval.summary import summarize

    with tempfile.TemporaryDirectory() as tmp:
        preds = Path(tmp) / "p.jsonl"
        make_predictions(preds, args.n)
        stages = []
        t = time.perf_counter()
        rows = [prepare_row(r, None, str(preds)) for r in read_predictions(preds)]
        stages.append(("read + prepare (extraction, quotes)", time.perf_counter() - t))
        t = time.perf_counter()
        judge = OfflineJudge()
        for r in rows:
            r.update(judge.judge(r))
        stages.append(("offline judge", time.perf_counter() - t))
        t = time.perf_counter()
        metrics = summarize(rows, resamples=1000)
        stages.append(("metrics + bootstrap (1000)", time.perf_counter() - t))
        t = time.perf_counter()
        metrics.update(judge="offline", predictions=str(preds))
        write_report(Path(tmp), metrics)
        stages.append(("report (md, html, png)", time.perf_counter() - t))
        t = time.perf_counter()
        score_file(preds, Path(tmp) / "full", OfflineJudge())
        stages.append(("whole `eval score` (end to end)", time.perf_counter() - t))
    print(f"offline scoring of {args.n} predictions")
    print(f"| {'stage':36s} | seconds | rows/s |")
    print(f"|{'-' * 38}|---------|--------|")
    for name, sec in stages:
        print(f"| {name:36s} | {sec:7.2f} | {args.n / sec:6.0f} |")


if __name__ == "__main__":
    main()
