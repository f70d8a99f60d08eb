"""`eval score`: predictions -> DIR/scores.jsonl (append-only, resumable) -> metrics.json + report.

The scores file is the unit of resumption: each judged row is appended and flushed as soon as it
is done, so a judge endpoint that dies mid-run loses nothing already scored; a rerun with the same
output directory skips the ids already in the file. When everything is scored the file is
rewritten once, atomically, in input order.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from emoreason.data.manifest import truncate_torn_tail
from emoreason.errors import UserError
from emoreason.eval.judges import SCALE
from emoreason.eval.labels import extract_labels, reference_label
from emoreason.eval.predictions import PredictionsError, read_predictions
from emoreason.eval.quotes import extract_quotes
from emoreason.labels import SENTIMENT, normalize_label, sentiment_of

log = logging.getLogger(__name__)
SCORES = "scores.jsonl"


def prepare_row(row: dict, default_task: str | None, source: str = "") -> dict:
    """Resolve task, gold label, quotes and the extracted predicted label of one input row."""
    where = f"{source}:{row.get('_line', '?')}"
    out = dict(row)
    out["reference"] = row.get("reference") if row.get("reference") is not None else row.get("label")
    task = row.get("task") or default_task
    gold = None
    if task is None:  # infer: a readable label decides emotion vs sentiment
        probe = reference_label(out["reference"], "emotion") if row.get("label") is None else row["label"].lower()
        if probe is None:
            raise PredictionsError(f"{where}: cannot tell the task; add a 'task' field or pass --task")
        # "neutral" is in both vocabularies: only polarity words or the word "sentiment" mean sentiment.
        is_sentiment = probe in ("positive", "negative") or "sentiment" in str(out["reference"]).lower()
        task = "sentiment" if is_sentiment else "emotion"
    out["task"] = task
    if task in ("emotion", "sentiment"):
        if row.get("label"):
            try:
                gold = normalize_label(row["label"])
            except UserError as e:
                raise PredictionsError(f"{where}: {e}") from None
            if task == "sentiment" and gold not in SENTIMENT:
                gold = sentiment_of(gold)
        else:
            gold = reference_label(out["reference"], task)
        if gold is None:
            raise PredictionsError(f"{where}: no {task} label can be read from reference {out['reference']!r}; add a 'label' field")
        out["gold"] = gold
        out["quotes"] = extract_quotes(row["prediction"])
        out["pred_label"] = extract_labels(row["prediction"], task).label
    return out


def _load_done(path: Path) -> dict[str, dict]:
    """Rows already scored (a torn last line from a crash is dropped and rescored)."""
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "id" in row and "score" in row:
                done[str(row["id"])] = row
    return done


def _append(fh, row: dict) -> None:
    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    fh.flush()


def _score_offline(judge, todo: list[dict], fh) -> None:
    from tqdm import tqdm

    for row in tqdm(todo, desc="scoring", unit="row", disable=len(todo) < 1000):
        row.update(judge.judge(row))
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    fh.flush()


async def _score_async(judge, todo: list[dict], fh) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="judging", unit="row", disable=len(todo) < 20)
    queue: asyncio.Queue = asyncio.Queue()
    for row in todo:
        queue.put_nowait(row)
    failure: list[BaseException] = []
    finished = 0

    async def worker() -> None:
        nonlocal finished
        while not failure:
            try:
                row = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                row.update(await judge.judge(row))
            except Exception as e:  # noqa: BLE001 - stop all workers, keep what is done
                failure.append(e)
                return
            _append(fh, row)
            finished += 1
            bar.update(1)

    async with judge:
        await asyncio.gather(*(worker() for _ in range(max(1, judge.concurrency))))
    bar.close()
    if failure:
        err = failure[0]
        if isinstance(err, UserError):
            raise UserError(f"{err}; {finished} new rows were scored and kept, rerun the same command to resume")
        raise err


def score_file(predictions: str | Path, out_dir: str | Path, judge, task: str | None = None,
               seed: int = 0, bootstrap: int = 1000, report: bool = True, overwrite: bool = False) -> dict:
    """Score ``predictions`` with ``judge`` into ``out_dir``; return the metrics dict."""
    from emoreason.eval.summary import summarize

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [prepare_row(r, task, str(predictions)) for r in read_predictions(predictions)]
    scores_path = out / SCORES
    marker = out / "judge.txt"
    # The judge kind and model, not its address: a restarted server on another port may resume.
    identity = "offline" if not getattr(judge, "is_async", False) else f"llm:{judge.model or 'auto'}"
    if overwrite:
        scores_path.unlink(missing_ok=True)
    elif scores_path.exists() and marker.exists() and marker.read_text().strip() != identity:
        raise UserError(f"{out} holds scores from judge {marker.read_text().strip()!r}, not {identity!r}; "
                        "use another --out or --overwrite")
    marker.write_text(identity + "\n")
    truncate_torn_tail(scores_path)  # a half-written last line (a crash mid-write): new rows start on their own line
    done = _load_done(scores_path)
    todo = [r for r in rows if r["id"] not in done]
    if done:
        log.info("resuming: %d rows already scored, %d to go", len(rows) - len(todo), len(todo))
    with open(scores_path, "a", encoding="utf-8") as fh:
        if getattr(judge, "is_async", False):
            asyncio.run(_score_async(judge, todo, fh))
        else:
            _score_offline(judge, todo, fh)
    done = _load_done(scores_path)
    ordered = [done[r["id"]] for r in rows if r["id"] in done]
    tmp = scores_path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in ordered:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, scores_path)
    metrics = summarize(ordered, seed=seed, resamples=bootstrap)
    metrics["judge"] = getattr(judge, "name", "offline")
    metrics["predictions"] = str(predictions)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    if report:
        from emoreason.eval.report import write_report

        write_report(out, metrics)
    return metrics


__all__ = ["score_file", "prepare_row", "SCALE"]
