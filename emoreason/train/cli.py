"""``emoreason train``: config -> run directory (config.yaml, checkpoints/, final/, metrics.jsonl, train.log).

Argument handling only; the work is in :mod:`emoreason.train.loop`. The same command runs on CPU,
one GPU, or many processes under ``accelerate launch`` / ``torchrun``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from emoreason.errors import UserError

# train.* keys that may differ between the original run and a resumed one: they change how a
# run is observed or where it stops, not what it computes.
RESUMABLE_CHANGES = {"train.max_steps", "train.log_every", "train.save_every_steps", "train.keep_checkpoints", "train.tensorboard"}

HELP = """Train the AudioLLM on a manifest with the joint or task-alternating schedule.

Resuming: by default the run continues from the newest complete checkpoint in RUN_DIR/checkpoints
(auto-resume), so rerunning an interrupted command picks up where it stopped, mid-epoch included;
a RUN_DIR without checkpoints starts fresh. `--resume` without a value insists on a checkpoint;
`--resume CKPT` continues from that checkpoint directory. A resumed run must use the same config
(train.max_steps, log_every, save_every_steps, keep_checkpoints, tensorboard may change).

Multi-GPU / multi-node: `accelerate launch [--config_file configs/accelerate/ddp.yaml] -m emoreason
train ...`; on a machine without GPUs `torchrun --nproc_per_node N -m emoreason train ...` runs
N CPU processes (gloo)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train the AudioLLM (joint or task-alternating schedule)", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, metavar="FILE", help="run config YAML (e.g. configs/tiny.yaml, configs/paper/*.yaml)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to create or resume")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="dotted config overrides applied after the file, e.g. train.epochs=2 model.fusion=feature",
    )
    p.add_argument(
        "--resume", nargs="?", const="latest", default="auto", metavar="CKPT",
        help="without this flag: auto-resume from RUN_DIR's newest checkpoint if there is one; "
        "--resume: require such a checkpoint; --resume CKPT: resume from that checkpoint directory",
    )
    p.add_argument(
        "--cache-dir", metavar="DIR", default=None,
        help="where dummy:N corpora are generated (default $EMOREASON_CACHE/dummy or ~/.cache/emoreason/dummy)",
    )
    p.set_defaults(func=run)


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [prefix]


def _check_same_config(run_dir: Path, cfg_dict: dict[str, Any]) -> None:
    """A resumed run must compute the same thing as the run that wrote the checkpoints."""
    import yaml

    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    changed = [k for k in _diff(yaml.safe_load(saved.read_text()), cfg_dict) if k not in RESUMABLE_CHANGES]
    if changed:
        raise UserError(
            f"{run_dir} holds checkpoints of a different config ({', '.join(changed[:3])} changed): "
            "use a new --out, or the same config to resume"
        )


def run(args: argparse.Namespace) -> int:
    from emoreason.config import load_config, save_config, to_dict
    from emoreason.train.checkpoint import latest_checkpoint
    from emoreason.train.schedule import build_schedule

    cfg = load_config(args.config, args.overrides)
    t, m = cfg.train, cfg.model
    phases = build_schedule(  # validates the schedule before anything heavy happens
        t.schedule, t.epochs, t.switch_every, t.alternation_epochs, t.first_group, t.final_phase,
        speech_encoder_trainable=m.speech_encoder.trainable,
        emotion_encoder_trainable=m.emotion_encoder is not None and m.emotion_encoder.trainable,
    )
    run_dir = Path(args.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir}: exists and is not a directory")
    resume: str | Path | bool = "auto"
    if args.resume == "latest":
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise UserError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
        resume = ckpt
    elif args.resume != "auto":
        resume = Path(args.resume)
        if not (resume / "state.json").is_file():
            raise UserError(f"--resume {resume}: not a complete checkpoint directory (no state.json)")
    if resume != "auto" or latest_checkpoint(run_dir) is not None:
        _check_same_config(run_dir, to_dict(cfg))

    from emoreason.data.dataset import Collator, ManifestDataset  # heavy imports only past the checks
    from emoreason.model.builder import build_model, save_pretrained
    from emoreason.testing.dummies import resolve_manifest
    from emoreason.train.loop import Trainer

    manifest = resolve_manifest(cfg.data.train_manifest, args.cache_dir)
    dataset = ManifestDataset(manifest, cfg.data.task_groups, cfg.data.train_split, cfg.data.max_audio_seconds,
                              skip_flagged_targets=cfg.data.skip_flagged_targets)
    if dataset.skipped_flagged:
        print(f"emoreason train: left out {dataset.skipped_flagged} row(s) whose teacher target failed its checks "
              "(meta.teacher_check; data.skip_flagged_targets=false keeps them)", file=sys.stderr)
    from accelerate.utils import set_seed

    # The adapters (and any init: random part) are initialised while the model is built: seed
    # first, or their start depends on whatever used the RNG before (an earlier demo variant,
    # a test) and train.seed would not reproduce a run.
    set_seed(cfg.train.seed)
    model, processor = build_model(cfg.model)
    trainer = Trainer(model, dataset, Collator(processor, cfg.data.max_target_tokens), phases, cfg.train, run_dir, processor=processor,
                      num_workers=cfg.data.num_workers)
    if trainer.acc.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    trainer.fit(resume=resume)
    final = trainer.save_final(lambda model, directory: save_pretrained(model, cfg.model, directory))
    if trainer.acc.is_main_process:
        print(f"emoreason train: done, {trainer.total_steps} steps; model in {final}")
    return 0
