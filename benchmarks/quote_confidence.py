"""Quotes that were said: Whisper's word probabilities against what was said, and constrained
quotes at several ``quote_min_probability`` thresholds (issue 11's groundedness target).

    PYTHONPATH=. python benchmarks/quote_confidence.py words   --manifest M --out DIR [--source tiny|base]
    PYTHONPATH=. python benchmarks/quote_confidence.py quotes  --manifest M --out DIR --model RUN_DIR \
        --split dev --thresholds 0,0.3,0.5,0.7 [--source tiny|base] [--explain free|forced] [--batch-size 4]
    PYTHONPATH=. python benchmarks/quote_confidence.py report  --out DIR

``M``: a manifest of emotion rows with reference transcripts and ``split`` dev / test (ours:
``emoreason data synth --n 96 --seed 11 --speakers 8 --tasks emotion --dev-fraction 0.375
--test-fraction 0.375``: espeak-ng speech we made, 3 dev and 3 test speakers, 36 clips each).

``words``: every clip transcribed by a packaged Whisper decoder (``tiny``: whisper-tiny.en, the
demo model's speech encoder; ``base``: whisper-base, the demo model's emotion encoder) through
``WhisperDecoderASR`` (the engine's path, 30 s padded windows), each word with its probability
combined both ways (``min`` and ``mean`` of its tokens') and whether it was said (a
``difflib`` word alignment to the reference). Prints WER per split and, per threshold, the share of
words left quotable and the share of quotable words that were not said; and the AUROC of each
combination for telling misheard words apart. ``quotes``: ``Engine.analyze`` (explain ``free``,
quotes ``constrained``) per clip and threshold. Greedy decoding under a smaller allowed set gives
the same tokens as long as the tokens it picked stay allowed, so a clip is generated again at a
higher threshold only when its answer at the previous one is not valid under it
(``quote_constraint.step``). ``report``: per threshold, quotation %, groundedness vs said and vs
the engine transcript, relevance (0-2 x 50, as ``eval score``), with n and 95% bootstrap CIs.
``quotes`` runs every clip at one threshold (in batches, through ``Engine.load(transcriber=...)``:
tiny is the default transcriber, base ``packaged:whisper-base``) before the next, and records per
clip the transcriber's and the whole analysis's CPU seconds (batch mean) and ``consistent``;
``report`` also prints each source's WER, word-level not-said shares, CPU and the share of
``consistent: false``, on the clips every file of the same explain mode holds; with both
``words`` files, the not-said share of tiny.en's words that whisper-base heard too (the engine's
``--quote-check packaged:whisper-base`` rule) beside tiny.en's words alone. Use one thread
(``OMP_NUM_THREADS=1``) on a shared machine: spinning OpenMP threads inflate the CPU seconds.
Everything is appended per clip to DIR/*.jsonl (a rerun resumes).
"""
from __future__ import annotations

import argparse
import json
import time
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import numpy as np

SOURCES = {"tiny": "whisper-tiny.en", "base": "whisper-base"}


def read_rows(manifest: Path, split: str | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["task"] == "emotion" and (split is None or r["split"] == split)]


def done_ids(path: Path, key: str = "id") -> set:
    if not path.is_file():
        return set()
    return {json.loads(line)[key] for line in path.read_text().splitlines() if line.strip()}


def said_flags(reference: str, words: list[str]) -> list[bool]:
    """Per hypothesis word: whether it is part of a matching run against the reference words
    (normalised as quotes are: ``quote_words``); a word that normalises to nothing counts as said."""
    from emoreason.text.quotes import quote_words

    ref = quote_words(reference)
    hyp_words = [quote_words(w) for w in words]
    flat, owner = [], []
    for i, parts in enumerate(hyp_words):
        flat += parts
        owner += [i] * len(parts)
    hit = np.zeros(len(flat), bool)
    for block in SequenceMatcher(None, ref, flat, autojunk=False).get_matching_blocks():
        hit[block.b:block.b + block.size] = True
    out = [True] * len(words)
    for j, i in enumerate(owner):
        out[i] = out[i] and bool(hit[j])
    return out


class Recorder:
    """Wraps ``whisper_asr.word_probability``: records (min, mean) of every word it combines."""

    def __init__(self) -> None:
        from emoreason.model import whisper_asr

        self.module, self.real, self.seen = whisper_asr, whisper_asr.word_probability, []

    def __enter__(self) -> "Recorder":
        def wrapped(token_probs: np.ndarray, how: str | None = None) -> float:
            self.seen.append((float(token_probs.min()), float(token_probs.mean())))
            return self.real(token_probs, how)

        self.module.word_probability = wrapped
        return self

    def __exit__(self, *exc: Any) -> None:
        self.module.word_probability = self.real


def load_asr(source: str) -> Any:
    from emoreason.model.encoders import WhisperFrames, load_whisper_encoder
    from emoreason.model.whisper_asr import WhisperDecoderASR
    from emoreason.weights.resolve import resolve_packaged

    path = resolve_packaged(SOURCES[source])
    return WhisperDecoderASR.load(path, WhisperFrames(load_whisper_encoder(path)).eval())


def cmd_words(args: argparse.Namespace) -> None:
    import torch

    from emoreason.audio import load_audio

    out = Path(args.out) / f"words-{args.source}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    seen = done_ids(out)
    todo = [r for r in read_rows(Path(args.manifest))[: args.limit or None] if r["id"] not in seen]
    if todo:
        asr = load_asr(args.source)
        with out.open("a") as fh, torch.inference_mode():
            for r in todo:
                wave = load_audio(Path(args.manifest).parent / r["audio"])
                cpu = time.process_time()
                with Recorder() as rec:
                    [found] = asr.transcribe([wave])
                cpu = time.process_time() - cpu
                said = said_flags(r["transcript"], [w["text"] for w in found.words])
                words = [{"text": w["text"], "min": m, "mean": a, "said": s}
                         for w, (m, a), s in zip(found.words, rec.seen, said)]
                fh.write(json.dumps({"id": r["id"], "split": r["split"], "reference": r["transcript"],
                                     "text": found.text, "words": words, "cpu_s": round(cpu, 3)}) + "\n")
                fh.flush()
    report_words(out, [float(t) for t in args.thresholds.split(",")])


def auroc(scores: list[float], positive: list[bool]) -> float:
    """P(score of a said word > score of a misheard one), ties half."""
    pos = np.array([s for s, p in zip(scores, positive) if p])
    neg = np.array([s for s, p in zip(scores, positive) if not p])
    if not pos.size or not neg.size:
        return float("nan")
    return float(((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()))


def report_words(path: Path, thresholds: list[float]) -> None:
    from emoreason.eval.bootstrap import bootstrap_ci, bootstrap_ratio_ci
    from emoreason.eval.wer import utterance_counts

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for split in sorted({r["split"] for r in rows}):
        sub = [r for r in rows if r["split"] == split]
        errors, total = utterance_counts([r["reference"] for r in sub], [r["text"] for r in sub])
        wer = bootstrap_ratio_ci(errors, total, seed=0, scale=100)
        words = [w for r in sub for w in r["words"]]
        said = [w["said"] for w in words]
        print(f"{path.stem} {split}: n={len(sub)} clips, {len(words)} words, WER {wer['value']:.1f} "
              f"[{wer['low']:.1f}, {wer['high']:.1f}], not said {100 * (1 - np.mean(said)):.1f}% of words; "
              f"AUROC min {auroc([w['min'] for w in words], said):.3f} mean {auroc([w['mean'] for w in words], said):.3f}")
        if all("cpu_s" in r for r in sub):  # the transcriber alone: encoder on the padded window + decoder
            cpu = bootstrap_ci([r["cpu_s"] for r in sub], seed=0)
            print(f"{path.stem} {split}: CPU s per clip {cpu['mean']:.2f} [{cpu['low']:.2f}, {cpu['high']:.2f}]")
        for how in ("min", "mean"):
            for t in thresholds:
                kept = [w for w in words if w[how] >= t]
                bad = sum(not w["said"] for w in kept)
                # 95% CI of the not-said share over clips (pairs of per-clip counts resampled)
                per_clip = [[w for w in r["words"] if w[how] >= t] for r in sub]
                ci = bootstrap_ratio_ci([sum(not w["said"] for w in k) for k in per_clip], [len(k) for k in per_clip],
                                        seed=0, scale=100)
                print(f"  {how:4s} >= {t:<4g} quotable {100 * len(kept) / max(1, len(words)):5.1f}% of words, "
                      f"not said {100 * bad / max(1, len(kept)):5.1f}% [{ci['low']:.1f}, {ci['high']:.1f}] of quotable, "
                      f"misheard kept {bad}/{sum(not s for s in said)}")


def report_checked_words(tiny: Path, base: Path, thresholds: list[float]) -> None:
    """The quote check's effect on words (``--quote-check``): tiny.en's words that whisper-base's
    transcript of the same clip also has (``emoreason.text.transcript_check.confirm_words``, the
    engine's own rule), per threshold, beside tiny.en's words alone; the not-said share's 95% CI
    resamples clips. Only the clips both files hold."""
    from emoreason.eval.bootstrap import bootstrap_ratio_ci
    from emoreason.text.transcript_check import confirm_words

    def by_id(path: Path) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}

    mine, theirs = by_id(tiny), by_id(base)
    for split in sorted({r["split"] for r in mine.values()}):
        ids = [i for i, r in mine.items() if r["split"] == split and i in theirs]
        if not ids:
            continue
        for i in ids:
            confirm_words(mine[i]["words"], theirs[i]["words"])
        total = sum(len(mine[i]["words"]) for i in ids)
        print(f"tiny.en checked by base, {split}: n={len(ids)} clips, {total} tiny.en words")
        for t in thresholds:
            for checked in (False, True):
                per_clip = [[w for w in mine[i]["words"] if w["min"] >= t and (w["confirmed"] or not checked)] for i in ids]
                bad, kept = [sum(not w["said"] for w in k) for k in per_clip], [len(k) for k in per_clip]
                ci = bootstrap_ratio_ci(bad, kept, seed=0, scale=100)
                print(f"  P >= {t:<4g} {'checked' if checked else 'alone  '}: quotable {100 * sum(kept) / max(1, total):5.1f}% "
                      f"of words, not said {100 * sum(bad) / max(1, sum(kept)):5.1f}% [{ci['low']:.1f}, {ci['high']:.1f}] "
                      f"of quotable ({sum(bad)}/{sum(kept)})")


def valid(text: str, index: Any) -> bool:
    """Whether every character of ``text`` keeps the quote constraint over ``index`` (fed one
    character at a time: ``step`` reads its text as one token's, within which a closed quote may
    not be followed by an apostrophe)."""
    from emoreason.inference.quote_constraint import step

    state = None
    for c in text:
        state = step(state, c, index)
        if state is False:
            return False
    return True


def load_engine(model: str, source: str) -> tuple[Any, list[float]]:
    """The engine with the ``source`` transcriber (``Engine.load``'s ``transcriber``: tiny is the
    model's speech encoder's own decoder, the default; base the packaged whisper-base), and a
    one-item list that accumulates the CPU seconds its Whisper transcriber spends (encoder on the
    padded window when it cannot reuse frames, decoding, alignment), read around every call."""
    from emoreason.inference.engine import Engine

    engine = Engine.load(model, transcriber=None if source == "tiny" else f"packaged:{SOURCES[source]}")
    spent = [0.0]
    asr = engine._whisper_asr()
    real = asr.transcribe

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return real(*args, **kwargs)
        finally:
            spent[0] += time.process_time() - start

    asr.transcribe = timed
    return engine, spent


def cmd_quotes(args: argparse.Namespace) -> None:
    from emoreason.inference.quote_constraint import TranscriptIndex, quotable_spans

    suffix = "" if args.explain == "free" else f"-{args.explain}"
    out = Path(args.out) / f"quotes-{args.source}-{args.split}{suffix}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    thresholds = sorted(float(t) for t in args.thresholds.split(","))
    done = {(r["id"], r["threshold"]): r for r in
            (json.loads(line) for line in (out.read_text().splitlines() if out.is_file() else []))}
    rows = read_rows(Path(args.manifest), None if args.split == "any" else args.split)[: args.limit or None]
    engine = None
    with out.open("a") as fh:
        def write(row: dict[str, Any]) -> None:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            done[(row["id"], row["threshold"])] = row

        for k, t in enumerate(thresholds):  # every clip at one threshold, then the next
            todo = []
            for r in rows:
                if (r["id"], t) in done:
                    continue
                previous = done.get((r["id"], thresholds[k - 1])) if k else None
                if previous is not None and valid(previous["explanation"], TranscriptIndex(
                        quotable_spans(previous["engine_transcript"], previous["words"], t))):
                    write({**previous, "threshold": t, "reused": True})
                else:
                    todo.append(r)
            for start in range(0, len(todo), args.batch_size):
                batch = todo[start:start + args.batch_size]
                if engine is None:
                    engine, spent = load_engine(args.model, args.source)
                cpu, asr_cpu = time.process_time(), spent[0]
                with Recorder() as rec:
                    results = engine.analyze([str(Path(args.manifest).parent / r["audio"]) for r in batch],
                                             explain=args.explain, transcript="whisper", quotes="constrained",
                                             quote_min_probability=t, max_new_tokens=args.max_new_tokens,
                                             batch_size=args.batch_size)
                cpu = (time.process_time() - cpu) / len(batch)
                asr_cpu = (spent[0] - asr_cpu) / len(batch)
                seen = iter(rec.seen)  # the decoder's words of the batch, in row order
                for r, res in zip(batch, results, strict=True):
                    d = res.to_dict()
                    words = d["transcript"]["words"]
                    write({"id": r["id"], "split": r["split"], "speaker": r["speaker"], "threshold": t,
                           "reused": False, "gold": r["label"], "reference": r["transcript"],
                           "engine_transcript": d["transcript"]["text"], "source": d["transcript"]["source"],
                           "words": [{"text": w["text"], "probability": w["probability"], "mean": next(seen)[1]}
                                     for w in words],
                           "explanation": d["explanation"], "quotes": [q["text"] for q in d["quotes"]],
                           "label": d["label"], "consistent": d["consistent"], "cpu_s": round(cpu, 3),
                           "asr_cpu_s": round(asr_cpu, 3), "batch": len(batch)})


def complete_rows(path: Path) -> list[dict[str, Any]]:
    """A quotes file's rows of the clips it holds at every threshold it holds."""
    every = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    levels = {r["threshold"] for r in every}
    complete = {i for i in {r["id"] for r in every} if {r["threshold"] for r in every if r["id"] == i} == levels}
    return [r for r in every if r["id"] in complete]


def cmd_report(args: argparse.Namespace) -> None:
    from emoreason.eval.bootstrap import bootstrap_ci, bootstrap_ratio_ci
    from emoreason.eval.wer import utterance_counts
    from emoreason.text.quotes import groundedness, relevance

    tiny, base = Path(args.out) / "words-tiny.jsonl", Path(args.out) / "words-base.jsonl"
    if tiny.is_file() and base.is_file():  # both sources' words: what the quote check keeps
        report_checked_words(tiny, base, [0.0, 0.5, 0.7, 0.9])
    files = {path: complete_rows(path) for path in sorted(Path(args.out).glob("quotes-*.jsonl"))}
    # Sources are compared on the same clips: those every file of the same explain mode holds complete.
    common: dict[bool, set] = {}
    for path, rows in files.items():
        forced = path.stem.endswith("-forced")
        ids = {r["id"] for r in rows}
        common[forced] = common[forced] & ids if forced in common else ids
    for path, every in files.items():
        every = [r for r in every if r["id"] in common[path.stem.endswith("-forced")]]
        if not every:
            continue
        print(f"{path.stem}")
        print("| split | threshold | answers | quotation % | groundedness vs said | vs engine transcript | relevance | generated |")
        print("|---|---|---|---|---|---|---|---|")
        for split, t in sorted({(r["split"], r["threshold"]) for r in every}):
            sub = [r for r in every if r["threshold"] == t and r["split"] == split]
            quoted = [r for r in sub if r["quotes"]]
            cells = []
            for values in ([100.0 * bool(r["quotes"]) for r in sub],):
                ci = bootstrap_ci(values, seed=0)
                cells.append(f"{ci['mean']:.1f} [{ci['low']:.1f}, {ci['high']:.1f}]")
            for fn in (lambda r: groundedness(r["quotes"], r["reference"]),
                       lambda r: groundedness(r["quotes"], r["engine_transcript"]),
                       lambda r: relevance(r["quotes"], r["gold"])):
                if quoted:
                    ci = bootstrap_ci([fn(r) for r in quoted], seed=0, scale=50)
                    cells.append(f"{ci['mean']:.1f} [{ci['low']:.1f}, {ci['high']:.1f}] (n={len(quoted)})")
                else:
                    cells.append("- (n=0)")
            print(f"| {split} | {t:g} | {len(sub)} | " + " | ".join(cells) + f" | {sum(not r['reused'] for r in sub)} |")
        first = [r for r in every if r["threshold"] == min(r["threshold"] for r in every)]  # one row per clip
        errors, total = utterance_counts([r["reference"] for r in first], [r["engine_transcript"] for r in first])
        wer = bootstrap_ratio_ci(errors, total, seed=0, scale=100)
        words = [w for r in first for w in r["words"]]
        said = [s for r in first for s in said_flags(r["reference"], [w["text"] for w in r["words"]])]
        print(f"  transcriber {first[0].get('source', '?')}: n={len(first)} clips, WER {wer['value']:.1f} "
              f"[{wer['low']:.1f}, {wer['high']:.1f}]; {len(words)} words, not said {100 * (1 - np.mean(said)):.1f}%; "
              f"AUROC (min prob.) {auroc([w['probability'] for w in words], said):.3f}")
        for t in sorted({r["threshold"] for r in every}):
            kept = [s for w, s in zip(words, said) if w["probability"] >= t]
            print(f"    P >= {t:g}: quotable {100 * len(kept) / max(1, len(words)):.1f}% of words, "
                  f"not said {100 * (1 - np.mean(kept)) if kept else 0:.1f}% of quotable")
        timed = [r for r in every if not r["reused"] and "asr_cpu_s" in r]
        if timed:
            asr = bootstrap_ci([r["asr_cpu_s"] for r in timed], seed=0)
            whole = bootstrap_ci([r["cpu_s"] for r in timed], seed=0)
            print(f"  CPU s per clip (batches of {timed[0]['batch']}, n={len(timed)} generated rows): transcriber "
                  f"{asr['mean']:.2f} [{asr['low']:.2f}, {asr['high']:.2f}], whole analyze {whole['mean']:.2f} "
                  f"[{whole['low']:.2f}, {whole['high']:.2f}]")
        for t in sorted({r["threshold"] for r in every}):
            sub = [r for r in every if r["threshold"] == t]
            ci = bootstrap_ci([100.0 * (r["consistent"] is False) for r in sub], seed=0)
            acc = bootstrap_ci([100.0 * (r["label"] == r["gold"]) for r in sub], seed=0)
            print(f"  P {t:g}: consistent false {ci['mean']:.1f}% [{ci['low']:.1f}, {ci['high']:.1f}] "
                  f"(null {sum(r['consistent'] is None for r in sub)}), forced-choice accuracy {acc['mean']:.1f}% "
                  f"[{acc['low']:.1f}, {acc['high']:.1f}] (n={len(sub)})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("words")
    q = sub.add_parser("quotes")
    r = sub.add_parser("report")
    for s in (w, q, r):
        s.add_argument("--out", required=True)
    for s in (w, q):
        s.add_argument("--manifest", required=True)
        s.add_argument("--source", choices=sorted(SOURCES), default="tiny")
        s.add_argument("--thresholds", default="0,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    q.add_argument("--model", required=True)
    q.add_argument("--split", required=True, help="dev, test, ... or any (the manifest's order)")
    w.add_argument("--limit", type=int, default=0, help="only the first N emotion rows (the manifest's order)")
    q.add_argument("--limit", type=int, default=0)
    q.add_argument("--max-new-tokens", type=int, default=128)
    q.add_argument("--batch-size", type=int, default=4, help="clips per engine call")
    q.add_argument("--explain", choices=["free", "forced"], default="free",
                   help="free (default): the model writes the whole answer; forced: as analyze answers "
                        "(DIR/quotes-SOURCE-SPLIT-forced.jsonl)")
    args = p.parse_args(argv)
    {"words": cmd_words, "quotes": cmd_quotes, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
