"""The demo pipeline: synthetic corpus -> teacher targets -> mini AudioLLMs -> evaluation -> report
-> one analysed clip. Every stage is a :class:`~emoreason.demo.stages.StageRunner` stage, so a rerun
reuses what finished and a changed parameter reruns only what depends on it.

Layout of ``OUT`` (default ``demo_out``)::

    corpus/            synthetic speech (wavs/, manifest.jsonl)           stage "corpus"
    targets/           teach_{label,summary,detailed}.jsonl (all rows; with --corpus the rows trained on), stage "targets"
                       train_{style}.jsonl (the rows trained on), teach.cache.jsonl (each clip's measured cues)
    testset/           test.jsonl: held-out speakers' rows of every task  stage "testset"
    runs/VARIANT/      emoreason train run directory (config.yaml, checkpoints/, final/)
    eval/VARIANT/      predictions.jsonl, scores.jsonl, metrics.json, report.{md,html}, confusion.png
                       (transcript from the engine, quotes held to it: what `analyze` prints)
    eval-free/VARIANT/ the first reasoning variant's emotion rows again with free quotes (the paper's
                       unconstrained generation), for the constrained vs free comparison
    analysis/          analysis.json (one held-out clip: emotion, asr and sqa through the engine)
    report.md, report.html   the comparison of the variants
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from emoreason.configs import find_config
from emoreason.demo.plan import EVAL_BATCH_SIZE, STYLES, DemoPlan, Variant
from emoreason.demo.stages import StageRunner
from emoreason.errors import UserError

log = logging.getLogger(__name__)

SPEECH_TASKS = ("asr", "sqa", "st")
"""The speech group of the default ``data.task_groups`` (the alternating schedule's S phase)."""
EVAL_TRANSCRIPT = "auto"
"""Every variant is evaluated as ``analyze`` answers: a transcript from the speech encoder's Whisper
decoder (else the model's ASR task) and quotes held to it (``eval run``'s defaults)."""
EVAL_QUOTE_CHECK = "packaged:whisper-base"
"""The second Whisper of the evaluation's constrained quotes (``eval run --quote-check``): quotes
hold only words both it and the speech encoder's Whisper heard (docs/evaluation.md), for models
whose speech encoder has a Whisper decoder (:func:`quote_check_for`). Every variant and the
free-quotes pass share one transcript cache, so each held-out clip is transcribed once per Whisper."""
OTHER_LANGUAGE_TRANSCRIBER = "packaged:whisper-base"
"""The evaluation's Whisper for a corpus in another language than English (``meta.language`` of its
held-out rows, as the importers write it: EmoDB ``de``): the packaged speech encoder tiny.en
transcribes English only, whisper-base (the mini model's emotion encoder) is multilingual. No quote
check then: no second multilingual Whisper is packaged."""
EVAL_FRAME_CACHE_MB = 1024
"""Memory bound of the evaluation's shared frame cache (the full demo's 212 held-out clips take
~0.2 GB for both encoders of ~3 s clips; clips evicted past the bound are encoded again)."""
EVAL_FRAMES = "per-clip cache"
"""How the evaluation encodes (an evaluation stage parameter, so an out dir evaluated before the
cache re-evaluates): each held-out clip alone at the frozen encoder's precision, as training's
frame cache does (the batched bf16-autocast path before it: 7.3 s a variant vs 4.1 s for the first
and ~0.1 s for each later one, on the full demo's 212 rows)."""
PROBE_FRAME_CACHE_MB = 256
"""Memory bound of the probe stage's view of the training frame cache (it reads each clip once)."""
FREE_QUOTE_ROWS = {"tiny": 2, "quick": 8, "full": 80}
"""Emotion rows the free-quotes comparison regenerates, per demo mode (0: every held-out one):
one extra generation pass of one variant. The full demo's 80 are the first half of the held-out
ranking, 20 per held-out speaker: free quotes were invented in every answer on all 160 (groundedness
0.0, docs/demo.md), so the other half would only add time."""

SHORT_FIT = 0.6
"""A budget that leaves a variant under this share of its planned steps says the comparison is
weak at that budget (docs/demo.md: at 30 of 60 steps detailed-dual's free answers named no label
or another label than its forced choice in 15 of the 40 held-out clips)."""
REFIT = "refit.json"
"""The budget stage's record of the cut made after training (:meth:`Demo.refit`)."""
REFIT_ROWS = "test_refit.jsonl"


def first_rows(rows: list[dict[str, Any]], counts: dict[str, int]) -> list[dict[str, Any]]:
    """The first ``counts[task]`` rows of each task, in order: the test set is in rank order
    (held-out speakers in turn, each speaker's emotions in turn), so a cut keeps every held-out
    speaker's and emotion's share."""
    kept = {t: 0 for t in counts}
    out = []
    for r in rows:
        if kept.get(r["task"], 0) < counts.get(r["task"], 0):
            kept[r["task"]] += 1
            out.append(r)
    return out


def _stable_rank(row_id: str, seed: int) -> str:
    """Order rows by a hash of (seed, id): the same utterances are picked for every target style."""
    return hashlib.sha256(f"{seed}|{row_id}".encode()).hexdigest()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    from emoreason.data.manifest import write_manifest

    write_manifest(path, rows)


def select_train_rows(rows: list[dict[str, Any]], caps: dict[str, int], seed: int) -> list[dict[str, Any]]:
    """Rows of the ``train`` split, at most ``caps[task]`` per task (0: all; tasks not in caps dropped),
    chosen by a stable hash of the row id; returned in manifest order."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("split") == "train" and r["task"] in caps:
            by_task.setdefault(r["task"], []).append(r)
    keep: set[str] = set()
    for task, task_rows in by_task.items():
        ranked = sorted(task_rows, key=lambda r: _stable_rank(r["id"], seed))
        keep.update(r["id"] for r in ranked[: caps[task] or None])
    return [r for r in rows if r["id"] in keep]


def _clip_ranks(test: list[dict[str, Any]], seed: int) -> dict[str, tuple[int, str]]:
    """Each held-out clip's sort key: (its position in its speaker's sequence, a hash of the speaker).

    Sorting by it takes the speakers in turn; each speaker's sequence takes the emotions (of the
    clip's emotion row) in turn, each emotion's clips in a seeded hash order, and starts its cycle of
    emotions one further along than the speaker before it. So the first N clips of the ranking are
    as even over speakers and, within that, over emotions as N allows (a budget that keeps 40 of 160
    clips keeps 10 of each speaker and 10 of each emotion), not whatever a hash happened to pick.
    """
    speaker_of: dict[str, str] = {}
    emotion_of: dict[str, str] = {}
    for r in test:
        speaker_of.setdefault(r["audio"], str(r.get("speaker")))
        if r["task"] == "emotion":
            emotion_of[r["audio"]] = str(r.get("label") or "")
    clips: dict[str, dict[str, list[str]]] = {}  # speaker -> emotion -> clips
    for audio, speaker in speaker_of.items():
        clips.setdefault(speaker, {}).setdefault(emotion_of.get(audio, ""), []).append(audio)
    emotions = sorted({e for by_emotion in clips.values() for e in by_emotion}, key=lambda e: _stable_rank(e, seed))
    ranks: dict[str, tuple[int, str]] = {}
    for turn, speaker in enumerate(sorted(clips, key=lambda s: _stable_rank(s, seed))):
        queues = {e: sorted(a, key=lambda a: _stable_rank(a, seed), reverse=True) for e, a in clips[speaker].items()}
        cycle = [e for j in range(len(emotions)) if (e := emotions[(turn + j) % len(emotions)]) in queues]
        position = 0
        while any(queues.values()):
            for e in cycle:
                if queues[e]:
                    ranks[queues[e].pop()] = (position, _stable_rank(speaker, seed))
                    position += 1
    return ranks


def select_test_rows(rows: list[dict[str, Any]], caps: dict[str, int], seed: int) -> list[dict[str, Any]]:
    """Rows of the ``test`` split, at most ``caps[task]`` per task (0: all; tasks not in caps
    dropped). Clips are ranked once (:func:`_clip_ranks`: the held-out speakers in turn, each
    speaker's emotions in turn), so a limit takes clips of every held-out speaker and emotion
    evenly, and a task with a smaller cap is evaluated on a subset of the clips of a task with a
    larger one. Returned task by task (``caps`` order), in rank order."""
    test = [r for r in rows if r.get("split") == "test"]
    rank = _clip_ranks(test, seed)
    out: list[dict[str, Any]] = []
    for task, cap in caps.items():
        task_rows = sorted((r for r in test if r["task"] == task), key=lambda r: rank[r["audio"]])
        out += task_rows[:cap] if cap else task_rows
    return out


def majority_rate(labels: list[str]) -> tuple[str, float]:
    """(most frequent label, its share in percent) of the gold labels."""
    if not labels:
        return "", 0.0
    counts: dict[str, int] = {}
    for l in labels:
        counts[l] = counts.get(l, 0) + 1
    best = max(sorted(counts), key=lambda l: counts[l])
    return best, 100.0 * counts[best] / len(labels)


def evaluation_summary(metrics: dict[str, Any], predictions: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """What the demo keeps of one variant's evaluation: the emotion headline (``score``,
    ``classification``, ``quotes``, ``n``), the engine's forced-choice accuracy per classification
    task (``forced_choice_accuracy`` is emotion's, ``forced_choice`` has both, ``forced_choice_ci``
    their 95% percentile-bootstrap intervals over the clips, ``{task: {"low", "high"}}``), and
    ``tasks``: ``{task: {"score", "n", "ci", "metric"}}`` for every task evaluated (asr: corpus WER %)."""
    from emoreason.eval.bootstrap import bootstrap_ci

    forced, forced_ci = {}, {}
    for task in ("emotion", "sentiment"):
        rows = [r for r in predictions if r["task"] == task]
        if rows:
            ci = bootstrap_ci([float(r.get("model_label") == r["label"]) for r in rows], seed=seed, scale=100)
            forced[task], forced_ci[task] = ci["mean"], {"low": ci["low"], "high": ci["high"]}
    emo = metrics["tasks"]["emotion"]
    tasks = {t: {"score": m["score"], "n": m["n"], "ci": m.get("ci"), "metric": m["metric"]}
             for t, m in metrics["tasks"].items()}
    # label / explanation disagreement and the transcriber's WER, per classification task that has them
    engine = {key: {t: m[key] for t, m in metrics["tasks"].items() if key in m} for key in ("agreement", "transcriber")}
    return {"score": emo["score"], "classification": emo.get("classification"), "quotes": emo.get("quotes"),
            "forced_choice_accuracy": forced["emotion"], "forced_choice": forced, "forced_choice_ci": forced_ci,
            "n": emo["n"], "tasks": tasks, **engine}


@dataclass
class DemoResult:
    """What :func:`run_demo` produced (paths and the numbers the CLI prints)."""

    out: Path
    report_md: Path
    report_html: Path
    analysis: dict[str, Any]
    table: dict[str, dict[str, Any]]
    best: str
    majority: float
    timings: dict[str, float]


class Demo:
    """One demo run over ``plan`` in ``out`` (see module docstring). ``say`` prints progress lines."""

    def __init__(self, plan: DemoPlan, out: str | Path, say: Callable[[str], None] = print) -> None:
        self.plan = plan
        self.out = Path(out)
        self.say = say
        self.runner = StageRunner(self.out, log=say)
        self.config = find_config(plan.config)
        from emoreason.demo.budget import BudgetClock

        self.clock = BudgetClock()
        self.budget_plan: dict[str, Any] | None = None
        """The ``budget`` stage's result with ``--time-budget`` (variant -> fitted schedule)."""
        from emoreason.model.whisper_asr import TranscriptCache

        self.transcripts = TranscriptCache()
        """Whisper transcripts of the held-out clips, shared by every variant's evaluation."""
        from emoreason.model.frame_cache import FrameCache

        self.frames = FrameCache(max_memory_mb=EVAL_FRAME_CACHE_MB)
        """The frozen encoders' frames of the held-out clips, shared by every variant's evaluation
        (the variants' encoders are the same packaged checkpoints: each clip is encoded once)."""

    # -------------------------------------------------------------------------------- stages
    def corpus(self) -> dict[str, Any]:
        """Stage 1: the corpus every later stage reads (``corpus/manifest.jsonl``), speaker-disjoint.

        Synthetic emotional speech (emotion, sentiment, asr, sqa rows), or real corpora
        (``plan.corpora``: :meth:`real_corpora`), or both."""
        from emoreason.data.synth import synth_corpus

        p = self.plan
        params: dict[str, Any] = {"utterances": p.utterances, "speakers": p.speakers, "test_fraction": p.test_fraction,
                                  "emotions": list(p.emotions), "seed": p.seed}
        specs = p.corpus_specs()
        if specs:  # only then: a synthetic-only demo keeps the parameters (and finished stages) it had
            params.update(corpora=[f"{k}:{Path(path).resolve()}" for k, path in specs], synthetic=p.synthetic,
                          fold=p.corpus_fold, transcribe=p.transcribe)

        def build(d: Path) -> dict[str, Any]:
            if not specs:
                summary = synth_corpus(d, n=p.utterances, seed=p.seed, emotions=p.emotions, n_speakers=p.speakers,
                                       test_fraction=p.test_fraction)
                self.say(summary.text())
                return {"rows": summary.rows, "speakers": summary.speakers, "splits": summary.splits,
                        "audio_minutes": round(summary.audio_seconds / 60, 2)}
            return self.real_corpora(d, specs)

        return self.runner.run("corpus", params, build)

    def real_corpora(self, d: Path, specs: list[tuple[str, str]]) -> dict[str, Any]:
        """Import each ``KIND:PATH`` into ``d/KIND/`` (its default speaker folds, fold
        ``plan.corpus_fold``, the plan's emotions only; emotion, sentiment and asr rows), add the
        synthetic corpus in ``d/synth/`` when ``plan.synthetic``, and merge every row into
        ``d/manifest.jsonl`` with audio paths relative to ``d``."""
        from emoreason.data.importers.corpora import get_kind, import_corpus
        from emoreason.data.importers.named import SplitOptions
        from emoreason.data.synth import synth_corpus

        p = self.plan
        transcriber = None
        if p.transcribe:
            from emoreason.eval.asr_whisper import WhisperASR

            transcriber = WhisperASR(p.transcribe).transcribe
        parts: list[tuple[str, Path]] = []
        if p.synthetic:
            self.say(synth_corpus(d / "synth", n=p.utterances, seed=p.seed, emotions=p.emotions, n_speakers=p.speakers,
                                  test_fraction=p.test_fraction).text())
            parts.append(("synth", d / "synth" / "manifest.jsonl"))
        names: set[str] = set()
        for kind, path in specs:
            k = get_kind(kind)
            name = kind if kind not in names else f"{kind}{len(names)}"
            names.add(name)
            options = SplitOptions(split_by=k.default_split, folds=k.folds, fold=p.corpus_fold, seed=p.seed)
            summary = import_corpus(kind, path, d / name, options=options, tasks="emotion,sentiment,asr",
                                    emotions=p.emotions, transcriber=transcriber, transcriber_name=p.transcribe)
            self.say(summary.text())
            parts.append((name, summary.manifest))
        rows: list[dict[str, Any]] = []
        for name, manifest in parts:
            for r in _read_jsonl(manifest):
                rows.append(r if os.path.isabs(r["audio"]) else {**r, "audio": f"{name}/{r['audio']}"})
        _write_jsonl(d / "manifest.jsonl", rows)
        emo = [r for r in rows if r["task"] == "emotion"]
        speakers = {split: sorted({r["speaker"] for r in emo if r.get("split") == split}) for split in ("train", "dev", "test")}
        splits = {split: sum(r.get("split") == split for r in emo) for split in ("train", "dev", "test")}
        for split in ("train", "test"):
            if not splits[split]:
                raise UserError(f"the corpora give no {split} clips of {', '.join(p.emotions)} (fold {p.corpus_fold})")
        minutes = sum(r.get("duration") or 0 for r in emo) / 60
        return {"rows": len(rows), "speakers": speakers, "splits": splits, "audio_minutes": round(minutes, 2),
                "corpora": [name for name, _ in parts], "description":
                f"{len(emo)} utterances of {', '.join(name for name, _ in parts)} "
                f"({'real speech' + (' + synthetic' if p.synthetic else '')}, fold {p.corpus_fold} held out)"}

    def targets(self) -> dict[str, Any]:
        """Stage 2: offline-teacher targets in every style; the training subsets; the test manifest."""
        from emoreason.teacher.generate import make_teacher, teach

        p = self.plan
        params = {"corpus": self.runner.digest("corpus"), "styles": list(STYLES), "cues": p.teacher_cues,
                  "train_rows": p.train_rows, "seed": p.seed, "joined_share": p.joined_share}
        manifest = self.runner.path("corpus") / "manifest.jsonl"
        if p.corpora:  # only then: a synthetic-only demo keeps the parameters (and finished stages) it had
            params["teach"] = "train_rows"

        def build(d: Path) -> dict[str, Any]:
            counts: dict[str, Any] = {}
            source = self._rows_to_teach(manifest, d) if p.corpora else manifest
            joined = self._joined_rows(manifest, d)
            for style in STYLES:
                train: list[dict[str, Any]] = []
                for rows_in, out, pick in ((source, d / f"teach_{style}.jsonl", True),
                                           (joined, d / f"teach_{style}_joined.jsonl", False)):
                    if rows_in is None:
                        continue
                    # one cache for the styles: the clips' cues are measured once, not once per style
                    summary = teach(rows_in, out, make_teacher("offline"), style=style,
                                    cues=p.teacher_cues and style != "label", seed=p.seed, progress=True,
                                    cache_path=d / "teach.cache.jsonl")
                    if summary.errors:
                        raise UserError(f"teacher failed on {summary.errors} rows ({style}); rerun the demo to retry them")
                    rows = _read_jsonl(out)
                    train += select_train_rows(rows, p.train_rows, p.seed) if pick else rows
                _write_jsonl(d / f"train_{style}.jsonl", train)
                counts[style] = {"train_rows": len(train), "joined_rows": sum("joined" in (r.get("meta") or {}) for r in train)}
            example = next((r for r in _read_jsonl(d / "train_detailed.jsonl") if r["task"] == "emotion"), None)
            return {"styles": counts, "example_target": example and example["target"]}

        return self.runner.run("targets", params, build)

    def _joined_rows(self, manifest: Path, d: Path) -> Path | None:
        """``d/joined.jsonl``: joined pairs of the emotion clips the variants train on
        (``plan.joined_share``, :func:`emoreason.data.joined.join_pairs`; audio in ``d/joined/``);
        None when the share is 0 or no pair forms."""
        from emoreason.data.joined import join_pairs

        if self.plan.joined_share <= 0:
            return None
        rows = select_train_rows(_read_jsonl(manifest), self.plan.train_rows, self.plan.seed)
        joined = join_pairs(rows, manifest.parent, d / "joined", self.plan.joined_share, self.plan.seed,
                            audio_prefix="joined/")
        if not joined:
            return None
        self.say(f"joined utterances: {len(joined)} training clips, each two clips of one speaker and one emotion")
        _write_jsonl(d / "joined.jsonl", [{**r, "split": "train"} for r in joined])
        return d / "joined.jsonl"

    def _rows_to_teach(self, manifest: Path, d: Path) -> Path:
        """With real corpora: ``d/to_teach.jsonl``, only the rows the variants train on. A real corpus
        can hold thousands of clips, and the teacher's cue measurement alone takes about half a
        second a clip on 2 cores, while the mode trains on a capped subset; the held-out rows get
        no targets anyway (the test set's references are the corpus's own)."""
        rows = select_train_rows(_read_jsonl(manifest), self.plan.train_rows, self.plan.seed)
        rebase = os.path.relpath(manifest.parent.resolve(), d.resolve())  # keep relative audio paths valid here
        out = d / "to_teach.jsonl"
        _write_jsonl(out, [r if os.path.isabs(r["audio"]) else {**r, "audio": os.path.join(rebase, r["audio"])}
                           for r in rows])
        return out

    def testset(self) -> dict[str, Any]:
        """Stage 2b: the held-out speakers' rows of every task, bounded per task (``plan.test_rows``).

        Taken from the corpus as synthesized (no teacher targets: the references are the corpus's
        own), and its own stage so that changing the test counts re-evaluates without retraining."""
        p = self.plan
        params = {"corpus": self.runner.digest("corpus"), "test_rows": p.test_rows, "seed": p.seed}
        corpus = self.runner.path("corpus")

        def build(d: Path) -> dict[str, Any]:
            rows = select_test_rows(_read_jsonl(corpus / "manifest.jsonl"), p.test_rows, p.seed)
            rebase = os.path.relpath(corpus.resolve(), d.resolve())  # keep relative audio paths valid here
            rows = [r if os.path.isabs(r["audio"]) else {**r, "audio": os.path.join(rebase, r["audio"])} for r in rows]
            missing = [t for t in p.test_rows if not any(r["task"] == t for r in rows)]
            if p.corpora and "emotion" not in missing:
                missing = []  # real corpora have no sqa rows (nor asr without transcripts): evaluate what there is
            if missing:
                raise UserError(f"the held-out speakers have no {', '.join(missing)} rows; "
                                "the corpus needs rows of every task")
            _write_jsonl(d / "test.jsonl", rows)
            per_task = {t: n for t in p.test_rows if (n := sum(r["task"] == t for r in rows))}
            return {"rows": per_task, "clips": len({r["audio"] for r in rows})}

        return self.runner.run("testset", params, build)

    def budget(self) -> dict[str, Any]:
        """With ``--time-budget``: measure the step time (a few steps of the variant with the longest
        targets) and the evaluation's speed (that warm-up model answering held-out rows), then fit
        each variant's schedule, and if need be the held-out rows, to the budget left
        (:mod:`emoreason.demo.budget`). Cut rows are written to ``budget/test.jsonl``."""
        from emoreason.demo.budget import (EvalCost, measure_eval_seconds, measure_training, plan_budget,
                                           relative_step_costs, rows_text, training_clips)
        from emoreason.model.processing import AudioProcessor

        p = self.plan
        params = {"targets": self.runner.digest("targets"), "testset": self.runner.digest("testset"),
                  "budget_min": p.time_budget_min, "variants": [v.name for v in p.variants],
                  "overrides": list(p.overrides), "alternating_overrides": list(p.alternating_overrides),
                  **({"joint_overrides": list(p.joint_overrides)} if p.joint_overrides else {}),
                  "max_new_tokens": p.max_new_tokens}
        longest = max(p.variants, key=lambda v: STYLES.index(v.style))  # detailed > summary > label
        test = self.runner.path("testset") / "test.jsonl"

        def build(d: Path) -> dict[str, Any]:
            self.say(f"[demo] measuring this machine's training step ({longest.name}, a few steps)")
            training = measure_training(self.config, self._train_overrides(longest), d / "warmup")
            step_s = training["step_s"]
            self.say("[demo] measuring the evaluation's speed (the warm-up model on a few held-out clips)")
            targets = {v.name: self.runner.path("targets") / f"train_{v.style}.jsonl" for v in p.variants}
            speed = measure_eval_seconds(d / "warmup", test, d / "eval_speed", p.max_new_tokens,
                                         transcription_for(d / "warmup", test_language(test)), EVAL_TRANSCRIPT, targets)
            test_rows = _read_jsonl(test)
            rows = {t: sum(r["task"] == t for r in test_rows) for t in p.test_rows}
            free = next((v.name for v in p.variants if v.style != "label"), None)
            cost = EvalCost(speed["whisper_s"], speed["row_s"], speed["token_s"], speed["tokens"], rows, free,
                            FREE_QUOTE_ROWS.get(p.mode, 0), speed["fixed_s"], speed["once_s"])
            variants = {v.name: (self.config, self._train_overrides(v)) for v in p.variants}
            # one measured step, the others scaled by their rows' lengths (label-only rows are short)
            scale = relative_step_costs(variants, longest.name, AudioProcessor.from_pretrained(d / "warmup" / "final"))
            # the clips no variant has encoded yet (the warm-up's are in the shared frame cache)
            unencoded = len(training_clips(self.config, [o for _, o in variants.values()]) - training["clips"])
            result = plan_budget(p.time_budget_min, self.clock.elapsed(), step_s, variants, cost, scale,
                                 fixed_s=training["fixed_s"], encode_s=unencoded * training["encode_s"])
            result["measured_on"] = longest.name
            if result["test_rows"]:
                _write_jsonl(d / "test.jsonl", first_rows(test_rows, result["test_rows"]))  # same depth as testset/
            return result

        self.budget_plan = self.runner.run("budget", params, build)
        b = self.budget_plan
        by_variant = ", ".join(f"{n} {s:.2f}" for n, s in b.get("step_s_by_variant", {}).items())
        self.say(f"[demo] time budget {b['budget_min']:g} min: {b['step_s']:.2f} s per training step here "
                 f"(estimated per variant: {by_variant}), {b['train_s_per_variant']:.0f} s of training per variant "
                 f"on average (up to {b['max_steps_per_variant']} steps each)")
        if "eval_s_estimate" in b:
            cut = (f"; held-out rows cut to {rows_text(b['test_rows'])} (planned {rows_text(b['planned_test_rows'])})"
                   if b["test_rows"] else "")
            self.say(f"[demo]   evaluation estimated at {b['eval_s_estimate']:.0f} s (Whisper {b['whisper_s_per_clip']:.2f} s "
                     f"a clip, {b['row_s']:.2f} s a row + {b['token_s']:.3f} s an answer token){cut}")
        for name, fit in b["variants"].items():
            how = " ".join(fit["overrides"]) if fit["overrides"] else "the full schedule fits"
            self.say(f"[demo]   {name}: {fit['steps']} of {fit['planned_steps']} planned steps ({how})")
        if any(fit["steps"] < SHORT_FIT * fit["planned_steps"] for fit in b["variants"].values()):
            self.say(f"[demo]   this machine is too slow now for the full comparison in {b['budget_min']:g} minutes: "
                     "with so few steps the reasoning variants' answers often name no label or another one than their "
                     "forced choice; --time-budget none runs the full plan")
        return b

    def refit(self) -> None:
        """With ``--time-budget``, once every variant has trained: when the planned held-out rows no
        longer fit in the minutes left (training ran longer than measured), cut them to what does
        (:func:`emoreason.demo.budget.refit_rows`). The decision is written to
        ``budget/refit.json`` (and the rows to ``budget/test_refit.jsonl``) the first time, so a
        resumed demo evaluates the same rows."""
        from emoreason.demo.budget import eval_cost_of, refit_rows, rows_text
        from emoreason.jsonl import atomic_write

        b = self.budget_plan
        if b is None or "eval_s_estimate" not in b:
            return
        record = self.runner.path("budget") / REFIT
        if not record.is_file():
            p = self.plan
            free = next((v.name for v in p.variants if v.style != "label"), None)
            trained = sum(self.runner.timings.get(f"runs/{v.name}", 0.0) for v in p.variants)
            left = b["budget_min"] * 60 - self.clock.elapsed()
            rows = refit_rows(b, eval_cost_of(b, free, FREE_QUOTE_ROWS.get(p.mode, 0)), left, trained)
            if rows:
                _write_jsonl(record.with_name(REFIT_ROWS), first_rows(_read_jsonl(self.test_manifest()), rows))
            atomic_write(record, json.dumps({"test_rows": rows, "left_s": round(left, 1), "trained_s": round(trained, 1)}) + "\n")
        refit = json.loads(record.read_text())
        if refit["test_rows"]:
            b["refit_test_rows"] = refit["test_rows"]
            self.say(f"[demo] training took {refit['trained_s']:.0f} s ({b.get('train_s_estimate', 0):.0f} s planned): "
                     f"held-out rows cut to {rows_text(refit['test_rows'])} to finish within the budget")

    def test_manifest(self) -> Path:
        """The held-out rows every evaluation reads: the test set, or the budget's cut of it (the
        cut made after training when training ran long, :meth:`refit`)."""
        if self.budget_plan is not None and self.budget_plan.get("refit_test_rows"):
            return self.runner.path("budget") / REFIT_ROWS
        if self.budget_plan is not None and self.budget_plan.get("test_rows"):
            return self.runner.path("budget") / "test.jsonl"
        return self.runner.path("testset") / "test.jsonl"

    def _test_params(self) -> dict[str, Any]:
        """The stage parameters that identify :meth:`test_manifest`."""
        params = {"testset": self.runner.digest("testset")}
        if self.budget_plan is not None and self.budget_plan.get("test_rows"):
            params["budget"] = self.runner.digest("budget")
        if self.budget_plan is not None and self.budget_plan.get("refit_test_rows"):
            params["refit"] = self.budget_plan["refit_test_rows"]
        return params

    def _train_overrides(self, variant: Variant) -> list[str]:
        """Config overrides that make ``variant``'s training run (without the budget's)."""
        targets = self.runner.path("targets")
        # One frame cache for every variant: their frozen encoders are the same packaged weights, so
        # each clip is encoded once per encoder in the whole demo, not once per epoch and variant.
        cache = self.runner.path("feature_cache").resolve()
        overrides = [f"data.train_manifest={(targets / f'train_{variant.style}.jsonl').resolve()}",
                     f"model.labels=[{','.join(self.plan.emotions)}]", f"train.feature_cache_dir={cache}",
                     *variant.overrides(),
                     *self._schedule_overrides(variant), *self.plan.overrides]
        if self.plan.corpora and not any(r["task"] in SPEECH_TASKS for r in _read_jsonl(targets / f"train_{variant.style}.jsonl")):
            # a real corpus without transcripts has no speech-task rows: the alternating schedule's
            # speech phase would have nothing to train on, so train every group jointly
            overrides.append("train.schedule=joint")
        return overrides

    def _schedule_overrides(self, variant: Variant) -> tuple[str, ...]:
        """The plan's schedule length for ``variant``: alternating (dual encoder), joint with the
        pooled label token, or the config's own (the paper's frame-tokens-only single encoder)."""
        if variant.fusion != "none":
            return self.plan.alternating_overrides
        return self.plan.joint_overrides if variant.pooled else ()

    def train(self, variant: Variant) -> dict[str, Any]:
        """Stage 3: one mini AudioLLM via :func:`emoreason.train.train` (auto-resumes from its checkpoints)."""
        from emoreason.train.recipe import train

        overrides = self._train_overrides(variant)
        if self.budget_plan is not None:  # --time-budget: this variant's fitted schedule
            overrides += self.budget_plan["variants"][variant.name]["overrides"]
        from emoreason.config import load_config, to_dict

        # the resolved config (not the file text): editing a comment must not retrain
        resolved = to_dict(load_config(self.config, overrides))
        resolved["data"]["train_manifest"] = f"train_{variant.style}.jsonl"  # the out dir may move
        resolved["train"]["feature_cache_dir"] = "feature_cache"
        params = {"targets": self.runner.digest("targets"), "variant": variant.name, "config": resolved}
        name = f"runs/{variant.name}"

        def build(d: Path) -> dict[str, Any]:
            self.say(f"[demo] training {variant.name}: {variant.description}")
            train(self.config, d, overrides=overrides)
            metrics = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines() if l.strip()]
            last = metrics[-1] if metrics else {}
            return {"steps": last.get("step"), "final_loss": last.get("loss"), "final": str(d / "final")}

        return self.runner.run(name, params, build)

    def evaluate(self, variant: Variant) -> dict[str, Any]:
        """Stage 4: the held-out rows of every task through the engine, scored by the offline judge:
        emotion / sentiment accuracy, SQA score (0-5 rating x 20), ASR corpus WER."""
        from emoreason.eval.judges import make_judge
        from emoreason.eval.run import model_predictions
        from emoreason.eval.scoring import score_file

        run_dir = self.runner.path(f"runs/{variant.name}")
        test = self.test_manifest()
        language = test_language(test)
        transcription = transcription_for(run_dir, language)
        params = {"run": self.runner.digest(f"runs/{variant.name}"), **self._test_params(),
                  "max_new_tokens": self.plan.max_new_tokens, "seed": self.plan.seed, "batch_size": EVAL_BATCH_SIZE,
                  "transcript": EVAL_TRANSCRIPT, "quotes": "constrained", "quote_check": transcription["quote_check"],
                  "frames": EVAL_FRAMES, **({"transcription": transcription} if language != "en" else {})}

        def build(d: Path) -> dict[str, Any]:
            self.say(f"[demo] evaluating {variant.name} on held-out speakers (emotion, sentiment, asr, sqa)")
            if language != "en":
                self.say(f"[demo] the held-out speech is in {language!r}: transcripts by {transcription['transcriber']}")
            preds = model_predictions(run_dir, test, d / "predictions.jsonl", task=None, batch_size=EVAL_BATCH_SIZE,
                                      seed=self.plan.seed, max_new_tokens=self.plan.max_new_tokens,
                                      transcript=EVAL_TRANSCRIPT, quotes="constrained",
                                      transcript_cache=self.transcripts, frame_cache=self.frames, **transcription)
            metrics = score_file(preds, d, make_judge("offline"), seed=self.plan.seed)
            return evaluation_summary(metrics, _read_jsonl(preds), seed=self.plan.seed)

        return self.runner.run(f"eval/{variant.name}", params, build)

    def evaluate_free_quotes(self) -> dict[str, Any] | None:
        """Stage 4b: the first reasoning variant's held-out emotion rows (``FREE_QUOTE_ROWS`` of
        them) again, same transcript, with free quotes: the unconstrained groundedness beside the
        constrained one. Returns ``{"variant", "n", "quotes", "agreement", "seconds"}``, None
        without a reasoning variant."""
        from emoreason.eval.judges import make_judge
        from emoreason.eval.run import model_predictions
        from emoreason.eval.scoring import score_file

        variant = next((v for v in self.plan.variants if v.style != "label"), None)
        if variant is None:
            return None
        limit = FREE_QUOTE_ROWS.get(self.plan.mode, 0) or None
        test = self.test_manifest()
        language = test_language(test)
        transcription = transcription_for(self.runner.path(f"runs/{variant.name}"), language)
        transcription.pop("quote_check")  # free quotes: nothing to check
        params = {"run": self.runner.digest(f"runs/{variant.name}"), **self._test_params(),
                  "max_new_tokens": self.plan.max_new_tokens, "seed": self.plan.seed, "limit": limit,
                  "batch_size": EVAL_BATCH_SIZE, "frames": EVAL_FRAMES,
                  "transcript": EVAL_TRANSCRIPT, "quotes": "free",
                  **({"transcription": transcription} if language != "en" else {})}
        name = f"eval-free/{variant.name}"

        def build(d: Path) -> dict[str, Any]:
            self.say(f"[demo] {variant.name} again with free quotes ({limit or 'all'} held-out emotion rows)")
            preds = model_predictions(self.runner.path(f"runs/{variant.name}"), test,
                                      d / "predictions.jsonl", task="emotion", limit=limit, batch_size=EVAL_BATCH_SIZE,
                                      seed=self.plan.seed, max_new_tokens=self.plan.max_new_tokens,
                                      transcript=EVAL_TRANSCRIPT, quotes="free", transcript_cache=self.transcripts,
                                      frame_cache=self.frames, **transcription)
            emo = score_file(preds, d, make_judge("offline"), seed=self.plan.seed)["tasks"]["emotion"]
            return {"variant": variant.name, "n": emo["n"], "quotes": emo.get("quotes"),
                    "agreement": emo.get("agreement"), "ids": [r["id"] for r in _read_jsonl(preds)]}

        result = self.runner.run(name, params, build)
        return {**result, "seconds": self.runner.timings.get(name, 0.0), "dir": str(self.runner.path(name))}

    def evaluate_speaker_norm(self, variant: Variant) -> None:
        """Stage 4c (``plan.speaker_norm``): the held-out emotion rows' forced choice again, each
        speaker's emotion frames normalised to the training clips' statistics (no generation, no
        transcript), scored into ``eval-speaker-norm/VARIANT/scores.jsonl`` beside ``eval/``."""
        from emoreason.eval.judges import make_judge
        from emoreason.eval.run import model_predictions
        from emoreason.eval.scoring import score_file

        run_dir = self.runner.path(f"runs/{variant.name}")
        test = self.test_manifest()
        params = {"run": self.runner.digest(f"runs/{variant.name}"), **self._test_params(), "seed": self.plan.seed,
                  "batch_size": EVAL_BATCH_SIZE, "frames": EVAL_FRAMES, "speaker_norm": True}

        def build(d: Path) -> dict[str, Any]:
            self.say(f"[demo] {variant.name}: forced choice with each held-out speaker's emotion frames normalised")
            preds = model_predictions(run_dir, test, d / "predictions.jsonl", task="emotion", batch_size=EVAL_BATCH_SIZE,
                                      seed=self.plan.seed, max_new_tokens=0, transcript="none", quotes="free",
                                      explain="forced", frame_cache=self.frames, speaker_norm=True)
            score_file(preds, d, make_judge("offline"), task="emotion", seed=self.plan.seed)
            return {}

        self.runner.run(f"eval-speaker-norm/{variant.name}", params, build)

    def analyze(self, variant: Variant) -> dict[str, Any]:
        """Stage 5b: one held-out clip through the inference engine: the emotion analysis (label,
        scores, explanation, quotes), the model's transcript (``task="asr"``) and its answer to the
        clip's content question (``task="sqa"``)."""
        from emoreason.data.manifest import read_manifest, resolve_audio
        from emoreason.inference.engine import Engine

        test = self.test_manifest()
        rows = [r for r in read_manifest(test) if r.task == "emotion"]
        # a clip whose words do not give the label away, if there is one: the voice has to carry it
        pick = next((r for r in rows if r.label != "neutral" and r.meta.get("wording") == "neutral"),
                    next((r for r in rows if r.label != "neutral"), rows[0]))
        audio = resolve_audio(pick, test).resolve()
        corpus = self.runner.path("corpus") / "manifest.jsonl"
        # the clip's content question: the corpus's sqa row of the same audio (it may not be in the test set)
        sqa = next((r for r in read_manifest(corpus) if r.task == "sqa" and resolve_audio(r, corpus).resolve() == audio), None)
        question = sqa and (sqa.meta.get("question") or sqa.instruction)
        language = test_language(test)
        transcription = transcription_for(self.runner.path(f"runs/{variant.name}"), language)
        transcription.pop("quote_check")  # one clip: the engine's default, no check
        params = {"run": self.runner.digest(f"runs/{variant.name}"), "clip": pick.id, "question": question,
                  "max_new_tokens": self.plan.max_new_tokens, "transcript": "model", "tasks": ["emotion", "asr", "sqa"],
                  **({"transcription": transcription} if language != "en" else {})}

        def build(d: Path) -> dict[str, Any]:
            engine = Engine.load(self.runner.path(f"runs/{variant.name}"), **transcription)
            n = self.plan.max_new_tokens
            result = engine.analyze([str(audio)], task="emotion", max_new_tokens=n)[0]
            data = result.to_dict()
            if not result.ok:
                raise UserError(f"analysis of {pick.id} failed: {data.get('error')}")
            # ``transcript`` is the model's own (its ASR task); what the speaker said is the corpus text
            data.update({"variant": variant.name, "gold_label": pick.label, "gold_transcript": pick.transcript,
                         "wording": pick.meta.get("wording")})
            asr = engine.analyze([str(audio)], task="asr", max_new_tokens=n)[0].to_dict()
            data["asr"] = {"transcript": (asr.get("transcript") or {}).get("text"), "error": asr.get("error")}
            if question:
                answer = engine.analyze([str(audio)], task="sqa", question=question, max_new_tokens=n,
                                        transcript="none")[0].to_dict()
                data["sqa"] = {"question": question, "answer": answer.get("answer"), "reference": sqa.target,
                               "error": answer.get("error")}
            (d / "analysis.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            return data

        return self.runner.run("analysis", params, build)

    def probe(self) -> dict[str, Any] | None:
        """The linear-probe baseline (``emoreason.eval.probe``): a logistic regression on the frozen
        emotion encoder's pooled frames, trained on the label-only targets' emotion clips (the
        variants' training clips) and scored on the held-out emotion rows. Uses the emotion encoder
        of the first variant that has one (None when none has)."""
        from emoreason.eval.probe import read_probe, resolve_encoder, run_probe

        dual = next((v for v in self.plan.variants if v.fusion != "none"), None)
        if dual is None:
            return None
        run_dir = self.runner.path(f"runs/{dual.name}")
        train_rows = self.runner.path("targets") / "train_label.jsonl"
        test = self.test_manifest()
        params = {"run": self.runner.digest(f"runs/{dual.name}"), "targets": self.runner.digest("targets"),
                  **self._test_params(), "seed": self.plan.seed}

        def build(d: Path) -> dict[str, Any]:
            from emoreason.model.frame_cache import FrameCache

            self.say(f"[demo] linear probe on {dual.name}'s frozen emotion encoder (baseline)")
            # The variants' training cache holds the training clips' frames of this frozen encoder
            # (the same features, so the same entries): only the held-out clips are encoded here.
            frames = FrameCache(self.runner.path("feature_cache"), max_memory_mb=PROBE_FRAME_CACHE_MB)
            run_probe(train_rows, test, d, resolve_encoder(str(run_dir), None), seed=self.plan.seed,
                      cache_dir=d / "features", frame_cache=frames)
            return {"dir": str(d), "frames_reused": frames.hits, "frames_encoded": frames.misses}

        self.runner.run("probe", params, build)
        return read_probe(self.runner.path("probe"))

    # -------------------------------------------------------------------------------- all
    def run(self) -> DemoResult:
        from emoreason.demo.report import write_demo_report

        p = self.plan
        free_variant = any(v.style != "label" for v in p.variants)
        n_stages = (4 + 2 * len(p.variants) + 1 + (1 if p.time_budget_min else 0) + (1 if free_variant else 0)
                    + (1 if p.speaker_norm else 0))
        step = iter(range(1, n_stages + 1))
        self.say(f"[demo] {p.mode} demo in {self.out} ({len(p.variants)} variants: {', '.join(v.name for v in p.variants)})")
        self.say(f"[demo] stage {next(step)}/{n_stages}: " + ("corpora " + ", ".join(p.corpora) if p.corpora else "synthetic corpus"))
        corpus = self.corpus()
        self.say(f"[demo] stage {next(step)}/{n_stages}: teacher targets (label-only, summary, detailed)")
        targets = self.targets()
        self.say(f"[demo] stage {next(step)}/{n_stages}: held-out test rows (emotion, sentiment, asr, sqa)")
        testset = self.testset()
        if p.time_budget_min:
            self.say(f"[demo] stage {next(step)}/{n_stages}: fit the training to the {p.time_budget_min:g}-minute budget")
            self.budget()
        table: dict[str, dict[str, Any]] = {}
        for v in p.variants:
            self.say(f"[demo] stage {next(step)}/{n_stages}: train {v.name}")
            self.train(v)
        self.refit()
        for v in p.variants:
            self.say(f"[demo] stage {next(step)}/{n_stages}: evaluate {v.name}")
            table[v.name] = self.evaluate(v)
        free_quotes = None
        if free_variant:
            self.say(f"[demo] stage {next(step)}/{n_stages}: quotes constrained vs free (one reasoning variant)")
            free_quotes = self.evaluate_free_quotes()
        normed = [v for v in p.variants if v.fusion != "none"] if p.speaker_norm else []  # it normalises emotion frames
        if p.speaker_norm:
            self.say(f"[demo] stage {next(step)}/{n_stages}: forced choice with speaker normalisation (the variants "
                     "with an emotion encoder)")
            for v in normed:
                self.evaluate_speaker_norm(v)
        probe = self.probe()
        test_rows = _read_jsonl(self.test_manifest())
        majorities = {t: majority_rate([r["label"] for r in test_rows if r["task"] == t]) for t in ("emotion", "sentiment")}
        majority_label, majority = majorities["emotion"]
        best = max(p.variants, key=lambda v: (table[v.name]["score"], table[v.name]["forced_choice_accuracy"]))
        self.say(f"[demo] stage {next(step)}/{n_stages}: analyse one held-out clip with {best.name}")
        analysis = self.analyze(best)
        md, html_path = write_demo_report(
            self.out, plan=p, corpus=corpus, targets=targets, testset=testset, table=table, best=best.name,
            majorities=majorities, analysis=analysis, timings=self.runner.timings,
            eval_dirs={v.name: self.runner.path(f"eval/{v.name}") for v in p.variants}, probe=probe,
            budget=self.budget_plan, free_quotes=free_quotes,
            speaker_norm_dirs={v.name: self.runner.path(f"eval-speaker-norm/{v.name}") for v in normed} or None,
        )
        return DemoResult(out=self.out, report_md=md, report_html=html_path, analysis=analysis, table=table,
                          best=best.name, majority=majority, timings=dict(self.runner.timings))


def run_demo(plan: DemoPlan, out: str | Path, say: Callable[[str], None] = print) -> DemoResult:
    """Run (or resume) the whole demo; see :class:`Demo`."""
    return Demo(plan, out, say).run()


def test_language(test: Path) -> str:
    """The language of a held-out manifest's emotion rows (``meta.language``, as the importers
    write it; ``en`` where absent): ``en`` unless every row says the same other language (one
    engine transcribes one language)."""
    languages = {(r.get("meta") or {}).get("language") or "en" for r in _read_jsonl(test) if r.get("task") == "emotion"}
    return languages.pop() if len(languages) == 1 else "en"


def transcription_for(run_dir: str | Path, language: str) -> dict[str, Any]:
    """``model_predictions``' ``transcriber`` / ``quote_check`` / ``transcript_language`` for the
    held-out speech of ``language``: English as :func:`quote_check_for` says; another language,
    :data:`OTHER_LANGUAGE_TRANSCRIBER` told the language, with no check."""
    if language == "en":
        return {"transcriber": None, "quote_check": quote_check_for(run_dir), "transcript_language": "en"}
    return {"transcriber": OTHER_LANGUAGE_TRANSCRIBER, "quote_check": None, "transcript_language": language}


def quote_check_for(run_dir: str | Path) -> str | None:
    """:data:`EVAL_QUOTE_CHECK` when the run's speech encoder has a Whisper decoder whose transcript
    it can check (the packaged mini model's), else None (random tiny encoders: the model's own ASR
    transcript, nothing to check)."""
    from emoreason.inference.engine import resolve_model_dir
    from emoreason.model.builder import read_config
    from emoreason.model.whisper_asr import encoder_decoder_dir

    speech = read_config(resolve_model_dir(run_dir)).speech_encoder
    has_decoder = encoder_decoder_dir(speech.type, speech.path, speech.init, speech.trainable) is not None
    return EVAL_QUOTE_CHECK if has_decoder else None
