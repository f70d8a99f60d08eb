"""Per-task headline numbers from scored rows (what metrics.json holds)."""
from __future__ import annotations

from emoreason.eval.bootstrap import bootstrap_ci
from emoreason.eval.judges import SCALE
from emoreason.eval.metrics import classification_metrics
from emoreason.eval.wer import corpus_wer
from emoreason.labels import IEMOCAP, MELD_EMOTION, SENTIMENT


def _label_order(task: str, gold: list[str]) -> list[str] | None:
    """A stable class order: the corpus vocabulary that covers the gold labels, else by frequency."""
    vocab = [SENTIMENT] if task == "sentiment" else [MELD_EMOTION, IEMOCAP]
    for v in vocab:
        if set(gold) <= set(v):
            return [l for l in v if l in set(gold)]
    return None


def summarize(rows: list[dict], seed: int = 0, resamples: int = 1000) -> dict:
    """metrics.json content: per task ``score`` (0-100; ASR: corpus WER %), 95% bootstrap CI,
    judge success rate, classification metrics (emotion / sentiment) and quote scores."""
    tasks: dict[str, dict] = {}
    for task in sorted({r["task"] for r in rows}):
        sub = [r for r in rows if r["task"] == task]
        m: dict = {"n": len(sub)}
        if task == "asr":
            w = corpus_wer([r["reference"] for r in sub], [r["prediction"] for r in sub])
            m.update({"score": 100 * w["wer"], "metric": "WER % (lower is better)", "wer": w})
            per = [r["score"] for r in sub]
            ci = bootstrap_ci(per, resamples=resamples, seed=seed, scale=100)
            m["ci"] = {"low": ci["low"], "high": ci["high"], "note": "bootstrap of the mean utterance WER"}
        else:
            scale = SCALE[task]
            ci = bootstrap_ci([r["score"] for r in sub], resamples=resamples, seed=seed, scale=scale)
            fails = sum(1 for r in sub if not r.get("success", True))
            m.update({"score": ci["mean"], "metric": "judge score (0-100)", "ci": {"low": ci["low"], "high": ci["high"]},
                      "success_rate": 1 - fails / len(sub), "parse_failures": fails})
        if task in ("emotion", "sentiment"):
            gold = [r["gold"] for r in sub]
            m["classification"] = classification_metrics(gold, [r.get("pred_label") for r in sub], _label_order(task, gold))
            quoted = [r for r in sub if r.get("quotes")]
            judged = [r for r in quoted if "groundedness" in r]
            q = {"quotation": 100 * len(quoted) / len(sub), "n_quoted": len(quoted), "n_judged": len(judged)}
            if judged:
                q["groundedness"] = 50 * sum(r["groundedness"] for r in judged) / len(judged)
                q["relevance"] = 50 * sum(r["relevance"] for r in judged) / len(judged)
            m["quotes"] = q
        tasks[task] = m
    return {"n": len(rows), "seed": seed, "bootstrap_resamples": resamples, "tasks": tasks}
