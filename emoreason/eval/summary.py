"""Per-task headline numbers from scored rows (what metrics.json holds)."""
from __future__ import annotations

from emoreason.eval.bootstrap import bootstrap_balanced_ci, bootstrap_ci, bootstrap_ratio_ci
from emoreason.eval.judges import SCALE
from emoreason.eval.metrics import classification_metrics
from emoreason.eval.wer import corpus_wer, utterance_counts
from emoreason.labels import IEMOCAP, MELD_EMOTION, SENTIMENT


def _label_order(task: str, gold: list[str]) -> list[str] | None:
    """A stable class order: the corpus vocabulary that covers the gold labels, else by frequency."""
    vocab = [SENTIMENT] if task == "sentiment" else [MELD_EMOTION, IEMOCAP]
    for v in vocab:
        if set(gold) <= set(v):
            return [l for l in v if l in set(gold)]
    return None


def headline(task: str, rows: list[dict], seed: int = 0, resamples: int = 1000) -> dict:
    """``n``, ``score`` (0-100; ASR: corpus WER %), ``metric`` and the 95% bootstrap ``ci`` of one
    task's scored rows (judge success rate too for judged tasks)."""
    m: dict = {"n": len(rows)}
    if task == "asr":
        refs, hyps = [r["reference"] for r in rows], [r["prediction"] for r in rows]
        errors, words = utterance_counts(refs, hyps)
        # Resample utterances and pool their errors: the interval of the corpus WER itself.
        ci = bootstrap_ratio_ci(errors, words, resamples=resamples, seed=seed, scale=100)
        m.update({"score": ci["value"], "metric": "WER % (lower is better)", "wer": corpus_wer(refs, hyps),
                  "ci": {"low": ci["low"], "high": ci["high"], "note": "bootstrap of the corpus WER over utterances"}})
    else:
        ci = bootstrap_ci([r["score"] for r in rows], resamples=resamples, seed=seed, scale=SCALE[task])
        fails = sum(1 for r in rows if not r.get("success", True))
        m.update({"score": ci["mean"], "metric": "judge score (0-100)", "ci": {"low": ci["low"], "high": ci["high"]},
                  "success_rate": 1 - fails / len(rows), "parse_failures": fails})
    return m


def _interval(ci: dict[str, float]) -> dict[str, float]:
    return {"low": ci["low"], "high": ci["high"]}


def classification_cis(rows: list[dict], seed: int = 0, resamples: int = 1000) -> dict[str, dict[str, float]]:
    """95% percentile-bootstrap intervals (over rows) of the extracted-label accuracies of one
    classification task's scored rows: ``{"weighted_accuracy": {"low", "high"}, "unweighted_accuracy": ...}``
    (unweighted: the per-class mean recomputed in each resample, :func:`bootstrap_balanced_ci`)."""
    hits = [float(r.get("pred_label") == r["gold"]) for r in rows]
    gold = [r["gold"] for r in rows]
    return {"weighted_accuracy": _interval(bootstrap_ci(hits, resamples=resamples, seed=seed, scale=100)),
            "unweighted_accuracy": _interval(bootstrap_balanced_ci(hits, gold, resamples=resamples, seed=seed, scale=100))}


def quote_scores(rows: list[dict], seed: int = 0, resamples: int = 1000) -> dict:
    """Quote scores of one classification task's scored rows: ``quotation`` (% of answers that
    quote), ``n_quoted``, ``n_judged``; with judged quotes, ``groundedness`` / ``relevance``
    (0-2 ratings x 50) and ``ci``: their 95% bootstrap intervals over the judged answers."""
    quoted = [r for r in rows if r.get("quotes")]
    judged = [r for r in quoted if "groundedness" in r]
    q: dict = {"quotation": 100 * len(quoted) / len(rows), "n_quoted": len(quoted), "n_judged": len(judged)}
    if judged:
        q["ci"] = {}
        for key in ("groundedness", "relevance"):
            ci = bootstrap_ci([r[key] for r in judged], resamples=resamples, seed=seed, scale=50)
            q[key] = ci["mean"]
            q["ci"][key] = _interval(ci)
        against = sorted({r.get("quote_reference", "said") for r in judged})
        q["judged_against"] = "+".join(against)  # "said": the reference transcript; "engine": the engine's
    engine = [r["groundedness_engine"] for r in quoted if "groundedness_engine" in r]
    if engine:  # against the transcript the engine generated with (eval run's engine_transcript)
        ci = bootstrap_ci(engine, resamples=resamples, seed=seed, scale=50)
        q["groundedness_engine"], q["n_engine"] = ci["mean"], len(engine)
        q.setdefault("ci", {})["groundedness_engine"] = _interval(ci)
    modes = sorted({r["quotes_mode"] + (f" + check {r['quote_check']}" if r.get("quote_check") else "")
                    for r in rows if r.get("quotes_mode")})
    if modes:  # e.g. "constrained + check packaged:whisper-base": quotes held to words both Whispers heard
        q["mode"] = "+".join(modes)
    thresholds = sorted({float(r.get("quote_min_probability", 0.0)) for r in rows if r.get("quotes_mode") == "constrained"})
    if thresholds:  # constrained quotes: only Whisper words of at least this probability (eval run records it)
        q["min_probability"] = thresholds[0] if len(thresholds) == 1 else thresholds
    return q


def agreement(rows: list[dict], seed: int = 0, resamples: int = 1000) -> dict | None:
    """Label / explanation disagreement of one classification task's rows that carry the engine's
    ``consistent`` (``eval run --model``): ``n``, ``disagree`` (consistent false: the text commits to
    another label than the forced choice), ``undecided`` (null: it commits to none), ``rate`` (%
    of n that disagree) with its 95% bootstrap interval ``ci.rate``; None when no row carries it."""
    seen = [r for r in rows if "consistent" in r]
    if not seen:
        return None
    flags = [float(r["consistent"] is False) for r in seen]
    ci = bootstrap_ci(flags, resamples=resamples, seed=seed, scale=100)
    return {"n": len(seen), "disagree": int(sum(flags)), "undecided": sum(r["consistent"] is None for r in seen),
            "rate": ci["mean"], "ci": {"rate": _interval(ci)}}


def transcriber_wer(rows: list[dict], seed: int = 0, resamples: int = 1000) -> dict | None:
    """Corpus WER (%) of the transcripts the engine generated with (``engine_transcript``) against
    the rows' reference transcripts, with the 95% bootstrap interval over utterances (``ci.wer``) and the
    transcript ``source`` (whisper | model-asr); None when no row has both."""
    pairs = [(r["transcript"], r["engine_transcript"]["text"], r["engine_transcript"].get("source")) for r in rows
             if isinstance(r.get("engine_transcript"), dict) and r.get("quote_reference", "said") == "said"
             and r.get("transcript")]
    if not pairs:
        return None
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    errors, words = utterance_counts(refs, hyps)
    ci = bootstrap_ratio_ci(errors, words, resamples=resamples, seed=seed, scale=100)
    return {"source": "+".join(sorted({str(p[2]) for p in pairs})), "n": len(pairs), "wer": ci["value"],
            "ci": {"wer": {"low": ci["low"], "high": ci["high"]}}}


def summarize(rows: list[dict], seed: int = 0, resamples: int = 1000) -> dict:
    """metrics.json content: per task ``score`` (0-100; ASR: corpus WER %), 95% bootstrap CI,
    judge success rate, classification metrics (emotion / sentiment, with ``ci`` of the weighted
    and unweighted accuracy) and quote scores (with ``ci`` of groundedness / relevance), and for
    rows from ``eval run --model`` the label / explanation ``agreement``, the ``transcriber``'s WER and
    ``speaker_norm`` (``{"n"}`` rows made with each speaker's emotion frames normalised); and
    ``datasets``: the headline per (row ``source``, task), the cells of the paper's tables."""
    tasks: dict[str, dict] = {}
    for task in sorted({r["task"] for r in rows}):
        sub = [r for r in rows if r["task"] == task]
        m = headline(task, sub, seed, resamples)
        if task in ("emotion", "sentiment"):
            gold = [r["gold"] for r in sub]
            m["classification"] = classification_metrics(gold, [r.get("pred_label") for r in sub], _label_order(task, gold))
            m["classification"]["ci"] = classification_cis(sub, seed, resamples)
            m["quotes"] = quote_scores(sub, seed, resamples)
            for key, value in (("agreement", agreement(sub, seed, resamples)),
                               ("transcriber", transcriber_wer(sub, seed, resamples))):
                if value is not None:
                    m[key] = value
            normed = sum(bool(r.get("speaker_norm")) for r in sub)
            if normed:  # eval run --speaker-norm: each speaker's emotion frames were normalised
                m["speaker_norm"] = {"n": normed}
        tasks[task] = m
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("source") or "", r["task"]), []).append(r)
    datasets = [{"source": source or None, "task": task, **headline(task, sub, seed, resamples)}
                for (source, task), sub in sorted(groups.items())]
    return {"n": len(rows), "seed": seed, "bootstrap_resamples": resamples, "tasks": tasks, "datasets": datasets}
