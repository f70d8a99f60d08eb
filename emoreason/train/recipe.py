"""The training recipe: a validated config and a run directory in, a trained model in ``final/`` out.

    from emoreason.train import train
    final = train("mini", "runs/mini", overrides=["train.epochs=2"])

:func:`train` is what ``emoreason train``, the demo and the benchmarks call. Its steps are the
methods of :class:`TrainingRecipe` (torchtune's recipe shape), so a caller that brings its own
data or model (``benchmarks/paper_scale.py``) runs the same steps with its parts:

    recipe = TrainingRecipe(cfg, run_dir)      # validates the schedule, nothing heavy yet
    resume = recipe.resume_point("auto")       # which checkpoint, and is it this config's?
    data = recipe.setup_data()                 # train (and validation) rows; RUN_DIR/train_clips.json
    model, processor = recipe.setup_model()    # seeded, so train.seed reproduces a run; train.init_from
    trainer = recipe.setup_trainer(model, processor, data)
    trainer.fit(resume=resume); trainer.save_final(); trainer.close()
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from emoreason.config import Config, load_config, save_config, to_dict
from emoreason.errors import UserError
from emoreason.train.checkpoint import latest_checkpoint
from emoreason.train.schedule import Phase, build_schedule

log = logging.getLogger("emoreason.train")

RESUMABLE_CHANGES = {"train.max_steps", "train.log_every", "train.save_every_steps", "train.keep_checkpoints",
                     "train.report_to", "train.eval_every_steps", "train.eval_max_batches"}
"""train.* keys that may differ between the original run and a resumed one: they change how a run
is observed or where it stops, not what it computes."""


def schedule_of(cfg: Config) -> list[Phase]:
    """The config's phases (joint, alternating, emotion_then_all); raises ConfigError for an impossible schedule."""
    t, m = cfg.train, cfg.model
    return build_schedule(
        t.schedule, t.epochs, t.switch_every, t.alternation_epochs, t.first_group, t.final_phase,
        speech_encoder_trainable=m.speech_encoder.trainable,
        emotion_encoder_trainable=m.emotion_encoder is not None and m.emotion_encoder.trainable,
    )


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [prefix]


@dataclass
class TrainResult:
    """What :func:`train` did: the model directory and the optimizer steps of the whole schedule."""

    final: Path
    steps: int
    main_process: bool = True
    """False on the other processes of a distributed run (they should not print)."""


@dataclass
class TrainData:
    """What :meth:`TrainingRecipe.setup_data` found: the training rows and the optional validation rows."""

    train: Any
    validation: Any | None = None


class TrainingRecipe:
    """One training run, in steps (see the module docstring).

    Args:
        cfg: a validated config (:func:`emoreason.config.load_config`).
        run_dir: the run directory to create or continue.
        cache_dir: where ``dummy:N`` corpora are generated (None: the default cache).
    """

    def __init__(self, cfg: Config, run_dir: str | Path, cache_dir: str | Path | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.cache_dir = cache_dir
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise UserError(f"{self.run_dir}: exists and is not a directory")
        self.phases = schedule_of(cfg)  # an impossible schedule fails before anything heavy happens

    def resume_point(self, resume: str | Path | bool = "auto") -> str | Path | bool:
        """Check the resume request; return what :meth:`Trainer.fit` takes.

        ``"auto"``: the newest checkpoint if there is one, else a fresh start; ``"latest"``: that
        checkpoint must exist; a path: that checkpoint directory; False: start fresh. A run that
        continues checkpoints must have the same config (keys in RESUMABLE_CHANGES may differ).
        """
        if resume == "latest":
            ckpt = latest_checkpoint(self.run_dir)
            if ckpt is None:
                raise UserError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}")
            resume = ckpt
        elif resume not in ("auto", False, None):
            resume = Path(resume)
            if not (resume / "state.json").is_file():
                raise UserError(f"--resume {resume}: not a complete checkpoint directory (no state.json)")
        if resume not in (False, None) and (resume != "auto" or latest_checkpoint(self.run_dir) is not None):
            self._check_same_config()
        return resume if resume is not None else False

    def _check_same_config(self) -> None:
        """A resumed run must compute the same thing as the run that wrote the checkpoints."""
        saved = self.run_dir / "config.yaml"
        if not saved.is_file():
            return
        changed = [k for k in _diff(yaml.safe_load(saved.read_text()), to_dict(self.cfg)) if k not in RESUMABLE_CHANGES]
        if changed:
            raise UserError(f"{self.run_dir} holds checkpoints of a different config ({', '.join(changed[:3])} changed): "
                            "use a new run directory, or the same config to resume")

    def setup_data(self) -> TrainData:
        """Training rows of ``data.train_split`` and, with ``data.eval_manifest``, validation rows
        of ``data.eval_split`` (manifests validated up front; ``dummy:N`` generated first). Records
        the content hash of every training clip in ``RUN_DIR/train_clips.json`` (the contamination
        guard, ``emoreason.train.contamination``; cached, so a rerun decodes nothing)."""
        from emoreason.data.dataset import ManifestDataset
        from emoreason.data.dummy import resolve_manifest

        d = self.cfg.data

        def dataset(spec: str, split: str | None) -> ManifestDataset:
            return ManifestDataset(resolve_manifest(spec, self.cache_dir, d.columns), d.task_groups, split, d.max_audio_seconds,
                                   skip_flagged_targets=d.skip_flagged_targets)

        train = dataset(d.train_manifest, d.train_split)
        self._check_labels(train)
        for line in train.check_audio(skip=d.skip_bad_audio):
            print(f"emoreason train: left out {line}", file=sys.stderr)
        if train.skipped_flagged:
            print(f"emoreason train: left out {train.skipped_flagged} row(s) whose teacher target failed its checks "
                  "(meta.teacher_check; data.skip_flagged_targets=false keeps them)", file=sys.stderr)
        if int(os.environ.get("RANK", "0")) == 0:  # one process records; the others need no hashes
            from emoreason.train.contamination import record_training_clips

            record_training_clips([(e.id, e.audio) for e in train.examples], self.run_dir)
        validation = None
        if d.eval_manifest:  # an empty split is a UserError from ManifestDataset, naming the file
            validation = dataset(d.eval_manifest, d.eval_split)
            for line in validation.check_audio(skip=d.skip_bad_audio):
                print(f"emoreason train: left out {line}", file=sys.stderr)
        return TrainData(train, validation)

    def _check_labels(self, data: Any) -> None:
        """Emotion / sentiment rows must carry one of the model's candidate labels: a label the
        engine never scores would be trained into explanations but never chosen."""
        from emoreason.labels import normalize_label

        m = self.cfg.model
        vocab = {"emotion": list(m.labels), "sentiment": list(m.sentiment_labels)}
        for ex in data.examples:
            if ex.task in vocab and ex.label is not None:
                try:
                    normalize_label(ex.label, vocab[ex.task])
                except UserError:
                    raise UserError(f"{data.manifest}:{ex.line}: {ex.task} label {ex.label!r} is not one of the model's "
                                    f"candidates {vocab[ex.task]} (model.{'labels' if ex.task == 'emotion' else 'sentiment_labels'})") from None

    def setup_model(self) -> tuple[Any, Any]:
        """(model, processor) from ``cfg.model`` (the processor takes ``data.transcript_in_prompt``). Seeded first: the adapters (and any random init)
        are initialised while the model is built, and their start must not depend on whatever used
        the RNG before (an earlier demo variant, a test), or train.seed would not reproduce a run."""
        from accelerate.utils import set_seed

        from emoreason.model.builder import build_model

        set_seed(self.cfg.train.seed)
        model, processor = build_model(self.cfg.model)
        # how prompts are rendered is a data choice, but the processor renders them and is saved
        # with the model (processor_config.json): inference then renders what training did
        processor.transcript_in_prompt = self.cfg.data.transcript_in_prompt
        if self.cfg.train.init_from:  # also on resume: the checkpoint holds only what this run trains
            from emoreason.train.warm_start import warm_start

            loaded = warm_start(model, self.cfg.train.init_from)
            print(f"emoreason train: warm start from {self.cfg.train.init_from} ({len(loaded)} tensors)", file=sys.stderr)
        return model, processor

    def setup_trainer(self, model: Any, processor: Any, data: TrainData, collate_fn: Any = None) -> Any:
        """The :class:`~emoreason.train.loop.Trainer` for this run (``collate_fn`` None: the
        processor's ``Collator``). Writes the resolved ``config.yaml`` into the run directory."""
        from emoreason.data.dataset import Collator
        from emoreason.model.builder import save_pretrained
        from emoreason.train.loop import Trainer, attach_frame_cache

        from emoreason.train.contamination import TRAIN_CLIPS_FILE

        collate_fn = collate_fn or Collator(
            processor, self.cfg.data.max_target_tokens, self.cfg.train.label_loss_weight,
            emotion_labels=list(self.cfg.model.labels) if self.cfg.train.pooled_label_loss_weight else None)
        model_cfg, clips = self.cfg.model, self.run_dir / TRAIN_CLIPS_FILE

        def save_model(m: Any, directory: Path) -> None:
            save_pretrained(m, model_cfg, directory)
            if clips.is_file():  # the model carries what it was trained on: evaluation checks it
                shutil.copyfile(clips, directory / TRAIN_CLIPS_FILE)

        processor.window_seconds = training_window(data.train)
        t = self.cfg.train
        lengths = (row_lengths(data.train, processor, self.cfg.data.max_target_tokens)
                   if t.group_by_length or t.length_split > 1 else None)
        # Attached before the probe fit, which then encodes its clips through the cache: the first
        # pass reuses those frames instead of encoding every emotion clip a second time.
        frame_cache = attach_frame_cache(model, t.feature_cache_dir, t.feature_cache_memory_mb) if t.feature_cache else None
        if t.pooled_head_init == "probe":
            # also on resume: cheap, deterministic, and the checkpoint then overwrites the head
            from emoreason.train.head_init import init_head_from_probe

            init_head_from_probe(model, processor, data.train, list(self.cfg.model.labels), seed=t.seed)
        trainer = Trainer(model, data.train, collate_fn, self.phases, t, self.run_dir, processor=processor,
                          num_workers=self.cfg.data.num_workers, eval_dataset=data.validation, save_model=save_model,
                          lengths=lengths, frame_cache=frame_cache)
        if trainer.acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.run_dir / "config.yaml")
        return trainer


def training_window(dataset: Any) -> float | None:
    """The long-audio window inference should use for a model trained on ``dataset``
    (``audio.window_for_clips`` of its emotion / sentiment clips' lengths, all clips' when it has
    none): windows about as long as the clips the model learned from. None when the lengths are
    unknown (a dataset that is not a checked manifest): inference then keeps 30 s."""
    from emoreason.audio import window_for_clips

    examples = getattr(dataset, "examples", [])
    labelled = [e.seconds for e in examples if e.seconds is not None and e.task in ("emotion", "sentiment")]
    seconds = labelled or [e.seconds for e in examples if e.seconds is not None]
    return window_for_clips(seconds) if seconds else None


def row_lengths(dataset: Any, processor: Any, max_target_tokens: int | None) -> list[int]:
    """Token length of every training row as the processor renders it (audio placeholders from
    the file's length, read from its header; chat; target cut at ``max_target_tokens``): what
    length-grouped batches sort by. Decodes no audio."""
    import soundfile as sf

    from emoreason.audio import SAMPLE_RATE, load_audio

    out = []
    for ex in dataset.examples:
        try:
            info = sf.info(str(ex.audio))
            samples = math.ceil(info.frames * SAMPLE_RATE / info.samplerate)
        except (sf.LibsndfileError, RuntimeError):  # a format only load_audio reads: decode it
            samples = load_audio(ex.audio).size
        samples = min(samples, dataset.max_samples)
        ids, _ = processor.render(ex.prompt, ex.target, processor.num_audio_tokens(samples), max_target_tokens)
        out.append(len(ids))
    return out


def train(config: Config | str | Path, run_dir: str | Path, resume: str | Path | bool = "auto",
          overrides: list[str] | None = None, cache_dir: str | Path | None = None) -> TrainResult:
    """Train a model; return where it is (``final/``) and how many steps the schedule has.

    Args:
        config: a Config, or a YAML file or packaged config name (``"mini"``, ``"paper/table2-sequence-alt1"``),
            with ``overrides``: dotted ``key=value`` strings.
        run_dir: the run directory; rerunning the same call continues an interrupted run.
        resume: ``"auto"`` (continue from the newest checkpoint if any), ``"latest"`` (require
            one), a checkpoint directory, or False (start from scratch).
        cache_dir: where ``dummy:N`` corpora are generated.
    """
    if not isinstance(config, Config):
        from emoreason.configs import find_config  # a file, or a packaged name such as "mini"

        config = load_config(find_config(config), overrides)
    elif overrides:
        raise UserError("overrides apply to a config file; apply them before building the Config object")
    recipe = TrainingRecipe(config, run_dir, cache_dir)
    resume = recipe.resume_point(resume)
    data = recipe.setup_data()
    model, processor = recipe.setup_model()
    trainer = recipe.setup_trainer(model, processor, data)
    trainer.fit(resume=resume)
    final = trainer.save_final()
    # Only after success: a rank that failed would wait in the destroy for peers that never come.
    trainer.close()
    return TrainResult(final, trainer.total_steps, trainer.acc.is_main_process)
