"""``emoreason train``: config -> run directory (config.yaml, checkpoints/, final/, metrics.jsonl, train.log).

Argument handling only; the work is in :func:`emoreason.train.recipe.train`. The same command runs on CPU,
one GPU, or many processes under ``accelerate launch`` / ``torchrun``.
"""
from __future__ import annotations

import argparse

HELP = """Train the AudioLLM on a manifest with the joint or task-alternating schedule.

Resuming: by default the run continues from the newest complete checkpoint in RUN_DIR/checkpoints
(auto-resume), so rerunning an interrupted command picks up where it stopped, mid-epoch included;
a RUN_DIR without checkpoints starts fresh. `--resume` without a value insists on a checkpoint;
`--resume CKPT` continues from that checkpoint directory. A resumed run must use the same config
(train.max_steps, log_every, save_every_steps, keep_checkpoints, report_to, eval_every_steps,
eval_max_batches may change).

Validation: with data.eval_manifest set, the loss per task on its data.eval_split rows is logged to
metrics.jsonl (val_loss rows) every train.eval_every_steps steps (0: each pass end), the best model
so far is kept in RUN_DIR/best, and train.final_from_best=true makes it final/.

--config takes a YAML file or the name of a packaged config (mini, tiny, paper/table2-sequence-alt1;
`python -m emoreason.configs` lists them and prints their paths).

Multi-GPU / multi-node: `accelerate launch [--config_file "$(python -m emoreason.configs accelerate/ddp)"]
-m emoreason train ...`; on a machine without GPUs `torchrun --nproc_per_node N -m emoreason train ...` runs
N CPU processes (gloo)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train the AudioLLM (joint or task-alternating schedule)", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, metavar="FILE|NAME",
                   help="run config: a YAML file, else a packaged config name (e.g. tiny, mini, paper/table2-sequence-alt1)")
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


def run(args: argparse.Namespace) -> int:
    from emoreason.startup import import_ml_stack

    import_ml_stack()
    from emoreason.train.recipe import train

    result = train(args.config, args.out, resume=args.resume, overrides=args.overrides, cache_dir=args.cache_dir)
    if result.main_process:
        print(f"emoreason train: done, {result.steps} steps; model in {result.final}")
    return 0
