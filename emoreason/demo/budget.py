"""A demo plan that fits the machine (``emoreason demo --time-budget MIN``).

Before the variants train, a short run of one variant measures this machine's step time
(:func:`measure_training`), and the warm-up model answers a batch of held-out emotion rows as
the evaluation will (Whisper transcript, constrained quotes), which gives Whisper's seconds per
clip, a row's fixed seconds and the seconds per answer token (:func:`measure_eval_seconds`).
From these and the budget left, the evaluation's cost is estimated (:class:`EvalCost`); what is
left after it (and a small reserve for the probe, the analysed clip and the report) goes to
training. The other variants' step times are the measured one scaled by their training rows'
lengths (:func:`relative_step_costs`), and every variant gets the same step cap, as many steps as
the training seconds buy. Each schedule is shortened to fit: fewer alternation passes first
(speech / emotion blocks), keeping the final all-task pass, so every variant still trains both
sides and all tasks (the comparison the demo exists for); a joint schedule is capped inside a pass.
Only if even the shortest schedule (one pass per side + the final pass) does not fit,
``train.max_steps`` caps it.
Each variant's fixed seconds (model, probe fit, saving) and the encoding of the training clips
(once, shared by every variant through the frame cache) come off the training seconds; each
evaluation pass's fixed seconds (engine, scoring) are in the evaluation's.
When the planned schedules and evaluation do not fit, the held-out rows are cut first, down to
:data:`ROWS_BEFORE_STEPS` emotion rows (the same ranking of clips, so every held-out speaker keeps
its share), then the schedules are shortened, then the rows again, down to
:data:`MIN_EMOTION_ROWS`; the report says what was cut.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emoreason.demo.plan import EVAL_BATCH_SIZE

TRAIN_SHARE = 0.6
"""Without an evaluation measurement: the part of the remaining budget given to training."""
RESERVE_SHARE = 0.05
"""Part of the remaining budget kept for the probe, the analysed clip and the report."""
MIN_EMOTION_ROWS = 40
"""A budget cuts the held-out emotion rows to no fewer than this (10 per held-out speaker in the
full demo; fewer only when the test set has fewer)."""
ROWS_BEFORE_STEPS = 80
"""A budget cuts the held-out emotion rows down to this many before it shortens any schedule:
fewer rows widen the CIs, fewer steps change the models (at 30 steps a variant detailed-dual's
free answers named no label in 12 of 40 held-out clips and another label than its forced choice
in 3, and its judged accuracy fell 20 points under its forced choice, docs/demo.md); below it, steps go first, down to the shortest schedules, then rows to
:data:`MIN_EMOTION_ROWS`."""
EMOTION_SIDE = ("emotion", "sentiment")
"""The tasks of the alternating schedule's emotion phases (``data.task_groups``' default)."""
WARMUP_BATCHES = 3
"""Batches of the measuring run: it trains on this many batches' rows twice, and the second pass is
timed (its clips are then in the frame cache, as in every pass of a real run after the first)."""


def schedule_steps(config: Path, overrides: list[str]) -> int:
    """Optimizer steps the config's whole schedule takes over its training manifest (the sampler's
    batches per pass, as :class:`emoreason.train.loop.Trainer` counts them)."""
    import math

    from emoreason.config import load_config
    from emoreason.data.dataset import ManifestDataset
    from emoreason.train.recipe import schedule_of
    from emoreason.train.sampler import TaskGroupSampler
    from emoreason.train.schedule import num_passes, phase_at

    cfg = load_config(config, overrides)
    data = ManifestDataset(cfg.data.train_manifest, cfg.data.task_groups, cfg.data.train_split, cfg.data.max_audio_seconds)
    phases = schedule_of(cfg)
    sampler = TaskGroupSampler(data.groups, cfg.train.batch_size)
    steps = 0
    for epoch in range(num_passes(phases)):
        sampler.set_epoch(epoch, phase_at(phases, epoch).group)
        steps += math.ceil(len(sampler) / cfg.train.grad_accum)
    if cfg.train.max_steps > 0:
        steps = min(steps, cfg.train.max_steps)
    return steps


def measure_training(config: Path, overrides: list[str], run_dir: Path, batches: int = WARMUP_BATCHES) -> dict[str, Any]:
    """This machine's training speed: a short joint run over ``batches`` batches of rows drawn
    (seeded) from the config's training manifest, two passes (the recipe's steps, as
    :func:`emoreason.train.train` runs them, each timed).

    Returns ``step_s``: seconds per optimizer step, the mean of the second pass (its
    metrics.jsonl ``samples_per_s``); ``fixed_s``: a run's seconds outside its steps and outside
    encoding (building the model, the probe fit of the pooled head, saving ``final/``: what every
    variant pays once); ``encode_s``: seconds to encode one clip with every frozen encoder the
    frame cache serves (what a clip costs the first time any variant trains on it); ``clips``: the
    audio files the run trained on (resolved paths: they are in the frame cache now).

    Why emotion-side rows (emotion, sentiment; all rows when there are none), and the second
    pass: the schedule's speech phases are short and their rows are the same in every target
    style (measured there, a detailed variant's step came out a third short: 3.42 s vs 4.68 s in
    its training), while the emotion phases are most of the steps (54 of the full demo's 60). Rows
    drawn from the whole manifest still erred short by a fifth (2.94 s against ~3.7 s a step in
    detailed-dual's training, docs/demo.md). And the first pass encodes its clips (the frame cache
    is cold), which real training pays once per clip: timing the first pass erred long (6.12 s a
    step). Before the fixed and encoding costs were counted, a
    10-minute fit's training ran 15 % over its plan (455 s against 396 s, docs/demo.md)."""
    import random

    from emoreason.config import load_config
    from emoreason.data.manifest import read_manifest, resolve_audio
    from emoreason.train.recipe import TrainingRecipe

    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = load_config(config, overrides)
    batch = cfg.train.batch_size
    manifest = Path(cfg.data.train_manifest)
    split = cfg.data.train_split
    rows = [r for r in read_manifest(manifest) if split is None or r.split == split]
    # the emotion side's rows: most of a schedule's steps, and the longest targets (speech-task
    # rows are the same short ones in every style)
    rows = [r for r in rows if r.task in EMOTION_SIDE] or rows
    picked = random.Random(cfg.train.seed).sample(rows, min(len(rows), batches * batch))
    audio = [str(resolve_audio(r, manifest).resolve()) for r in picked]
    sample = run_dir.parent / f"{run_dir.name}_rows.jsonl"
    with sample.open("w") as f:
        for r, path in zip(picked, audio):
            f.write(replace(r, audio=path).to_json() + "\n")
    cfg = load_config(config, [
        *overrides, f"data.train_manifest={sample.resolve()}", "train.schedule=joint", "train.epochs=2",
        "train.max_steps=0", "train.save_every_steps=0"])
    tic = time.perf_counter()
    recipe = TrainingRecipe(cfg, run_dir)
    data = recipe.setup_data()
    model, processor = recipe.setup_model()
    trainer = recipe.setup_trainer(model, processor, data)
    setup_s = time.perf_counter() - tic
    cache = trainer.frame_cache
    setup_encoding = cache.encode_seconds if cache is not None else 0.0  # the probe fit's clips
    trainer.fit(resume=False)
    tic = time.perf_counter()
    trainer.save_final()
    trainer.close()
    save_s = time.perf_counter() - tic
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    per_step = {r["step"]: batch / r["samples_per_s"] for r in logged if r.get("samples_per_s")}
    first_pass = -(-len(picked) // batch)
    timed = [s for step, s in sorted(per_step.items()) if step > first_pass] or list(per_step.values())
    step_s = statistics.fmean(timed)
    encoded = cache.encode_seconds if cache is not None else 0.0
    clips = cache.misses / max(1, len(trainer.cached_encoders)) if cache is not None else 0
    # Setting up and saving, less the probe fit's encoding, is what each variant pays once. The
    # first pass's time beyond its steps is not: it is the encoding of its clips and the
    # process's first steps (one-time kernel set-up: 11.6 s for a 3 s step once), which the demo's
    # variants, trained in one process after this run, do not pay again.
    fixed_s = setup_s - setup_encoding + save_s
    return {"step_s": step_s, "fixed_s": max(0.0, fixed_s), "encode_s": encoded / clips if clips else 0.0,
            "clips": set(audio)}


def training_clips(config: Path, variants_overrides: list[list[str]]) -> set[str]:
    """The audio files (resolved paths) the configs' training rows read, over every variant: the
    clips the shared frame cache encodes once for all of them."""
    from emoreason.config import load_config
    from emoreason.data.manifest import read_manifest, resolve_audio

    clips: set[str] = set()
    for overrides in variants_overrides:
        data = load_config(config, overrides).data
        manifest = Path(data.train_manifest)
        clips.update(str(resolve_audio(r, manifest).resolve()) for r in read_manifest(manifest)
                     if data.train_split is None or r.split == data.train_split)
    return clips


def shorter_schedules(config: Path, overrides: list[str]) -> list[list[str]]:
    """Override sets from the config's own schedule down to its shortest, longest first: alternating
    schedules drop alternation passes (final passes kept), joint ones drop passes."""
    from emoreason.config import load_config

    t = load_config(config, overrides).train
    if t.schedule == "joint":
        return [[f"train.epochs={e}"] for e in range(t.epochs, 0, -1)]
    final = t.epochs - t.alternation_epochs
    step = 2 if t.schedule == "alternating" and t.alternation_epochs % 2 == 0 else 1  # keep the sides balanced
    return [[f"train.alternation_epochs={a}", f"train.epochs={a + final}"]
            for a in range(t.alternation_epochs, 0, -step)]


def fit_variant(config: Path, overrides: list[str], max_steps: int) -> dict[str, Any]:
    """The longest schedule of ``shorter_schedules`` within ``max_steps`` steps (capped by
    ``train.max_steps`` when none fits). A joint schedule whose whole passes fall short of
    ``max_steps`` takes the next longer one capped at ``max_steps`` instead (its passes are all
    alike, and the learning-rate schedule follows the cap), so it trains as many steps as the
    others; an alternating one keeps whole passes (a cap would cut its final all-task pass).
    Returns ``{"overrides", "steps", "planned_steps"}``."""
    from emoreason.config import load_config

    options = shorter_schedules(config, overrides)
    planned = schedule_steps(config, overrides)
    joint = load_config(config, overrides).train.schedule == "joint"
    longer: list[str] | None = None  # the option before the one that fits
    for extra in options:
        steps = schedule_steps(config, [*overrides, *extra])
        if steps <= max_steps:
            if joint and longer is not None and steps < max_steps:
                return {"overrides": [*longer, f"train.max_steps={max_steps}"], "steps": max_steps, "planned_steps": planned}
            return {"overrides": [] if steps == planned else extra, "steps": steps, "planned_steps": planned}
        longer = extra
    shortest = options[-1]
    capped = max(1, max_steps)
    return {"overrides": [*shortest, f"train.max_steps={capped}"], "steps": capped, "planned_steps": planned}


def rows_text(rows: dict[str, int]) -> str:
    """``{"emotion": 40, "sqa": 1}`` -> ``emotion 40, sqa 1`` (the demo's log line and report)."""
    return ", ".join(f"{task} {n}" for task, n in rows.items())


def shortest_steps(config: Path, overrides: list[str]) -> int:
    """Steps of the shortest schedule :func:`fit_variant` shortens to before capping."""
    return schedule_steps(config, [*overrides, *shorter_schedules(config, overrides)[-1]])


MEASURED_BATCH = 8
"""Rows of the batch :func:`measure_eval_seconds` answers."""


@dataclass(frozen=True)
class EvalCost:
    """The demo's evaluation, as measured on this machine (:func:`measure_eval_seconds`).

    Rows of a task share batches of :data:`EVAL_BATCH_SIZE` whatever their questions
    (``eval.run.model_predictions``); a batch of ``b`` rows costs ``row_s`` per row (forced choice,
    prompt) and a decode step per answer token until its longest answer ends (``tokens``: each
    variant's longest training target of the task, capped by the plan's ``max_new_tokens``: a
    label-only model's answer is one sentence, a detailed one runs to the cap). Both are measured
    on a batch of :data:`MEASURED_BATCH` rows, and a smaller batch is charged as one of that size:
    a decode step of 2 rows costs about what one of 8 does (the estimate per row erred short by
    nearly half before, on a plan whose sentiment, asr and sqa rows were a batch of 1-2 each);
    a larger one in proportion. Whisper transcribes each emotion clip once (sentiment clips are
    among them; asr and sqa rows get none). ``rows``: held-out rows per task (actual counts);
    ``free``: the variant whose emotion rows the free-quotes pass answers again (None: no such
    pass), ``free_cap`` how many (0: all)."""

    whisper_s: float
    """Seconds per clip of the Whisper transcripts (both checkpoints)."""
    row_s: float
    """Seconds per row in a batch of 8 without its answer's tokens, transcripts cached."""
    token_s: float
    """Seconds per answer token per row in a batch of 8 (a decode step's seconds / 8)."""
    tokens: dict[str, dict[str, float]]
    """Variant -> task -> decode steps of a batch (its longest answer, in tokens)."""
    rows: dict[str, int]
    free: str | None = None
    free_cap: int = 0
    fixed_s: float = 0.0
    """Seconds each evaluation pass pays whatever its rows: loading the engine and scoring the
    answers (the offline judge, the report files)."""
    once_s: float = 0.0
    """Seconds the whole evaluation pays once: loading the Whisper checkpoints (the transcripts
    are then shared by every pass)."""

    def free_rows(self, rows: dict[str, int]) -> int:
        if self.free is None:
            return 0
        return min(self.free_cap, rows["emotion"]) if self.free_cap else rows["emotion"]

    def task_seconds(self, variant: str, task: str, n: int) -> float:
        """Seconds of ``variant``'s answers to ``n`` rows of ``task``, batch by batch."""
        total = 0.0
        for start in range(0, n, EVAL_BATCH_SIZE):
            charged = max(MEASURED_BATCH, min(EVAL_BATCH_SIZE, n - start))
            total += charged * (self.row_s + self.tokens[variant].get(task, 0.0) * self.token_s)
        return total

    def seconds(self, rows: dict[str, int] | None = None) -> float:
        rows = rows or self.rows
        answers = sum(self.task_seconds(v, t, n) for v in self.tokens for t, n in rows.items())
        free = self.task_seconds(self.free, "emotion", self.free_rows(rows)) + self.fixed_s if self.free else 0.0
        return rows.get("emotion", 0) * self.whisper_s + answers + free + self.fixed_s * len(self.tokens) + self.once_s

    def cut(self, seconds: float, emotion_floor: int = MIN_EMOTION_ROWS) -> dict[str, int]:
        """The most rows per task whose evaluation takes at most ``seconds`` (or the floors when
        none do): every task scaled by one factor, emotion down to ``emotion_floor`` at the least,
        the others to 2 (1 sqa question). The factor is searched, not divided out: the passes'
        fixed seconds and the free-quotes pass's cap do not scale with the rows."""
        floors = {"emotion": emotion_floor, "sqa": 1}

        def scaled(factor: float) -> dict[str, int]:
            return {task: min(n, max(floors.get(task, 2), int(n * factor))) for task, n in self.rows.items()}

        if self.seconds(scaled(1.0)) <= seconds:
            return scaled(1.0)
        low, high = 0.0, 1.0  # seconds(scaled(f)) grows with f: the largest f that fits
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (mid, high) if self.seconds(scaled(mid)) <= seconds else (low, mid)
        return scaled(low)


def measure_eval_seconds(run_dir: Path, test: Path, out: Path, max_new_tokens: int, transcription: dict[str, Any],
                         transcript: str, targets: dict[str, Path], rows: int = 8) -> dict[str, Any]:
    """This machine's evaluation speed, from the model in ``run_dir`` (the warm-up run): it answers
    the first ``rows`` held-out emotion rows of ``test`` as the evaluation does (``transcript``
    source, constrained quotes, ``transcription``'s Whisper settings) three times (written under
    ``out``): with no transcript cached and ``max_new_tokens``; cached with 1 token; cached with
    ``max_new_tokens``. One other clip goes first, untimed: the engine loads its Whisper
    checkpoints on first use. ``targets``: variant -> its training manifest, whose targets give
    each variant's longest answer per task (in the LLM's tokens, capped at ``max_new_tokens``).
    The ``rows`` answered make one batch, smaller than the evaluation's :data:`EVAL_BATCH_SIZE`:
    a row's share of a decode step is larger in it, so the estimate errs long, not short.

    The engine's loading and the scoring of the cached answers (offline judge) are timed too: every
    evaluation pass pays them once; the first clip's answer, less a row's, is the Whisper
    checkpoints' loading, paid once by the whole evaluation.

    Returns ``{"whisper_s", "row_s", "token_s", "tokens", "fixed_s", "once_s"}`` (see :class:`EvalCost`)."""
    from emoreason.data.manifest import read_manifest
    from emoreason.eval.judges import make_judge
    from emoreason.eval.run import model_predictions
    from emoreason.eval.scoring import score_file
    from emoreason.inference.engine import Engine
    from emoreason.model.whisper_asr import TranscriptCache

    cache = TranscriptCache()
    tic = time.perf_counter()
    engine = Engine.load(str(run_dir), transcriber=transcription.get("transcriber"),
                         quote_check=transcription.get("quote_check"), transcript_cache=cache,
                         transcript_language=transcription.get("transcript_language", "en"))
    load_s = time.perf_counter() - tic

    def answer(manifest: Path, name: str, budget: int) -> float:
        start = time.perf_counter()
        model_predictions(run_dir, manifest, out / name / "predictions.jsonl", task="emotion", limit=rows,
                          batch_size=EVAL_BATCH_SIZE, max_new_tokens=budget, engine=engine, transcript=transcript,
                          quotes="constrained", transcript_cache=cache, **transcription)
        return time.perf_counter() - start

    def count(text: str) -> int:
        return len(engine.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    held_out = (json.loads(line) for line in test.read_text().splitlines() if line.strip())
    emotion = [r for r in held_out if r.get("task") == "emotion"]
    if len(emotion) > rows:
        extra = dict(emotion[rows])
        extra["audio"] = str((test.parent / extra["audio"]).resolve())
        out.mkdir(parents=True, exist_ok=True)
        (out / "first.jsonl").write_text(json.dumps(extra) + "\n")
    first = answer(out / "first.jsonl", "first", max_new_tokens) if len(emotion) > rows else 0.0
    cold, short, full = (answer(test, "cold", max_new_tokens), answer(test, "one_token", 1),
                         answer(test, "cached", max_new_tokens))
    tic = time.perf_counter()
    score_file(out / "cached" / "predictions.jsonl", out / "cached", make_judge("offline"))
    score_s = time.perf_counter() - tic
    answered = [json.loads(line) for line in (out / "cached" / "predictions.jsonl").read_text().splitlines() if line.strip()]
    n = max(1, len(answered))
    steps = max((count(r["prediction"]) for r in answered), default=1)  # the batch decodes until its longest answer ends
    per_manifest: dict[Path, dict[str, float]] = {}  # variants of one target style share a manifest
    for manifest in set(targets.values()):
        by_task: dict[str, list[int]] = {}
        for r in read_manifest(manifest):
            by_task.setdefault(r.task, []).append(min(max_new_tokens, count(r.target or "")))
        # a batch decodes until its longest answer ends
        per_manifest[manifest] = {task: float(max(lengths)) for task, lengths in by_task.items()}
    tokens = {variant: per_manifest[manifest] for variant, manifest in targets.items()}
    row_s = short / n
    return {"whisper_s": max(0.0, cold - full) / n, "row_s": row_s,
            "token_s": max(0.0, full - short) / (n * max(1, steps - 1)), "tokens": tokens,
            "fixed_s": load_s + score_s, "once_s": max(0.0, first - row_s)}


def plan_budget(budget_min: float, elapsed_s: float, step_s: float, variants: dict[str, tuple[Path, list[str]]],
                evaluation: EvalCost | None = None, step_scale: dict[str, float] | None = None,
                fixed_s: float = 0.0, encode_s: float = 0.0) -> dict[str, Any]:
    """Step budget per variant and, with ``evaluation``, the held-out rows.

    ``step_s`` was measured on one variant; ``step_scale``: each variant's step time relative to it
    (:func:`relative_step_costs`; missing names: 1.0, as are all without it). ``fixed_s``: what
    each variant's training pays outside its steps (model, probe fit, saving); ``encode_s``: the
    frozen encoders' seconds for the training clips not yet in the frame cache (paid once, by the
    first variant that trains on them); both come off the training seconds. Without ``evaluation``:
    ``TRAIN_SHARE`` of the budget left goes to training. With it: the budget left less
    :data:`RESERVE_SHARE` and the evaluation's estimated seconds. When the planned schedules and
    evaluation do not fit together, the held-out rows are cut first, down to
    :data:`ROWS_BEFORE_STEPS` emotion rows, then the schedules are shortened, and only when even
    the shortest ones do not fit are the rows cut further (``test_rows`` in the result; None: the
    planned rows). Every variant gets the same step cap, as
    many steps as the training seconds buy at the variants' own step times (the comparison is at
    equal steps), and each schedule is fitted to it (:func:`fit_variant`)."""
    left = max(0.0, budget_min * 60 - elapsed_s)
    scale = {name: (step_scale or {}).get(name, 1.0) for name in variants}
    result: dict[str, Any] = {"budget_min": budget_min, "elapsed_s": round(elapsed_s, 1), "step_s": round(step_s, 3),
                              "step_s_by_variant": {name: round(step_s * f, 3) for name, f in scale.items()}}
    overhead = fixed_s * len(variants) + encode_s
    if evaluation is None:
        train_s = max(0.0, left * TRAIN_SHARE - overhead)
    else:
        spare = left * (1 - RESERVE_SHARE)
        planned_training = overhead + step_s * sum(scale[name] * schedule_steps(c, o) for name, (c, o) in variants.items())
        least_training = overhead + step_s * sum(scale[name] * shortest_steps(c, o) for name, (c, o) in variants.items())
        rows = evaluation.rows
        if evaluation.seconds() + planned_training > spare:  # rows first, down to ROWS_BEFORE_STEPS
            rows = evaluation.cut(spare - planned_training, ROWS_BEFORE_STEPS)
        if evaluation.seconds(rows) + least_training > spare:  # then steps, then rows again
            rows = evaluation.cut(spare - least_training)
        eval_s = evaluation.seconds(rows)
        train_s = max(0.0, spare - eval_s - overhead)
        result.update(eval_s_estimate=round(eval_s, 1), whisper_s_per_clip=round(evaluation.whisper_s, 3),
                      row_s=round(evaluation.row_s, 3), token_s=round(evaluation.token_s, 4),
                      eval_fixed_s=round(evaluation.fixed_s, 2), eval_once_s=round(evaluation.once_s, 2),
                      answer_tokens={v: {t: round(n, 1) for t, n in by.items()} for v, by in evaluation.tokens.items()},
                      planned_test_rows=evaluation.rows, test_rows=rows if rows != evaluation.rows else None)
    max_steps = int(train_s // (step_s * max(sum(scale.values()), 1e-9)))
    fitted = {name: fit_variant(config, overrides, max_steps) for name, (config, overrides) in variants.items()}
    return {**result, "train_fixed_s": round(fixed_s, 2), "encode_s": round(encode_s, 1),
            "reserve_s": round(left * RESERVE_SHARE, 1), "train_s_estimate": round(train_s + overhead, 1),
            "train_s_per_variant": round(train_s / max(1, len(variants)), 1), "max_steps_per_variant": max_steps,
            "variants": fitted}


def row_tokens(config: Path, overrides: list[str], base: Any) -> float:
    """Mean LLM sequence length of the config's training rows: audio placeholders plus the rendered
    prompt (the transcript too with ``data.transcript_in_prompt``) and target, cut to
    ``data.max_target_tokens``, as the collator renders them. ``base``: an ``AudioProcessor`` whose
    tokenizer and encoder specs the config shares (the warm-up run's); the config's own fusion,
    pooled tokens and prompt option are applied over it. Clip lengths come from the audio headers;
    a clip whose header cannot be read is left out of the mean (training reports it, naming its
    manifest line); with none readable, ``statistics.StatisticsError`` (a ValueError)."""
    import soundfile as sf

    from emoreason.audio import SAMPLE_RATE
    from emoreason.config import load_config, pooled_token_count
    from emoreason.data.dataset import ManifestDataset
    from emoreason.model.processing import AudioProcessor

    cfg = load_config(config, overrides)
    m = cfg.model
    processor = AudioProcessor(base.tokenizer, base.speech, base.emotion if m.fusion != "none" else None, m.fusion,
                               base.system_prompt, transcript_in_prompt=cfg.data.transcript_in_prompt,
                               emotion_pooled_tokens=pooled_token_count(m))
    data = ManifestDataset(cfg.data.train_manifest, cfg.data.task_groups, cfg.data.train_split, cfg.data.max_audio_seconds)
    lengths = []
    for ex in data.examples:
        try:
            info = sf.info(str(ex.audio))
        except Exception:  # soundfile's errors on junk: LibsndfileError, RuntimeError, TypeError
            continue
        samples = int(info.frames * SAMPLE_RATE / info.samplerate)
        ids, _ = processor.render(ex.prompt, ex.target, processor.num_audio_tokens(samples), cfg.data.max_target_tokens,
                                  ex.transcript)
        lengths.append(len(ids))
    return statistics.fmean(lengths)


def relative_step_costs(variants: dict[str, tuple[Path, list[str]]], measured: str, base: Any) -> dict[str, float]:
    """Each variant's step time relative to ``measured``'s, estimated as the ratio of their mean
    training sequence lengths (:func:`row_tokens`): a packed batch's LLM forward and backward is
    most of a step, and its cost grows with the tokens in it. Measured in the AVX2 emulation (the
    thirteenth session, one step time for all): label-only rows cost 0.59 of a detailed step, the
    transcript variant's 1.08; the length ratio leaves out the emotion encoder's share, so it errs
    long for a speech-encoder-only variant (0.52 measured). A variant this cannot render (say an
    emotion encoder the measured one lacks) keeps 1.0."""
    lengths: dict[str, float] = {}
    for name, (config, overrides) in variants.items():
        try:
            lengths[name] = row_tokens(config, overrides, base)
        except (ValueError, TypeError):
            continue
    if not lengths.get(measured):
        return {}
    return {name: round(n / lengths[measured], 3) for name, n in lengths.items()}


class BudgetClock:
    """Seconds since the demo command started (what ``--time-budget`` counts against)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def eval_cost_of(plan: dict[str, Any], free: str | None, free_cap: int) -> EvalCost:
    """The :class:`EvalCost` a :func:`plan_budget` result with an evaluation estimate was made
    with (its measured rates, as recorded), over its planned rows."""
    return EvalCost(plan["whisper_s_per_clip"], plan["row_s"], plan["token_s"], plan["answer_tokens"],
                    plan["planned_test_rows"], free, free_cap, plan.get("eval_fixed_s", 0.0), plan.get("eval_once_s", 0.0))


def refit_rows(plan: dict[str, Any], cost: EvalCost, left_s: float, trained_s: float) -> dict[str, int] | None:
    """The held-out rows to evaluate now that training is done, ``left_s`` seconds before the
    budget's end and after training took ``trained_s`` (the plan estimated ``train_s_estimate``).

    The evaluation's estimate is scaled by how much longer training took than planned (a machine
    that slowed down after the measuring slows the evaluation too); when the plan's rows no longer
    fit in what is left less the reserve, they are cut to what does (emotion rows not below
    :data:`MIN_EMOTION_ROWS`, never more than the plan's). Returns the new rows, or None when the
    plan's still fit."""
    rows = plan.get("test_rows") or plan["planned_test_rows"]
    slower = max(1.0, trained_s / max(plan.get("train_s_estimate") or trained_s, 1e-9))
    room = (left_s - plan.get("reserve_s", 0.0)) / slower
    if cost.seconds(rows) <= room:
        return None
    cut = cost.cut(room)
    refit = {task: min(n, cut.get(task, n)) for task, n in rows.items()}
    return refit if refit != rows else None
