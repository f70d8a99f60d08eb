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
from pathlib import Path

from emoreason.errors import UserError
from emoreason.eval.judges import SCALE
from emoreason.text.label_extraction import extract_labels, reference_label
from emoreason.eval.predictions import PredictionsError, read_predictions
from emoreason.text.quotes import extract_quotes, groundedness
from emoreason.jsonl import ResumableJsonl, run_bounded
from emoreason.labels import SENTIMENT, normalize_label, sentiment_of

log = logging.getLogger(__name__)
SCORES = "scores.jsonl"
MIN_JUDGE_SUCCESS = 0.9
"""Default least share of rows per task whose LLM-judge reply could be read; under it the scores
are written but the run fails (a judge that answers nothing usable must not look like a score)."""


class JudgeSuccessTooLow(UserError):
    """An LLM judge's success rate was under the threshold; scores and metrics were still written."""


def _judge_failed(row: dict) -> bool:
    """A row whose judge gave no text at all (after retries): not done, a rerun asks again."""
    return bool((row.get("judge") or {}).get("failed") or (row.get("quote_judge") or {}).get("failed"))


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
        out.update(_quote_references(out))
    return out


def _engine_text(row: dict) -> str | None:
    """The transcript the engine generated with (``eval run``'s ``engine_transcript``), or None."""
    used = row.get("engine_transcript")
    return (used.get("text") or None) if isinstance(used, dict) else None


def _quote_references(row: dict) -> dict:
    """Which transcript the judge holds quotes to, and the engine-transcript grounding.

    The judge's groundedness is against what was *said* (the row's reference ``transcript``) in
    every mode: the product's claim is that a quote was said, and one reference for constrained
    and free answers keeps the two comparable. Only a row without a reference transcript is
    judged against the engine's (``quote_reference: "engine"``). ``groundedness_engine`` (0-2,
    the offline measure) is against the transcript the engine generated with: constrained quotes
    score 2 there by construction, so the gap between the two is the transcriber's error."""
    engine = _engine_text(row)
    out: dict = {}
    if row.get("transcript"):
        out["quote_reference"] = "said"
    elif engine:
        out.update(transcript=engine, quote_reference="engine")
    if engine and row["quotes"]:
        out["groundedness_engine"] = groundedness(row["quotes"], engine)
    return out


def _score_offline(judge, todo: list[dict], out: ResumableJsonl) -> None:
    from tqdm import tqdm

    for row in tqdm(todo, desc="scoring", unit="row", disable=len(todo) < 1000):
        row.update(judge.judge(row))
        out.append(row)


async def _score_async(judge, todo: list[dict], out: ResumableJsonl) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="judging", unit="row", disable=len(todo) < 20)
    finished_before = out.appended

    async def score(row: dict) -> None:
        row.update(await judge.judge(row))
        out.append(row)
        bar.update(1)

    try:
        async with judge:
            await run_bounded(todo, score, judge.concurrency)
    except UserError as e:
        raise UserError(f"{e}; {out.appended - finished_before} new rows were scored and kept, "
                        "rerun the same command to resume") from None
    finally:
        bar.close()


def score_file(predictions: str | Path, out_dir: str | Path, judge, task: str | None = None,
               seed: int = 0, bootstrap: int = 1000, report: bool = True, overwrite: bool = False,
               min_success: float = MIN_JUDGE_SUCCESS) -> dict:
    """Score ``predictions`` with ``judge`` into ``out_dir``; return the metrics dict.

    With an LLM judge, a task whose judge success rate is under ``min_success`` raises
    :class:`JudgeSuccessTooLow` after metrics and report are written.
    """
    from emoreason.eval.summary import summarize

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [prepare_row(r, task, str(predictions)) for r in read_predictions(predictions)]
    scores_path = out / SCORES
    marker = out / "judge.txt"
    # The judge kind and model, not its address: a restarted server on another port may resume.
    # The offline judge's name carries its reading, so literal and default scores are not mixed.
    identity = getattr(judge, "name", "offline") if not getattr(judge, "is_async", False) \
        else f"llm:{judge.model or 'auto'}"
    if overwrite:
        scores_path.unlink(missing_ok=True)
    elif scores_path.exists() and marker.exists() and marker.read_text().strip() != identity:
        raise UserError(f"{out} holds scores from judge {marker.read_text().strip()!r}, not {identity!r}; "
                        "use another --out or --overwrite")
    marker.write_text(identity + "\n")
    # rows with a score are done; a torn last line (a crash mid-write) is cut off and rescored
    scores = ResumableJsonl(scores_path, key=lambda row: str(row["id"]) if "id" in row else None,
                            finished=lambda row: "score" in row and not _judge_failed(row))
    todo = [r for r in rows if r["id"] not in scores]
    if scores.done:
        log.info("resuming: %d rows already scored, %d to go", len(rows) - len(todo), len(todo))
    with scores:
        if getattr(judge, "is_async", False):
            asyncio.run(_score_async(judge, todo, scores))
        else:
            _score_offline(judge, todo, scores)
    ordered = scores.rewrite_in_order(r["id"] for r in rows)
    metrics = summarize(ordered, seed=seed, resamples=bootstrap)
    metrics["judge"] = getattr(judge, "name", "offline")
    metrics["predictions"] = str(predictions)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    if report:
        from emoreason.eval.report import write_report

        write_report(out, metrics)
    if getattr(judge, "is_async", False):
        low = {t: m["success_rate"] for t, m in metrics["tasks"].items() if m.get("success_rate", 1.0) < min_success}
        if low:
            worst = ", ".join(f"{t} {100 * r:.1f}%" for t, r in low.items())
            failed = sum(1 for r in ordered if _judge_failed(r))
            raise JudgeSuccessTooLow(
                f"judge success {worst} is under {100 * min_success:.0f}% ({failed} rows got no text from the judge; "
                f"scores written to {out}); check the judge, then rerun to retry them (--min-judge-success to accept)")
    return metrics


__all__ = ["score_file", "prepare_row", "SCALE"]
