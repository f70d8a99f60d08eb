"""Label / explanation disagreement of evaluation predictions, before and after the forced prefix.

    .venv/bin/python benchmarks/label_agreement.py --model demo_out/runs/detailed-dual \\
        --manifest demo_out/testset/test.jsonl --before demo_out/eval/detailed-dual/predictions.jsonl \\
        --out /tmp/agree [--max-new-tokens 32]

``--before``: a predictions.jsonl written by ``emoreason eval run`` (``prediction`` = the generated
answer, ``model_label`` = the engine's forced choice); a demo made before the forced prefix has
free explanations there. The emotion and sentiment rows of ``--manifest`` are predicted again
through the same path (``emoreason.eval.run.model_predictions``: the rows' own instructions, the
engine's default ``explain="forced"``) into ``--out``. For both files every row's ``consistent``
is computed as the engine computes it (``emoreason.inference.engine.consistency``) and counted.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def count(path: Path, what: str) -> None:
    from emoreason.inference.engine import consistency

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("task") in ("emotion", "sentiment") and r.get("model_label")]
    for task in ("emotion", "sentiment"):
        subset = [r for r in rows if r["task"] == task]
        if not subset:
            continue
        got = [consistency(r["model_label"], r["prediction"], task) for r in subset]
        n = len(got)
        print(f"{what:6s} {task:9s} n={n:3d}  disagree (consistent false) {got.count(False)}/{n} = "
              f"{got.count(False) / n:.1%}  no label read (null) {got.count(None)}/{n} = {got.count(None) / n:.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--before", help="predictions.jsonl of an earlier eval run (free explanations)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    args = ap.parse_args()
    from emoreason.eval.run import model_predictions
    from emoreason.inference.engine import Engine

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    after = out / "predictions.jsonl"
    engine = Engine.load(args.model)
    for task in ("emotion", "sentiment"):
        model_predictions(args.model, args.manifest, after, task=task, max_new_tokens=args.max_new_tokens, engine=engine)
    if args.before:
        count(Path(args.before), "before")
    count(after, "after")


if __name__ == "__main__":
    main()
