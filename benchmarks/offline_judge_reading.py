"""Agreement of the offline judge's readings with our hand-written expected ratings.

    .venv/bin/python benchmarks/offline_judge_reading.py [--show-misses] [CASES.txt ...]

Reads tests/fixtures/eval/judge_reading_cases.txt and judge_reading_heldout.txt (cases WE wrote, with the rating our reading of
AudioBench's binary rubric gives; not logged judge outputs) and prints, for the literal reading
(the judge before the reference-compatible options) and the default ``audiobench`` reading, the
agreement with a 95% Wilson interval, overall and per kind.
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

from emoreason.text.label_extraction import READINGS, binary_match, reference_label

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "eval"
CASES = [FIXTURES / "judge_reading_cases.txt", FIXTURES / "judge_reading_heldout.txt"]


def load_cases(path: Path) -> list[dict]:
    """``kind | task | gold | expected | answer`` lines (``#`` comments skipped)."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, task, gold, expected, answer = (f.strip() for f in line.split(" | ", 4))
        rows.append({"line": n, "kind": kind, "task": task, "gold": gold, "expected": int(expected),
                     "answer": answer})
    return rows


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show-misses", action="store_true", help="print the cases each reading gets wrong")
    ap.add_argument("cases", nargs="*", type=Path, default=CASES, help="case files (default: both fixtures)")
    args = ap.parse_args()
    for path in args.cases:
        print(path.name)
        report(load_cases(path), args.show_misses)


def report(rows: list[dict], show_misses: bool) -> None:
    """Agreement per reading, overall (with a 95% Wilson interval) and per kind."""
    for name, reading in READINGS.items():
        hits: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            gold = reference_label(r["gold"], r["task"])
            score, got = binary_match(r["answer"], gold, r["task"], reading)
            hits[r["kind"]].append(int(score == r["expected"]))
            if show_misses and score != r["expected"]:
                print(f"  {name} miss line {r['line']}: expected {r['expected']} got {score} {got.to_dict()} "
                      f"| {r['answer']}")
        allk = [h for v in hits.values() for h in v]
        lo, hi = wilson(sum(allk), len(allk))
        print(f"{name:10s} all        n={len(allk):3d} agreement {100 * sum(allk) / len(allk):5.1f}% "
              f"({sum(allk)}/{len(allk)}) 95% Wilson [{100 * lo:.1f}, {100 * hi:.1f}]")
        for kind, v in hits.items():
            print(f"{'':10s} {kind:10s} n={len(v):3d} agreement {100 * sum(v) / len(v):5.1f}% ({sum(v)}/{len(v)})")


if __name__ == "__main__":
    main()
