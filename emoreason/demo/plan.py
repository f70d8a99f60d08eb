"""What the demo runs: corpus size, the model variants it compares, training and evaluation budgets.

Three sizes share one pipeline:

- ``full`` (default): the paper's Tables 1-2 in miniature on real packaged weights
  (packaged config ``mini``): label-only vs detailed reasoning targets, dual vs single encoder,
  and the transcript in the prompt vs end to end; 160 held-out emotion clips from 4 speakers.
- ``quick`` (``--quick``, CI): fewer clips and steps, label-only vs detailed only.
- ``tiny`` (``--tiny``, tests): random tiny models (packaged config ``tiny``), seconds; checks the
  plumbing, not the method.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emoreason.errors import UserError

STYLES = ("label", "summary", "detailed")
"""Teacher target styles the demo builds (label-only baseline, interpretive, evidence-grounded)."""
TASKS = ("emotion", "sentiment", "asr", "sqa")
"""Every task the demo trains on and evaluates (the synthetic corpus has rows of all four)."""
EVAL_BATCH_SIZE = 32
"""Held-out rows the engine answers together at evaluation. A decode step of the mini LLM reads
every weight once whatever the rows, so it costs far less than twice as much for twice the rows:
detailed-dual answering the full demo's 212 held-out rows (transcripts and frames cached, 2 cores,
bf16) took 38.4-39.9 s in batches of 32 and 48.2 s in batches of 16, the same forced-choice labels
(212 / 212; 24 explanations worded differently: bf16 sums over other padding). In the eleventh
session 16 rows answered 64 rows in 20.7 s where 8 took ~28 s. The evaluating process's peak
memory: 1.9 GB (8), 2.4 GB (16), 3.5 GB (32) (docs/demo.md "Speed")."""


@dataclass(frozen=True)
class Variant:
    """One mini AudioLLM to train and evaluate."""

    name: str
    style: str
    """Training targets: ``label`` | ``summary`` | ``detailed`` (teacher style)."""
    fusion: str
    """``sequence`` (speech + emotion encoder) | ``none`` (speech encoder only)."""
    description: str
    transcript_in_prompt: bool = False
    """"Transcribe, then reason": the emotion / sentiment prompts carry the clip's transcript
    after the audio (training: the manifest's; inference: the model's own, generated first);
    ``data.transcript_in_prompt``."""
    pooled: bool = True
    """Single encoder (``fusion`` none) only: the speech adapter carries the config's pooled label
    token over the speech encoder's frames, as the emotion adapter does in the dual-encoder
    variants (``model.single_encoder_pooled``), so dual vs single differs in the encoders alone.
    False: the paper's single-encoder baseline, frame tokens only."""

    def overrides(self) -> list[str]:
        """Config overrides that make this variant out of the base config."""
        extra = ["data.transcript_in_prompt=true"] if self.transcript_in_prompt else []
        return self._fusion_overrides() + extra

    def _fusion_overrides(self) -> list[str]:
        if self.fusion == "none":
            # No emotion side to alternate with: the paper trains its single-encoder baseline
            # jointly (Table 2 "none, joint"). Under the alternating schedule the emotion phase
            # could not update the only adapter at all.
            pooled = ["model.single_encoder_pooled=true"] if self.pooled else []
            return ["model.fusion=none", "model.emotion_encoder=null", "train.schedule=joint", *pooled]
        return [f"model.fusion={self.fusion}"]


LABEL_DUAL = Variant("label-dual", "label", "sequence", "label-only targets, speech + emotion encoder")
DETAILED_DUAL = Variant("detailed-dual", "detailed", "sequence", "detailed reasoning targets, speech + emotion encoder")
DETAILED_SINGLE = Variant("detailed-single", "detailed", "none",
                          "detailed reasoning targets, speech encoder only (its own pooled label token, as the dual's)")
DETAILED_SINGLE_FRAMES = Variant("detailed-single-frames", "detailed", "none",
                                 "detailed reasoning targets, speech encoder only, frame tokens only (the paper's baseline)",
                                 pooled=False)
SUMMARY_DUAL = Variant("summary-dual", "summary", "sequence", "summary reasoning targets, speech + emotion encoder")
DETAILED_DUAL_TRANSCRIPT = Variant("detailed-dual-transcript", "detailed", "sequence",
                                   "detailed reasoning targets, speech + emotion encoder, transcript in the prompt",
                                   transcript_in_prompt=True)
VARIANTS = {v.name: v for v in (LABEL_DUAL, DETAILED_DUAL, DETAILED_SINGLE, SUMMARY_DUAL, DETAILED_DUAL_TRANSCRIPT,
                                 DETAILED_SINGLE_FRAMES)}


@dataclass(frozen=True)
class DemoPlan:
    """Every number that decides what a demo run computes (all of it goes into stage parameters)."""

    mode: str
    config: str
    """Base training config: a packaged name (``mini.yaml``, ``tiny.yaml``; see :mod:`emoreason.configs`) or a path."""
    utterances: int
    speakers: int
    test_fraction: float
    """Share of the speakers held out for the test split (``round(speakers x test_fraction)``, at
    least one); 15 % go to dev, the rest train (``synth_corpus``)."""
    emotions: tuple[str, ...]
    train_rows: dict[str, int]
    """Task -> most training rows taken from the train speakers (emotion: all of them). Keeps the
    CPU budget: the LLM forward/backward is almost all of the training time."""
    variants: tuple[Variant, ...]
    test_rows: dict[str, int]
    """Task -> most held-out rows evaluated per variant (0: all of the test speakers' rows of that
    task). Every task in :data:`TASKS` is evaluated; the smaller sets are the same clips as the
    larger ones (one ranking of the clips), so bounding them keeps the evaluation stage short."""
    max_new_tokens: int
    """Length of the generated explanation, transcript and answer at evaluation and in the analysed clip."""
    overrides: tuple[str, ...] = ()
    """Extra dotted config overrides for every variant (e.g. schedule lengths)."""
    alternating_overrides: tuple[str, ...] = ()
    """Config overrides for the variants that alternate tasks (dual encoder), after the variant's
    own and before ``overrides``: the full plan's schedule length for them (the single-encoder
    variant trains jointly for the config's passes)."""
    joint_overrides: tuple[str, ...] = ()
    """Config overrides for the single-encoder variants with the pooled label token (they train
    jointly), placed as ``alternating_overrides``: the full plan's schedule length for them. The
    frame-tokens-only variant (``detailed-single-frames``) keeps the config's passes."""
    seed: int = 0
    teacher_cues: bool = True
    """Offline teacher cites measured pitch / loudness / rate / pauses in reasoning targets."""
    corpora: tuple[str, ...] = ()
    """Real corpora as ``KIND:PATH`` (``emoreason demo --corpus``), imported with speaker-disjoint
    folds (:mod:`emoreason.data.importers.corpora`); empty: the synthetic corpus only."""
    synthetic: bool = True
    """Synthesize the espeak corpus too (always when ``corpora`` is empty)."""
    corpus_fold: int = 1
    """Which speaker fold of each real corpus is the test set (1-based)."""
    transcribe: str | None = None
    """Whisper spec that transcribes real clips the corpus has no transcript for (None: leave them)."""
    joined_share: float = 1.0
    """Share of the training emotion clips that also go into a joined pair (two clips of one speaker
    and one emotion as one more training clip, :mod:`emoreason.data.joined`); 0: none."""
    time_budget_min: float | None = None
    """Minutes the whole demo should take (``--time-budget``): warm-up steps measure this machine's
    step time and the variants' schedules are shortened to fit (:mod:`emoreason.demo.budget`); None: as planned."""
    speaker_norm: bool = False
    """Also score every variant's forced choice with each held-out speaker's emotion frames
    normalised (``demo --speaker-norm``, :mod:`emoreason.inference.speaker_norm`); outside the time
    budget. On by default with real ``corpora`` (whose voices the question is about), off for the
    synthetic demo."""

    def __post_init__(self) -> None:
        missing = [t for t in TASKS if t not in self.test_rows]
        unknown = [t for t in self.test_rows if t not in TASKS]
        if missing or unknown or any(n < 0 for n in self.test_rows.values()):
            raise UserError(f"test_rows needs a count >= 0 for each of {', '.join(TASKS)} "
                            f"(missing {missing}, unknown {unknown}): {self.test_rows}")

    def corpus_specs(self) -> list[tuple[str, str]]:
        """``corpora`` as (kind, path) pairs, checked: a known kind and an existing folder."""
        from emoreason.data.importers.corpora import get_kind

        out = []
        for spec in self.corpora:
            kind, sep, path = spec.partition(":")
            if not sep or not path:
                raise UserError(f"--corpus {spec!r}: expected KIND:PATH, e.g. emodb:/data/emodb")
            if not Path(path).exists():
                raise UserError(f"--corpus {spec!r}: {path} not found")
            out.append((get_kind(kind).name, path))
        return out

    def params(self) -> dict[str, Any]:
        data = asdict(self)
        data["variants"] = [asdict(v) for v in self.variants]
        return data


AUTO_BUDGET_MIN = 15.0
"""``--time-budget auto`` on a CPU without native bf16: the full demo is fitted to this many
minutes (issue 15's goal for such a CPU: the full plan took 17-22 minutes there, docs/demo.md)."""
AUTO_BUDGET_BF16_MIN = 10.0
"""``--time-budget auto`` on a CPU with native bf16 (issue 15's goal there). The full plan took
9:52-11:34 on an idle 2-core machine depending on the hour, and 24:49 in an hour when the same
machine ran at less than half that speed (docs/demo.md): unfitted, the time is the machine's."""


def auto_time_budget(mode: str, corpora: list[str] | None = None,
                     out: str | Path | None = None) -> tuple[float | None, str | None]:
    """What ``--time-budget auto`` means here: (minutes or None, the line the demo says about it, or
    None where there is nothing to say). The synthetic full plan on a
    CPU that trains in fp32 (no native bf16, no CUDA) gets :data:`AUTO_BUDGET_MIN`, one with native
    bf16 :data:`AUTO_BUDGET_BF16_MIN`; a GPU runs the full plan in minutes, ``--quick`` / ``--tiny`` are small, and a
    real corpus's fold is scored on all of its held-out clips, so those get none. Nor does a rerun
    in an ``out`` whose training began without a budget: a budget would change its stages'
    parameters, and a stage with other parameters starts again from an empty directory (the
    trained models would be lost)."""
    if mode != "full" or corpora:
        return None, None
    import torch

    from emoreason.hardware import cpu_has_native_bf16

    if torch.cuda.is_available():
        return None, None
    bf16 = cpu_has_native_bf16()
    minutes = AUTO_BUDGET_BF16_MIN if bf16 else AUTO_BUDGET_MIN
    if out is not None and not (Path(out) / "budget").exists() and any((Path(out) / "runs").glob("*/PARAMS.json")):
        return None, (f"{out} was started without a time budget: resumed without one, so nothing trained is lost "
                      f"(--time-budget {minutes:g} fits it anew)")
    if bf16:
        return minutes, (f"the demo is fitted to {minutes:g} minutes on this CPU: a few warm-up steps measure it "
                         "first (--time-budget none runs the full plan, ~11 min on 2 idle cores with native bf16)")
    return minutes, (f"this CPU has no native bf16 (training runs in fp32): the demo is fitted to "
                     f"{minutes:g} minutes (--time-budget none runs the full plan, ~18 min on 2 cores)")


def make_plan(mode: str = "full", seed: int = 0, variants: list[str] | None = None,
              extra_overrides: list[str] | None = None, corpora: list[str] | None = None,
              with_synthetic: bool = False, corpus_fold: int = 1, transcribe: str | None = None,
              train_emotion_rows: int | None = None, test_emotion_rows: int | None = None,
              time_budget_min: float | None = None, joined_share: float | None = None) -> DemoPlan:
    """The plan of ``mode`` (``full`` | ``quick`` | ``tiny``); ``variants`` picks a subset by name;
    ``extra_overrides`` are appended to every variant's config overrides. ``corpora`` (``KIND:PATH``)
    replace the synthetic corpus, or join it with ``with_synthetic``; ``train_emotion_rows`` changes
    the mode's cap on emotion training rows (0: every train-split emotion row), ``test_emotion_rows``
    its cap on held-out emotion rows (0: all of them); ``time_budget_min``
    fits the training to that many minutes (:mod:`emoreason.demo.budget`); ``joined_share`` the share
    of training emotion clips also joined in pairs (:attr:`DemoPlan.joined_share`)."""
    emotions = ("neutral", "happy", "sad", "angry")
    if mode == "full":
        plan = DemoPlan(
            # 16 speakers x 40 clips: 4 held out for test (160 emotion clips, enough for a CI that can
            # tell variants ~15 points apart), 2 for dev, 10 train (400 clips, 160 emotion rows taken)
            mode=mode, config="mini.yaml", utterances=640, speakers=16, test_fraction=0.25, emotions=emotions,
            train_rows={"emotion": 160, "sentiment": 24, "asr": 16, "sqa": 8},
            variants=(LABEL_DUAL, DETAILED_DUAL, DETAILED_SINGLE, DETAILED_DUAL_TRANSCRIPT), max_new_tokens=48, seed=seed,
            # all 160 emotion clips; the other tasks on a subset of them
            test_rows={"emotion": 0, "sentiment": 20, "asr": 20, "sqa": 12},
            # speech, emotion, speech, emotion, all, stopped at 60 steps instead of mini.yaml's 130.
            # On the same 160 held-out clips the 60- and 78-step schedules scored as well as 130
            # (docs/demo.md, "How many steps"). The single-encoder variant, with the pooled label
            # token of the dual ones, stops at 60 steps too (76.2 % on the 160 clips, docs/demo.md
            # "Dual vs single encoder, same recipe"); without it (detailed-single-frames) it needs
            # its 5 joint passes (with 3 it fell to 27.5 %, with 2 to 17.5 %).
            alternating_overrides=("train.alternation_epochs=2", "train.epochs=3", "train.max_steps=60"),
            joint_overrides=("train.max_steps=60",),
        )
    elif mode == "quick":
        plan = DemoPlan(
            mode=mode, config="mini.yaml", utterances=96, speakers=8, test_fraction=0.15, emotions=emotions,
            train_rows={"emotion": 64, "sentiment": 8, "asr": 8, "sqa": 8},
            variants=(LABEL_DUAL, DETAILED_DUAL), max_new_tokens=40, seed=seed,
            test_rows={"emotion": 16, "sentiment": 6, "asr": 6, "sqa": 4},
            overrides=("train.epochs=2", "train.alternation_epochs=1"),  # S, E, final: each group seen twice
        )
    elif mode == "tiny":
        plan = DemoPlan(
            mode=mode, config="tiny.yaml", utterances=16, speakers=4, test_fraction=0.15, emotions=emotions,
            train_rows={"emotion": 8, "sentiment": 2, "asr": 2, "sqa": 2},
            variants=(LABEL_DUAL, DETAILED_SINGLE), max_new_tokens=6, seed=seed,
            test_rows={"emotion": 4, "sentiment": 2, "asr": 2, "sqa": 2},
            overrides=("train.epochs=2", "train.alternation_epochs=1", "train.batch_size=4", "train.save_every_steps=2",
                       "model.lora.r=2", "model.lora.alpha=4"),
            teacher_cues=False,
        )
    else:
        raise UserError(f"unknown demo mode {mode!r} (expected full, quick or tiny)")
    if variants:
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown:
            raise UserError(f"unknown variant(s) {unknown} (available: {', '.join(VARIANTS)})")
        plan = DemoPlan(**{**plan.__dict__, "variants": tuple(VARIANTS[v] for v in variants)})
    if extra_overrides:
        plan = DemoPlan(**{**plan.__dict__, "overrides": plan.overrides + tuple(extra_overrides)})
    if corpora:
        plan = DemoPlan(**{**plan.__dict__, "corpora": tuple(corpora), "synthetic": with_synthetic,
                           "corpus_fold": corpus_fold, "transcribe": transcribe, "speaker_norm": True})
        plan.corpus_specs()  # a bad KIND:PATH fails now, not after minutes of work
    elif with_synthetic:
        raise UserError("--with-synthetic only makes sense together with --corpus")
    if train_emotion_rows is not None:
        if train_emotion_rows < 0:
            raise UserError(f"--train-emotion-rows must be >= 0 (0: all), got {train_emotion_rows}")
        plan = DemoPlan(**{**plan.__dict__, "train_rows": {**plan.train_rows, "emotion": train_emotion_rows}})
    if test_emotion_rows is not None:
        if test_emotion_rows < 0:
            raise UserError(f"--test-emotion-rows must be >= 0 (0: all), got {test_emotion_rows}")
        plan = DemoPlan(**{**plan.__dict__, "test_rows": {**plan.test_rows, "emotion": test_emotion_rows}})
    if joined_share is not None:
        if not 0 <= joined_share <= 1:
            raise UserError(f"--joined-share must be between 0 and 1, got {joined_share}")
        plan = DemoPlan(**{**plan.__dict__, "joined_share": float(joined_share)})
    if time_budget_min is not None:
        if time_budget_min <= 0:
            raise UserError(f"--time-budget must be > 0 minutes, got {time_budget_min}")
        plan = DemoPlan(**{**plan.__dict__, "time_budget_min": float(time_budget_min)})
    return plan


__all__ = ["DemoPlan", "Variant", "VARIANTS", "STYLES", "TASKS", "make_plan", "auto_time_budget", "AUTO_BUDGET_MIN"]
