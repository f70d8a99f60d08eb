"""Tokens a training run computes vs the tokens it learns from, with and without packing.

    .venv/bin/python benchmarks/packing_tokens.py demo_out/targets/train_detailed.jsonl
    .venv/bin/python benchmarks/packing_tokens.py MANIFEST --config tiny
    .venv/bin/python benchmarks/packing_tokens.py demo_out/targets/train_detailed.jsonl \
        --override train.max_steps=60 --windows 2,4,8     # length-grouped in windows of 2, 4 and 8 batches

Walks the batches the trainer would draw (the config's schedule, sampler, batch size and seed)
over a training manifest and counts, per batch, the LLM positions computed (rows x longest row)
and the useful ones (real tokens), unpadded vs packed (``emoreason.model.packing``). Row lengths
come from the processor's own rendering (audio placeholders + chat + target cut at
``data.max_target_tokens``), so no feature is computed and the counts do not depend on the
machine or its load; ``train.max_steps`` ends the walk as it ends training. Prints one line per
setting: computed / useful (1.0 = no padding at all); length-grouped rows for each window of
``--windows`` global batches (default: the config's ``train.length_group_batches``).
"""
from __future__ import annotations

import argparse
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", help="a training manifest (e.g. a demo's targets/train_detailed.jsonl)")
    ap.add_argument("--config", default="mini", help="config file or packaged name (default: mini)")
    ap.add_argument("--batch-size", type=int, default=0, help="micro batch (default: the config's)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, repeatable (e.g. the demo's train.max_steps=60)")
    ap.add_argument("--windows", default="", help="comma-separated length-grouping windows in global batches "
                                                  "(default: the config's train.length_group_batches)")
    args = ap.parse_args()

    from emoreason.config import load_config
    from emoreason.configs import find_config
    from emoreason.data.dataset import ManifestDataset
    from emoreason.model.builder import build_model
    from emoreason.model.packing import first_fit_decreasing
    from emoreason.train.recipe import row_lengths, schedule_of
    from emoreason.train.sampler import TaskGroupSampler
    from emoreason.train.schedule import num_passes, phase_at

    cfg = load_config(find_config(args.config), [f"data.train_manifest={args.manifest}", *args.override])
    data = ManifestDataset(args.manifest, cfg.data.task_groups, cfg.data.train_split, cfg.data.max_audio_seconds)
    _, processor = build_model(cfg.model)
    lengths = row_lengths(data, processor, cfg.data.max_target_tokens)
    batch = args.batch_size or cfg.train.batch_size
    phases = schedule_of(cfg)
    print(f"{args.manifest}: {len(data)} rows, config {args.config}, micro batch {batch}, "
          f"{num_passes(phases)} passes; row length {min(lengths)}-{max(lengths)} tokens")
    windows = [int(w) for w in args.windows.split(",") if w] or [cfg.train.length_group_batches]
    max_batches = cfg.train.max_steps * cfg.train.grad_accum or None
    for window in [None, *windows]:
        sampler = TaskGroupSampler(data.groups, batch, seed=cfg.train.seed, lengths=lengths if window else None,
                                   group_window=window or 1)
        plain = packed = useful = rows = packed_rows = batches = 0
        for epoch in range(num_passes(phases)):
            sampler.set_epoch(epoch, phase_at(phases, epoch).group)
            for indices in sampler:
                if max_batches is not None and batches >= max_batches:
                    break
                batches += 1
                lens = [lengths[i] for i in indices]
                longest = max(lens)
                bins = first_fit_decreasing(lens, longest)
                plain += len(lens) * longest
                packed += len(bins) * longest
                useful += sum(lens)
                rows += len(lens)
                packed_rows += len(bins)
        how = f"grouped in {window}" if window else "shuffled"
        print(f"  {how:>14} unpacked: {plain} computed / {useful} useful = {plain / useful:.3f} ({rows} rows)")
        print(f"  {how:>14} packed:   {packed} computed / {useful} useful = {packed / useful:.3f} ({packed_rows} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
