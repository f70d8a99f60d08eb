"""The demo's variants over several seeds: mean +- sd of every metric (a benchmark, not part of the
default demo).

    .venv/bin/python benchmarks/demo_seeds.py --out /tmp/seeds                 # full demo, seeds 0,1,2
    .venv/bin/python benchmarks/demo_seeds.py --mode quick --out /tmp/seeds-q --threads 1
    .venv/bin/python benchmarks/demo_seeds.py --mode tiny --seeds 0,1 --out /tmp/seeds-t   # plumbing only

Each seed is a whole ``emoreason demo`` run of its own in ``OUT/seedN`` (the seed draws the
corpus's speakers and sentences, the rows trained on and tested, the training and the bootstrap),
so the spread is that of rerunning the demo, not of one test set; a rerun reuses finished stages
as the demo does. Prints one row per variant and metric: the mean +- the sample sd over the seeds
(n-1; "-" with one seed) and every seed's value; writes the same to ``OUT/seeds.md`` and the
numbers to ``OUT/seeds.json``. A single run's 95% CIs (the demo report) say how much one test set
can resolve; this says how much a whole rerun moves.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

METRICS = (
    ("emotion (judge)", lambda e: e["score"]),
    ("emotion wt acc", lambda e: (e.get("classification") or {}).get("weighted_accuracy")),
    ("emotion unwt acc", lambda e: (e.get("classification") or {}).get("unweighted_accuracy")),
    ("emotion forced choice", lambda e: e.get("forced_choice_accuracy")),
    ("sentiment (judge)", lambda e: (e.get("tasks") or {}).get("sentiment", {}).get("score")),
    ("sentiment forced choice", lambda e: (e.get("forced_choice") or {}).get("sentiment")),
    ("SQA (0-100)", lambda e: (e.get("tasks") or {}).get("sqa", {}).get("score")),
    ("ASR WER %", lambda e: (e.get("tasks") or {}).get("asr", {}).get("score")),
    ("quotation %", lambda e: (e.get("quotes") or {}).get("quotation")),
    ("groundedness", lambda e: (e.get("quotes") or {}).get("groundedness")),
    ("relevance", lambda e: (e.get("quotes") or {}).get("relevance")),
)
"""(name, how to read it from one variant's demo summary, ``DemoResult.table[variant]``)."""


def metrics_of(entry: dict[str, Any]) -> dict[str, float]:
    """One variant's summary -> {metric: value} (metrics the run does not have left out: e.g.
    groundedness when nothing was quoted)."""
    out = {}
    for name, read in METRICS:
        value = read(entry)
        if value is not None:
            out[name] = float(value)
    return out


def aggregate(per_seed: dict[int, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{seed: {variant: {metric: value}}}`` -> ``{variant: {metric: {"mean", "sd", "values"}}}``;
    ``sd`` is the sample standard deviation (None with fewer than two values); ``values`` by seed."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for seed in sorted(per_seed):
        for variant, metrics in per_seed[seed].items():
            for metric, value in metrics.items():
                out.setdefault(variant, {}).setdefault(metric, {"values": {}})["values"][seed] = value
    for metrics in out.values():
        for m in metrics.values():
            values = list(m["values"].values())
            m["mean"] = statistics.fmean(values)
            m["sd"] = statistics.stdev(values) if len(values) > 1 else None
    return out


def format_table(summary: dict[str, dict[str, dict[str, Any]]], seeds: list[int]) -> str:
    """The summary as a Markdown table: variant, metric, mean +- sd, then one column per seed."""
    head = ["variant", "metric", "mean +- sd"] + [f"seed {s}" for s in seeds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = [name for name, _ in METRICS]
    for variant, metrics in summary.items():
        for metric in sorted(metrics, key=order.index):
            m = metrics[metric]
            sd = f"{m['sd']:.1f}" if m["sd"] is not None else "-"
            cells = [variant, metric, f"{m['mean']:.1f} +- {sd}"]
            cells += [f"{m['values'][s]:.1f}" if s in m["values"] else "-" for s in seeds]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_seeds(text: str) -> list[int]:
    from emoreason.errors import UserError

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds needs at least one seed and no repeats, got {text!r}")
    return seeds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("full", "quick", "tiny"), default="full", help="the demo's size (default full)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--variants", default=None, metavar="A,B", help="subset of variants (default: the mode's own set)")
    p.add_argument("--out", required=True, metavar="DIR", help="one demo directory per seed: DIR/seedN; rerun to resume")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (as emoreason demo --threads)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="training-config overrides for every variant")
    args = p.parse_args(argv)

    from emoreason.demo.pipeline import run_demo
    from emoreason.demo.plan import make_plan
    from emoreason.errors import UserError

    try:
        seeds = parse_seeds(args.seeds)
        variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
        plans = {s: make_plan(args.mode, seed=s, variants=variants, extra_overrides=args.overrides) for s in seeds}
    except UserError as e:
        print(f"demo_seeds: {e}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    per_seed: dict[int, dict[str, dict[str, float]]] = {}
    walls: dict[int, float] = {}
    for seed, plan in plans.items():
        print(f"[demo_seeds] seed {seed}: {args.mode} demo in {out / f'seed{seed}'}", file=sys.stderr, flush=True)
        tic = time.perf_counter()
        result = run_demo(plan, out / f"seed{seed}", say=lambda line: print(line, file=sys.stderr, flush=True))
        walls[seed] = time.perf_counter() - tic
        per_seed[seed] = {name: metrics_of(entry) for name, entry in result.table.items()}
    summary = aggregate(per_seed)
    table = format_table(summary, seeds)
    note = (f"{args.mode} demo, seeds {', '.join(map(str, seeds))}: mean +- sample sd over the seeds; accuracies, "
            f"SQA, quotes in % (0-100), ASR WER % (lower is better). Wall time per seed (this call; reused stages "
            f"count ~0): {', '.join(f'{s}: {w:.0f} s' for s, w in walls.items())}.\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.md").write_text(note + "\n" + table)
    (out / "seeds.json").write_text(json.dumps({"mode": args.mode, "seeds": seeds, "per_seed": per_seed,
                                                "summary": summary, "wall_s": walls}, indent=2) + "\n")
    print(note + "\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
