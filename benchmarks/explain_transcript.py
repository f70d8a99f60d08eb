"""Label / explanation agreement (explain forced vs free) and transcriber WER (model vs whisper).

    .venv/bin/python benchmarks/explain_transcript.py --model demo_out/runs/detailed-dual \\
        --manifest demo_out/testset/test.jsonl --out /tmp/explain-bench [--what agree,wer]

``agree``: every emotion / sentiment row of the manifest is analysed twice by the engine, with
``explain="forced"`` (the explanation continues the forced-choice label's sentence) and
``explain="free"`` (the paper's behaviour); each result's ``consistent`` (the label read back from
the explanation by ``emoreason.text.label_extraction`` vs the forced-choice label) is counted:
disagreement = false / rows, unreadable = null / rows. ``wer``: every row with a reference
transcript (asr rows, and the emotion rows of the synthetic corpora, which carry their script) is
transcribed by the model's own ASR task (``--task asr``) and by the speech encoder's Whisper
decoder (``transcript="whisper"``); corpus WER with Whisper's English normaliser
(``emoreason.eval.wer``).

Results go to ``--out`` (one JSONL per setting, resumable: rerun to finish); the summary is printed.
Not a test: numbers depend on the model and the clips (docs/inference.md has the measured ones).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def load_rows(manifest: Path, limit: int | None) -> list[dict]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for row in rows:
        row["path"] = str((manifest.parent / row["audio"]).resolve())
    return rows[:limit] if limit else rows


def run(engine, rows: list[dict], out: Path, **kwargs) -> list[dict]:
    """Engine results for ``rows`` (file order), appended to ``out`` as they finish; rows already
    there are not analysed again."""
    from emoreason.jsonl import ResumableJsonl

    done = ResumableJsonl(out, key="file", finished=lambda r: "error" not in r)
    todo = [r["path"] for r in rows if r["path"] not in done]
    for result in engine.iter_analyze(todo, **kwargs):
        done.append(result.to_dict())
    done.close()
    by_file = {}
    for line in out.read_text().splitlines():
        row = json.loads(line)
        by_file[row["file"]] = row
    return [by_file[r["path"]] for r in rows]


def agreement(engine, rows: list[dict], out: Path, max_new_tokens: int, transcript: str) -> None:
    for task in ("emotion", "sentiment"):
        subset = [r for r in rows if r["task"] == task]
        if not subset:
            continue
        for explain in ("free", "forced"):
            results = run(engine, subset, out / f"{task}-{explain}.jsonl", task=task, explain=explain,
                          transcript=transcript, max_new_tokens=max_new_tokens)
            n = len(results)
            false = sum(r.get("consistent") is False for r in results)
            null = sum(r.get("consistent") is None for r in results)
            correct = sum(r.get("label") == row["label"] for r, row in zip(results, subset))
            print(f"{task:9s} explain={explain:6s} n={n:3d}  disagree {false}/{n} = {false / n:.1%}  "
                  f"no label read {null}/{n} = {null / n:.1%}  forced-choice accuracy {correct}/{n} = {correct / n:.1%}")
            for r in results:
                if r.get("consistent") is False:
                    print(f"    {Path(r['file']).name}: label {r['label']!r}, text {r['explanation'][:100]!r}")


def wer(engine, rows: list[dict], out: Path, max_new_tokens: int, sources: list[str]) -> None:
    from emoreason.eval.wer import corpus_wer

    subset = [r for r in rows if r.get("transcript") and r["task"] in ("asr", "emotion")]
    seen, unique = set(), []
    for r in subset:  # one clip can appear as several task rows
        if r["path"] not in seen:
            seen.add(r["path"])
            unique.append(r)
    refs = [r["transcript"] for r in unique]
    for source in [s for s in sources if s != "whisper" or engine.has_whisper]:
        results = run(engine, unique, out / f"asr-{source}.jsonl", task="asr", transcript=source,
                      max_new_tokens=max_new_tokens)
        hyps = [(r.get("transcript") or {}).get("text", "") for r in results]
        score = corpus_wer(refs, hyps)
        print(f"asr transcript={source:7s} clips={len(unique)}  WER {score['wer']:.1%}  ({score})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--manifest", required=True, action="append", help="JSONL manifest (repeatable)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--what", default="agree,wer")
    ap.add_argument("--limit", type=int, default=None, help="first N rows of each manifest")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--transcript", default="none", help="transcript setting of the agreement runs (default: none)")
    ap.add_argument("--wer-sources", default="model,whisper", help="transcribers compared by --what wer")
    args = ap.parse_args()
    from emoreason.inference.engine import Engine

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [row for m in args.manifest for row in load_rows(Path(m), args.limit)]
    engine = Engine.load(args.model)
    what = args.what.split(",")
    if "agree" in what:
        agreement(engine, rows, out, args.max_new_tokens, args.transcript)
    if "wer" in what:
        wer(engine, rows, out, 96, args.wer_sources.split(","))


if __name__ == "__main__":
    main()
