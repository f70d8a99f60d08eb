"""``OUT/report.md`` + self-contained ``OUT/report.html``: the demo's variants side by side.

The comparison table is eval's (:func:`emoreason.eval.compare.compare_table`: one column per dataset
x task, so emotion, sentiment, SQA and ASR WER, as ``eval compare`` prints it), the per-class table
and confusion matrix are those eval wrote for the best variant; this module adds what only the
demo knows: the majority-class baselines, the honest reading of label-only vs reasoning and single vs
dual encoder, quotes held to the transcript vs free, label / explanation disagreement and the
transcriber's WER, stage timings, and the analysed clip (emotion, transcript, one spoken question). The report is built once as data
(:func:`build_demo_report`) and rendered to both formats by :mod:`emoreason.eval.render`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emoreason.demo.budget import rows_text
from emoreason.demo.plan import DemoPlan
from emoreason.eval.render import (Block, Bullets, Image, Inline, Paragraph, Preformatted, Quote, Report, Section,
                                   Table, link, strong, write_report_files)


CI_NOTE = ("95% CIs: percentile bootstrap over the held-out clips (1000 resamples, seeded), for every accuracy "
           "(the judge's, the extracted label's weighted / unweighted, the forced choice's); groundedness and "
           "relevance over the answers whose quotes were judged; ASR over utterances (pooled WER). A difference "
           "between two variants is tested on the same clips: the paired bootstrap interval of the difference.")


def _acc(entry: dict[str, Any]) -> float:
    c = entry.get("classification") or {}
    return float(c.get("weighted_accuracy", entry.get("score", 0.0)))


def _hits(eval_dir: Path, task: str = "emotion", predicted: str = "pred_label") -> dict[str, float]:
    """Row id -> 1.0 when the row's ``predicted`` label is the gold one (``scores.jsonl``):
    ``pred_label`` is the label extracted from the answer, ``model_label`` the engine's forced choice."""
    path = eval_dir / "scores.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["id"]: float(r.get(predicted) == r.get("gold")) for r in rows if r.get("task") == task}


def wordings(test_manifest: Path) -> dict[str, str]:
    """Held-out emotion row id -> ``neutral`` or ``emotional``: whether its sentence's words are
    neutral (synthetic rows' ``meta.wording``); {} when no row says (a real corpus)."""
    from emoreason.jsonl import iter_jsonl

    out = {}
    for _, row in iter_jsonl(test_manifest):
        wording = (row.get("meta") or {}).get("wording")
        if row.get("task") == "emotion" and wording:
            out[row["id"]] = "neutral" if wording == "neutral" else "emotional"
    return out


WORDING_GAP_POINTS = 15.0
"""The report says so when a variant's emotion accuracy on emotion-worded clips is this many points
above its accuracy on neutral-worded ones."""


def wording_section(plan: DemoPlan, eval_dirs: dict[str, Path], wording: dict[str, str], seed: int = 0) -> Section | None:
    """Emotion accuracy (label extracted from the answer, and forced choice) on the held-out clips
    whose sentence is neutral-worded vs emotion-worded, with 95% bootstrap CIs; None unless both
    kinds were evaluated. Real acted corpora speak fixed neutral sentences, so the neutral-worded
    column is the one that says what a model hears in the voice."""
    from emoreason.eval.bootstrap import bootstrap_ci

    def accuracy(hits: dict[str, float], kind: str) -> dict[str, float] | None:
        values = [h for i, h in hits.items() if wording.get(i) == kind]
        return bootstrap_ci(values, seed=seed, scale=100) if values else None

    def cell(hits: dict[str, float], kind: str) -> str:
        ci = accuracy(hits, kind)
        return f"{ci['mean']:.1f}{_ci(ci)} (n={ci['n']})" if ci else "-"

    extracted = {v.name: _hits(eval_dirs[v.name]) for v in plan.variants}
    kinds = {wording[i] for hits in extracted.values() for i in hits if i in wording}
    if kinds != {"neutral", "emotional"}:
        return None
    rows, gaps = [], {}
    for v in plan.variants:
        hits, forced = extracted[v.name], _hits(eval_dirs[v.name], predicted="model_label")
        rows.append([v.name, cell(hits, "neutral"), cell(hits, "emotional"), cell(forced, "neutral"),
                     cell(forced, "emotional")])
        neutral, emotional = accuracy(hits, "neutral"), accuracy(hits, "emotional")
        if neutral and emotional:
            gaps[v.name] = (neutral["mean"], emotional["mean"])
    notes: list[Block] = []
    widest = max(gaps, key=lambda n: gaps[n][1] - gaps[n][0], default=None)
    if widest and gaps[widest][1] - gaps[widest][0] >= WORDING_GAP_POINTS:
        neutral_acc, emotional_acc = gaps[widest]
        notes.append(Paragraph([f"{widest} scores {neutral_acc:.1f}% on neutral words against {emotional_acc:.1f}% on "
                                "emotional words: much of its accuracy comes from what the words say, so expect the "
                                "neutral-words figure, not the headline, on a corpus of acted neutral sentences."]))
    return Section("Emotion accuracy by wording", [
        Table(["variant", "neutral words", "emotional words", "forced choice, neutral words",
               "forced choice, emotional words"], rows),
        Paragraph(["Held-out emotion clips whose sentence has neutral words (the emotion is only in the voice) "
                   "vs words of the emotion (which the transcript can give away); label extracted from the "
                   "generated answer, and the engine's forced choice; % with 95% bootstrap CIs. Public acted "
                   "corpora (RAVDESS, CREMA-D, TESS, EmoDB, SAVEE, ESD) speak fixed neutral sentences, so the "
                   "neutral-words column is the one that tells what a model hears in the voice."]), *notes])


def speaker_norm_section(plan: DemoPlan, eval_dirs: dict[str, Path], normed_dirs: dict[str, Path],
                         seed: int = 0) -> Section | None:
    """Each variant's forced-choice emotion accuracy as evaluated and with every held-out speaker's
    emotion frames normalised (``demo --speaker-norm``; ``normed_dirs``: the variants with an emotion
    encoder), on the same clips, with the paired difference and what was answered; None when no
    variant has both."""
    from collections import Counter

    from emoreason.eval.bootstrap import bootstrap_ci

    def answered(eval_dir: Path, ids: list[str]) -> str:
        path = eval_dir / "scores.jsonl"
        rows = {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r.get("task") == "emotion"}
        counts = Counter(str(rows[i].get("model_label")) for i in ids)
        return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))

    rows = []
    for v in plan.variants:
        if v.name not in normed_dirs:  # no emotion encoder: nothing was normalised
            continue
        raw, normed = _hits(eval_dirs[v.name], predicted="model_label"), _hits(normed_dirs[v.name], predicted="model_label")
        ids = [i for i in raw if i in normed]
        if not ids:
            continue
        a, b = bootstrap_ci([raw[i] for i in ids], seed=seed, scale=100), bootstrap_ci([normed[i] for i in ids], seed=seed, scale=100)
        d = bootstrap_ci([normed[i] - raw[i] for i in ids], seed=seed, scale=100)
        rows.append([v.name, str(len(ids)), f"{a['mean']:.1f}{_ci(a)}", f"{b['mean']:.1f}{_ci(b)}",
                     f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]",
                     answered(eval_dirs[v.name], ids), answered(normed_dirs[v.name], ids)])
    if not rows:
        return None
    return Section("Speaker normalisation (forced choice)", [
        Table(["variant", "clips", "forced choice", "with speaker normalisation", "difference, paired 95% CI",
               "answered", "answered, normalised"], rows),
        Paragraph(["The same held-out emotion clips, the engine's forced choice with each speaker's emotion-encoder "
                   "frames as recorded and normalised from that speaker's statistics (mean and spread over all of the "
                   "speaker's held-out clips, no labels) to the training clips' (per-speaker CMVN; "
                   "`emoreason eval run --speaker-norm`). A large gain says much of the error is the voices being new "
                   "to the model, not the emotions; one label taking most answers in the first 'answered' column is "
                   "the same sign."])])


def paired_difference(a: Path, b: Path, seed: int = 0) -> dict[str, float] | None:
    """Emotion accuracy of evaluation ``a`` minus ``b`` on the clips both scored, in points, with
    its 95% paired percentile-bootstrap interval (``{"mean", "low", "high", "n"}``); None when
    they share no clip."""
    from emoreason.eval.bootstrap import bootstrap_ci

    ha, hb = _hits(a), _hits(b)
    shared = [i for i in ha if i in hb]
    if not shared:
        return None
    return bootstrap_ci([ha[i] - hb[i] for i in shared], seed=seed, scale=100)


def _ci(ci: dict[str, float] | None) -> str:
    return f" [{ci['low']:.1f}, {ci['high']:.1f}]" if ci else ""


def findings(plan: DemoPlan, table: dict[str, dict[str, Any]], best: str, majority: tuple[str, float],
             eval_dirs: dict[str, Path] | None = None) -> list[str]:
    """Plain sentences on what the numbers say (no claim the numbers do not support). With
    ``eval_dirs`` (variant -> its evaluation directory), each comparison carries the paired 95%
    bootstrap interval of the accuracy difference on the same clips."""
    label, rate = majority
    out = []
    best_acc = _acc(table[best])
    best_ci = (table[best].get("classification") or {}).get("ci", {}).get("weighted_accuracy")
    head = (f"Best variant: {best}, emotion accuracy {best_acc:.1f}%{_ci(best_ci)} on held-out speakers; the majority "
            f"class ({label}) is {rate:.1f}%")
    if plan.corpora:  # the 2x-majority bar is the synthetic demo's goal; a real corpus is read against the probe row
        out.append(f"{head}.")
    else:
        verdict = "meets" if best_acc >= 2 * rate else "does NOT meet"
        out.append(f"{head}, so it {verdict} the 2x-majority target ({2 * rate:.1f}%).")
    by_name = {v.name: v for v in plan.variants}

    def compare(a: str, b: str, what: str) -> None:
        if a in table and b in table:
            da, db = _acc(table[a]), _acc(table[b])
            n = table[a].get("n", 0)
            fa, fb = table[a]["forced_choice_accuracy"], table[b]["forced_choice_accuracy"]
            diff = paired_difference(eval_dirs[a], eval_dirs[b], plan.seed) if eval_dirs else None
            if diff is None:
                noise = f"n={n}, so a difference under ~10 points is within noise"
            else:
                inside = diff["low"] <= 0 <= diff["high"]
                noise = (f"{a} minus {b}: {diff['mean']:+.1f} points, paired 95% CI [{diff['low']:+.1f}, "
                         f"{diff['high']:+.1f}] over the same {diff['n']} clips, "
                         + ("which includes 0: not a difference this test set can resolve" if inside else
                            "which excludes 0"))
            if abs(da - db) < 1e-9:
                out.append(f"{what}: {a} and {b} tie at {da:.1f}% (n={n}).")
            else:
                win, lose = (a, b) if da > db else (b, a)
                out.append(f"{what}: {win} beats {lose} by {abs(da - db):.1f} points ({max(da, db):.1f}% vs "
                           f"{min(da, db):.1f}%; forced choice {a} {fa:.1f}% vs {b} {fb:.1f}%; {noise}).")

    for v in plan.variants:
        if v.style == "label":
            for w in plan.variants:
                if w.style != "label" and w.fusion == v.fusion:
                    compare(w.name, v.name, f"Reasoning ({w.style}) vs label-only targets")
    for v in plan.variants:
        if v.fusion == "none":
            for w in plan.variants:
                if w.fusion != "none" and w.style == v.style and not w.transcript_in_prompt:
                    compare(w.name, v.name, "Dual vs single encoder" + (
                        " (same recipe: both with the pooled label token)" if v.pooled
                        else " (the paper's single-encoder baseline: frame tokens only)"))
                elif w.fusion == "none" and w.pooled and not v.pooled and w.style == v.style:
                    compare(w.name, v.name, "Single encoder with vs without the pooled label token")
    for v in plan.variants:
        if v.transcript_in_prompt:
            for w in plan.variants:
                if not w.transcript_in_prompt and (w.style, w.fusion) == (v.style, v.fusion):
                    compare(v.name, w.name, "Transcript in the prompt vs end to end")
    reasoning = [n for n, v in by_name.items() if v.style != "label" and n in table]
    for n in reasoning:
        q = table[n].get("quotes") or {}
        if q:
            fmt = lambda key: f"{q[key]:.1f}{_ci((q.get('ci') or {}).get(key))}" if key in q else "-"  # noqa: E731
            out.append(f"{n} ({q.get('mode', 'free')} quotes): {q.get('quotation', 0):.1f}% of answers quote; groundedness "
                       f"{fmt('groundedness')}, relevance {fmt('relevance')} (0-100; over the {q.get('n_judged', 0)} "
                       f"answers whose quotes were judged).")
    for n in (v.name for v in plan.variants if v.name in table):
        out.append(f"{n}, the other tasks: {_other_tasks(table[n])}.")
    if plan.mode == "tiny":
        out.append("Tiny mode: random tiny models trained for a few steps; these numbers only check the plumbing.")
    return out


def _fmt(section: dict[str, Any] | None, key: str) -> str:
    from emoreason.eval.compare import with_ci

    return with_ci(section, key)


def _constrained_on(eval_dir: Path, ids: list[str], seed: int) -> dict[str, Any] | None:
    """Quote scores of ``eval_dir``'s emotion rows restricted to ``ids`` (the clips the free-quotes
    run regenerated), so constrained and free are compared on the same clips."""
    from emoreason.eval.summary import quote_scores

    path = eval_dir / "scores.jsonl"
    if not path.is_file():
        return None
    wanted = set(ids)
    rows = [r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())
            if r.get("task") == "emotion" and r["id"] in wanted]
    return quote_scores(rows, seed=seed) if rows else None


QUOTE_MODE_HEAD = ["variant", "quotes", "answers", "quotation %", "groundedness vs said", "vs engine transcript",
                   "relevance", "quotes judged"]
ENGINE_HEAD = ["variant", "answers", "label / explanation disagree %", "no label in text", "transcript source",
               "transcriber WER % (emotion clips)", "model's ASR task WER %"]


def quotes_section(plan: DemoPlan, table: dict[str, dict[str, Any]], eval_dirs: dict[str, Path],
                   free_quotes: dict[str, Any] | None) -> Section:
    """Quotes held to the engine's transcript vs free (groundedness against what was said and
    against the engine's transcript, relevance, 95% CIs), every variant's label / explanation
    disagreement (the engine's ``consistent`` false, with n) and the WER of the transcript the
    engine generated with on the held-out speakers beside the model's own ASR task's."""
    def quote_row(name: str, mode: str, n: Any, q: dict[str, Any] | None) -> list[str]:
        q = q or {}
        return [name, mode, str(n), f"{q.get('quotation', 0.0):.1f}", _fmt(q, "groundedness"),
                _fmt(q, "groundedness_engine"), _fmt(q, "relevance"), str(q.get("n_judged", 0))]

    rows = [quote_row(v.name, (table[v.name].get("quotes") or {}).get("mode", "constrained"), table[v.name].get("n", "-"),
                      table[v.name].get("quotes")) for v in plan.variants if v.style != "label" and v.name in table]
    blocks: list[Block] = []
    if free_quotes:
        name, ids = free_quotes["variant"], free_quotes.get("ids") or []
        if len(ids) < table.get(name, {}).get("n", 0):  # the same clips, constrained
            rows.append(quote_row(name, "constrained (same clips)", len(ids),
                                  _constrained_on(eval_dirs[name], ids, plan.seed)))
        rows.append(quote_row(name, "free", free_quotes["n"], free_quotes.get("quotes")))
    if rows:
        blocks += [Table(QUOTE_MODE_HEAD, rows), Paragraph([
            "Quotes 0-100 (0-2 ratings x 50), offline measure, 95% bootstrap CIs over the answers with judged quotes. "
            "constrained: the explanation was generated after the engine's transcript and may quote only its spans "
            "(what `analyze` prints); '+ check W': and only words the second Whisper W heard too (`--quote-check W`; "
            "`analyze` does this only when asked); free: the paper's unconstrained generation. 'vs said': against the corpus "
            "transcript; 'vs engine transcript': against the transcript the engine generated with."
            + (f" The free-quotes pass took {free_quotes.get('seconds', 0.0):.1f} s." if free_quotes else "")])]

    def wer(entry: dict[str, Any]) -> tuple[str, str]:
        t = (entry.get("transcriber") or {}).get("emotion")
        return (t["source"], _fmt(t, "wer") + f" (n={t['n']})") if t else ("none", "-")

    engine_rows = []
    for v in plan.variants:
        entry = table.get(v.name) or {}
        a = (entry.get("agreement") or {}).get("emotion")
        asr = (entry.get("tasks") or {}).get("asr")
        source, transcriber = wer(entry)
        engine_rows.append([v.name, str(a["n"]) if a else "-", _fmt(a, "rate") if a else "-",
                            str(a["undecided"]) if a else "-", source, transcriber,
                            f"{asr['score']:.1f}{_ci(asr.get('ci'))} (n={asr['n']})" if asr else "-"])
    blocks += [Table(ENGINE_HEAD, engine_rows), Paragraph([
        "Emotion rows. disagree: the generated answer commits to another label than the engine's forced choice "
        "(consistent = false), % of the answers with its 95% bootstrap CI; no label in text: consistent = null. "
        "Transcriber WER: the transcript the engine generated with (the speech encoder's Whisper decoder, or the "
        "model's ASR task) against what was said, corpus WER with its bootstrap CI over utterances; the model's ASR "
        "task WER is the asr rows' (lower is better)."])]
    return Section("Quotes, label agreement and transcripts", blocks)


def _other_tasks(entry: dict[str, Any]) -> str:
    """Sentiment accuracy, SQA score and ASR WER of one variant, as a clause."""
    tasks = entry.get("tasks") or {}
    parts = []
    for task, what in (("sentiment", "sentiment accuracy {:.1f}%"), ("sqa", "SQA score {:.1f} (0-100)"),
                       ("asr", "WER {:.1f}% (lower is better)")):
        if task in tasks:
            parts.append(what.format(tasks[task]["score"]) + f" (n={tasks[task]['n']})")
    return "; ".join(parts) or "not evaluated"


def _analysis_lines(a: dict[str, Any]) -> list[str]:
    """The analysed clip (``analysis.json``) as lines: emotion analysis, then ``--task asr`` and
    ``--task sqa`` outputs when present (analyses from before those were added lack them)."""
    scores = ", ".join(f"{k} {v:.2f}" for k, v in sorted(a.get("scores", {}).items(), key=lambda kv: -kv[1]))
    quotes = "; ".join(f'"{q["text"]}"' for q in a.get("quotes", [])) or "(none)"
    cues = a.get("cues") or {}
    cue_text = ", ".join(f"{k} {v}" for k, v in cues.items() if v is not None and k in
                         ("f0_median_hz", "f0_std_semitones", "loudness_dbfs", "speech_s", "pause_count")) or "(none)"
    lines = [
        # a real corpus's clips have no synthetic "wording" (emotional vs neutral sentence)
        f"clip: {a.get('file')} (held-out speaker; gold label {a.get('gold_label')}"
        + (f", {a['wording']} wording)" if a.get("wording") else ")"),
        f"said: {a.get('gold_transcript')}",
        f"model's transcript: {(a.get('transcript') or {}).get('text') if isinstance(a.get('transcript'), dict) else a.get('transcript')}",
        f"model: {a.get('variant')}",
        f"label: {a.get('label')}",
        f"scores: {scores}",
        f"explanation: {a.get('explanation')}",
        f"quotes: {quotes}",
        f"measured cues: {cue_text}",
    ]
    asr = a.get("asr")
    if asr:
        lines.append(f"analyze --task asr: {asr.get('transcript')}")
    sqa = a.get("sqa")
    if sqa:
        lines += [f"analyze --task sqa --question \"{sqa.get('question')}\": {sqa.get('answer')}",
                  f"  reference answer: {sqa.get('reference')} (the demo trains spoken QA on a handful of rows: "
                  "this shows the task runs, not that it was learned; docs/demo.md, \"The numbers, honestly\")"]
    return lines


def format_analysis(a: dict[str, Any]) -> str:
    """The analysed clip as the few lines the CLI prints."""
    return "\n".join("  " + line for line in _analysis_lines(a))


def _read_predictions(eval_dirs: dict[str, Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """variant -> row id -> its predictions.jsonl row (variants without predictions left out)."""
    preds = {}
    for name, d in eval_dirs.items():
        path = d / "predictions.jsonl"
        if path.is_file():
            preds[name] = {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r}
    return preds


def _examples(eval_dirs: dict[str, Path], limit: int = 4) -> Table | None:
    """A few held-out emotion rows with every variant's answer (same rows for all variants)."""
    preds = _read_predictions(eval_dirs)
    if not preds:
        return None
    first = next(iter(preds.values()))
    ids = [i for i, r in first.items() if r["task"] == "emotion"][:limit]
    if not ids:
        return None
    head = ["clip", "gold", "transcript"] + list(preds)
    rows = []
    for i in ids:
        row = first[i]
        rows.append([_clip(i), row["label"], row.get("transcript") or ""]
                    + [preds[n].get(i, {}).get("prediction", "-") for n in preds])
    return Table(head, rows)


def _clip(row_id: str) -> str:
    """``synth/syn00012/emotion`` -> ``syn00012``."""
    return row_id.split("/")[-2] if "/" in row_id else row_id


def _task_examples(eval_dirs: dict[str, Path], per_task: int = 2) -> Table | None:
    """A few held-out sentiment, asr and sqa rows: what was asked, the reference, every variant's output."""
    preds = _read_predictions(eval_dirs)
    if not preds:
        return None
    first = next(iter(preds.values()))
    ids = [i for task in ("sentiment", "asr", "sqa") for i in [i for i, r in first.items() if r["task"] == task][:per_task]]
    if not ids:
        return None
    rows = [[first[i]["task"], _clip(i), first[i].get("question") or "", first[i].get("reference") or ""]
            + [preds[n].get(i, {}).get("prediction", "-") for n in preds] for i in ids]
    return Table(["task", "clip", "asked", "reference"] + list(preds), rows)


def _results_table(plan: DemoPlan, table: dict[str, dict[str, Any]], eval_dirs: dict[str, Path]) -> Table:
    """eval's comparison table across the variants (``eval compare``'s layout: one column per
    dataset x task with its 95% CI), plus the engine's forced-choice accuracy per classification task."""
    from emoreason.eval.compare import compare_table

    names = [v.name for v in plan.variants]
    head, rows = compare_table([eval_dirs[n] for n in names], names)

    def forced(name: str, task: str) -> str:
        value = (table[name].get("forced_choice") or {}).get(task)
        return f"{value:.1f}{_ci((table[name].get('forced_choice_ci') or {}).get(task))}" if value is not None else "-"

    return Table(head + ["forced-choice acc", "forced-choice sentiment"],
                 [r + [forced(n, "emotion"), forced(n, "sentiment")] for r, n in zip(rows, names)])


def build_demo_report(out: Path, *, plan: DemoPlan, corpus: dict[str, Any], targets: dict[str, Any],
                      testset: dict[str, Any], table: dict[str, dict[str, Any]], best: str,
                      majorities: dict[str, tuple[str, float]], analysis: dict[str, Any], timings: dict[str, float],
                      eval_dirs: dict[str, Path], probe: dict[str, Any] | None = None,
                      budget: dict[str, Any] | None = None, free_quotes: dict[str, Any] | None = None,
                      speaker_norm_dirs: dict[str, Path] | None = None) -> Report:
    """The demo report as data (see :func:`write_demo_report` for the arguments)."""
    from emoreason.eval.report import class_table  # eval's per-class table layout

    speakers = corpus.get("speakers", {})
    counts = ", ".join(f"{n} {t} rows" for t, n in (testset.get("rows") or {}).items())
    intro = Paragraph([
        "Mode ", strong(plan.mode),
        ": " + (corpus.get("description") or f"{plan.utterances} synthetic utterances (espeak-ng and flite) from {plan.speakers} speakers")
        + "; "
        f"trained on speakers {', '.join(speakers.get('train', []))}; evaluated on held-out speakers "
        f"{', '.join(speakers.get('test', []))} ({counts}). Targets from the offline teacher; scores from the "
        f"offline judge: emotion (ER) and sentiment (SR) accuracy with the label extracted from the generated "
        f"answer, SQA a 0-5 rating of the answer (x20), ASR the corpus WER of the model's transcript "
        f"(lower is better; not in 'avg'). 'forced-choice' is the engine's label (scores of the label sentences)."])
    variants = Table(["variant", "targets", "encoders", "what"],
                     [[v.name, v.style, "speech + emotion" if v.fusion != "none" else "speech only", v.description]
                      for v in plan.variants])
    sections = [
        Section("Variants", [variants]),
        Section("Results on held-out speakers", [
            _results_table(plan, table, eval_dirs),
            Paragraph(["Majority-class rate: " + "; ".join(f"{t} {rate:.1f}% ({label})"
                                                           for t, (label, rate) in majorities.items()) + "."]),
            Paragraph([CI_NOTE])]),
        Section("Findings", [Bullets(findings(plan, table, best, majorities["emotion"], eval_dirs))]),
        quotes_section(plan, table, eval_dirs, free_quotes),
    ]
    by_wording = wording_section(plan, eval_dirs, wordings(out / "testset" / "test.jsonl"))
    if by_wording:
        sections.insert(2, by_wording)  # right after the results it splits
    if probe:
        sections.append(_probe_section(plan, table, best, probe))
    normed = speaker_norm_section(plan, eval_dirs, speaker_norm_dirs) if speaker_norm_dirs else None
    if normed:
        sections.append(normed)
    best_cls = table[best].get("classification")
    if best_cls:
        blocks: list[Block] = [class_table(best_cls)]
        png = eval_dirs[best] / "confusion.png"
        if png.is_file():
            blocks.append(Image(f"confusion matrix of {best}", png.relative_to(out).as_posix(), png.read_bytes()))
        sections.append(Section(f"{best}: per-class accuracy", blocks))
    sections.append(Section("One held-out clip through the inference engine",
                            [Preformatted("\n".join(_analysis_lines(analysis)))]))
    examples = _examples(eval_dirs)
    if examples:
        sections.append(Section("Example answers (same clips, every variant)", [examples]))
    task_examples = _task_examples(eval_dirs)
    if task_examples:
        sections.append(Section("Sentiment, ASR and SQA examples (every variant)", [task_examples]))
    if targets.get("example_target"):
        sections.append(Section("A detailed reasoning target (offline teacher)", [Quote(targets["example_target"])]))
    time_rows = [[k, f"{v:.1f}"] for k, v in timings.items()]
    time_rows.append(["total (sum of stages, as first run)", f"{sum(timings.values()):.1f}"])
    reports: list[Inline] = ["Per-variant evaluation reports: "]
    for i, v in enumerate(plan.variants):
        reports += [", "] if i else []
        reports.append(link(v.name, f"{eval_dirs[v.name].relative_to(out).as_posix()}/report.html"))
    timing_blocks: list[Any] = [Table(["stage", "seconds"], time_rows), Paragraph(reports)]
    if budget is not None:
        fits = "; ".join(f"{name} {fit['steps']} of {fit['planned_steps']} steps"
                         + (f" ({' '.join(fit['overrides'])})" if fit["overrides"] else "")
                         for name, fit in budget["variants"].items())
        evaluation = ""
        if "eval_s_estimate" in budget:
            evaluation = (f" Evaluation estimated at {budget['eval_s_estimate']:.0f} s (Whisper {budget['whisper_s_per_clip']:.2f} s "
                          f"a clip, {budget['row_s']:.2f} s a row + {budget['token_s']:.3f} s an answer token, measured "
                          "with the warm-up model; a batch decodes as long as the variant's longest training target of its task)")
            if budget.get("test_rows"):
                evaluation += (f": to fit, the held-out rows were cut to {rows_text(budget['test_rows'])} "
                               f"(planned {rows_text(budget['planned_test_rows'])}), so the CIs are wider than the full plan's")
            evaluation += "."
            if budget.get("refit_test_rows"):
                evaluation += (f" Training took longer than planned ({budget.get('train_s_estimate', 0):.0f} s), so after it "
                               f"the held-out rows were cut to {rows_text(budget['refit_test_rows'])} to finish in time.")
        scaled = budget.get("step_s_by_variant") or {}
        others = "; ".join(f"{n} {s:.2f} s" for n, s in scaled.items() if n != budget.get("measured_on"))
        estimated = f" (the others' estimated from their rows' lengths: {others})" if others else ""
        timing_blocks.append(Paragraph([
            f"Time budget {budget['budget_min']:g} min (--time-budget): {budget['step_s']:.2f} s per training step "
            f"measured on {budget.get('measured_on', '?')}{estimated}, {budget['train_s_per_variant']:.0f} s of training "
            f"per variant on average: {fits}.{evaluation}"]))
    sections.append(Section("Stage timings (seconds)", timing_blocks))
    return Report("emoreason demo report", [intro], sections)


def _probe_section(plan: DemoPlan, table: dict[str, dict[str, Any]], best: str, probe: dict[str, Any]) -> Section:
    """The linear probe (same training clips, same held-out emotion rows) beside every variant, and
    one line when the best variant is more than 5 unweighted points below it."""
    from emoreason.eval.probe import gap_note, probe_cells

    acc, ua = probe_cells(probe)
    rows = [["linear probe on the frozen emotion encoder", acc, ua]]
    for v in plan.variants:
        c = table[v.name].get("classification") or {}
        rows.append([v.name, f"{c.get('weighted_accuracy', 0.0):.1f}", f"{c.get('unweighted_accuracy', 0.0):.1f}"])
    blocks: list[Block] = [
        Table(["emotion, held-out speakers", "accuracy", "unwt accuracy"], rows),
        Paragraph([f"Probe: logistic regression on mean + std of the emotion encoder's frames, fitted on the "
                   f"{probe['n_train']} training emotion clips, scored on the {probe['n_test']} held-out ones "
                   "(95% bootstrap CIs); variants: label extracted from the generated answer."])]
    c = table[best].get("classification")
    note = gap_note(c["unweighted_accuracy"], probe, f"The best variant ({best})") if c else None
    if note:
        blocks.append(Paragraph([note]))
    return Section("Baseline: linear probe", blocks)


def write_demo_report(out: Path, *, plan: DemoPlan, corpus: dict[str, Any], targets: dict[str, Any],
                      testset: dict[str, Any], table: dict[str, dict[str, Any]], best: str,
                      majorities: dict[str, tuple[str, float]], analysis: dict[str, Any], timings: dict[str, float],
                      eval_dirs: dict[str, Path], probe: dict[str, Any] | None = None,
                      budget: dict[str, Any] | None = None, free_quotes: dict[str, Any] | None = None,
                      speaker_norm_dirs: dict[str, Path] | None = None) -> tuple[Path, Path]:
    """Write ``out/report.md`` and ``out/report.html``; return their paths.

    ``corpus`` / ``targets`` / ``testset``: those stages' results (``testset["rows"]``: task -> rows
    evaluated); ``table``: variant -> :func:`~emoreason.demo.pipeline.evaluation_summary`;
    ``best``: the variant whose per-class table, confusion matrix and analysed clip are shown;
    ``majorities``: task (emotion, sentiment) -> (majority label, its % of the held-out rows);
    ``timings``: stage -> seconds; ``eval_dirs``: variant -> its evaluation directory under ``out``;
    ``probe``: the linear-probe baseline's ``probe.json`` (a section beside the variants), or None;
    ``budget``: the ``--time-budget`` fit (:func:`emoreason.demo.budget.plan_budget`), None without one;
    ``free_quotes``: the free-quotes pass (:meth:`emoreason.demo.pipeline.Demo.evaluate_free_quotes`), or None;
    ``speaker_norm_dirs``: variant -> its ``--speaker-norm`` forced-choice evaluation, or None.
    """
    report = build_demo_report(out, plan=plan, corpus=corpus, targets=targets, testset=testset, table=table,
                               best=best, majorities=majorities, analysis=analysis, timings=timings,
                               eval_dirs=eval_dirs, probe=probe, budget=budget, free_quotes=free_quotes,
                               speaker_norm_dirs=speaker_norm_dirs)
    return write_report_files(report, out)
