"""``emoreason demo``: the whole method end to end on a CPU, with real packaged weights.

Synthetic emotional speech -> offline-teacher targets (label-only, summary, detailed) -> mini
AudioLLMs (Whisper tiny.en speech encoder, Whisper base emotion encoder, SmolLM2-135M + LoRA,
sequence fusion, task-alternating schedule) -> evaluation on held-out speakers with the offline
judge -> ``report.html`` / ``report.md`` -> one held-out clip analysed by the inference engine.
The stages live in :mod:`emoreason.demo.pipeline`; this module only handles arguments.
"""
from __future__ import annotations

import argparse

HELP = """Run the whole method on the embedded default: no GPU, no model hub, no network.

Stages (each resumable: rerunning reuses finished stages; a changed parameter reruns that stage
and everything after it):
  1. synthesize a corpus (espeak-ng and flite voices, speaker-disjoint train/dev/test splits), or import real
     corpora with --corpus KIND:PATH (speaker-disjoint folds; --with-synthetic keeps both)
  2. build targets with the offline teacher: label-only, summary and detailed reasoning; pick the
     held-out speakers' test rows of every task (emotion, sentiment, asr, sqa)
  3. train mini AudioLLMs: label-only vs detailed targets, dual vs single encoder, end to end vs
     the transcript in the prompt
  4. evaluate every task on held-out speakers with the offline judge: emotion and sentiment
     accuracy (per-class, quotes, confusion), SQA score, ASR WER; 95% bootstrap CIs throughout
  5. analyse one held-out clip with the inference engine (emotion, --task asr, --task sqa) and
     write OUT/report.html + OUT/report.md

Budget: the full plan trains 4 variants (60 steps each) and evaluates 160 held-out emotion clips
from 4 speakers (10-12 minutes on 2 idle cores with native bf16, 18 on 2 cores limited to AVX2 and
fp32). By default (--time-budget auto) a CPU demo is fitted to 10 minutes with native bf16 and 15
without: warm-up steps measure this machine, then fewer held-out clips and, if need be, fewer
steps (the report says what was cut; training that runs long cuts clips again before the
evaluation). --time-budget MIN fits it to your minutes, --time-budget none runs the full plan.
--quick trains 2 x 22 steps (2-7 minutes; what CI runs). See docs/demo.md."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="the whole method end to end on CPU (synthetic speech, packaged weights)",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output directory (default: ./demo_out); rerun to resume")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="smaller corpus, fewer steps, two variants (label-only vs detailed): a few minutes; CI runs this")
    mode.add_argument("--tiny", action="store_true",
                      help="random tiny models (packaged config tiny) instead of the packaged weights: seconds, "
                      "checks the plumbing only (tests use it); the numbers mean nothing")
    p.add_argument("--variants", default=None, metavar="A,B",
                   help="comma-separated subset of variants: label-dual, detailed-dual, detailed-single, summary-dual, "
                   "detailed-dual-transcript, detailed-single-frames (the paper's single-encoder baseline without the pooled "
                   "label token; trains mini.yaml's 130 steps) (default: the mode's own set)")
    p.add_argument("--config", default=None, metavar="FILE|NAME",
                   help="base training config: a YAML file or a packaged name (default: mini, or tiny with --tiny; "
                   "python -m emoreason.configs lists them)")
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus, row selection, training and evaluation (default 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice). On a machine shared with other jobs, 1 can "
                   "be several times faster than oversubscribed cores")
    p.add_argument("--corpus", action="append", default=None, metavar="KIND:PATH",
                   help="run on a real corpus instead of the synthetic one (repeatable): KIND one of ravdess, cremad, "
                   "tess, emodb, savee, esd, msppodcast; PATH the folder as downloaded. Imported with its default "
                   "speaker folds (docs/data.md), the demo's four emotions only")
    p.add_argument("--with-synthetic", action="store_true", help="with --corpus: add the synthetic corpus too")
    p.add_argument("--corpus-fold", type=int, default=1, metavar="N",
                   help="with --corpus: which speaker fold of each corpus is held out for test (default 1)")
    p.add_argument("--transcribe", default=None, metavar="SPEC",
                   help="with --corpus: transcribe clips without a corpus transcript (SAVEE, MSP-Podcast without "
                   "Transcripts/) with this Whisper, e.g. packaged:whisper-tiny.en, so the teacher can quote")
    p.add_argument("--train-emotion-rows", type=int, default=None, metavar="N",
                   help="most emotion training rows (0: every train-split clip; default: the mode's cap)")
    p.add_argument("--joined-share", type=float, default=None, metavar="F",
                   help="share of the emotion training clips also joined in pairs, two clips of one speaker and one "
                        "emotion as one more training clip, so the model does not learn clip length as a cue and "
                        "labels windows holding two utterances (default 1.0; 0: none)")
    p.add_argument("--test-emotion-rows", type=int, default=None, metavar="N",
                   help="most held-out emotion rows evaluated (0: every held-out clip, what a corpus's fold should "
                   "be scored on; default: the mode's cap, 16 with --quick)")
    p.add_argument("--time-budget", type=_time_budget, default="auto", metavar="MIN|auto|none",
                   help="finish within about MIN minutes: a few warm-up steps measure this machine's step time and "
                   "evaluation speed; the held-out rows are cut first (to 80 emotion clips), then each variant's "
                   "schedule is shortened, then the rows again (the report records the budget used). auto: for the "
                   "full synthetic demo on a CPU, 10 with native bf16 and 15 without; none elsewhere; none: the full "
                   "plan (default: auto)")
    p.add_argument("--speaker-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="also score each variant's forced choice with every held-out speaker's emotion-encoder frames "
                   "normalised to the training clips' statistics (per-speaker CMVN, no labels used; a report section "
                   "with the paired difference): how much of the error on new voices is the voice. Default: on with "
                   "--corpus, off for the synthetic demo. Not counted in --time-budget (about one forward pass per "
                   "held-out clip and variant)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="extra training-config overrides for every variant, e.g. train.lr=5e-4 (changes rerun training)")
    p.set_defaults(func=_run)


def _time_budget(text: str) -> str | float | None:
    """``--time-budget``: ``auto``, ``none`` (None) or minutes > 0."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        minutes = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes, auto or none, got {text!r}") from None
    if not minutes > 0:
        raise argparse.ArgumentTypeError(f"expected minutes > 0, got {text!r}")
    return minutes


def _run(args: argparse.Namespace) -> int:
    import os
    import sys
    import time

    from emoreason.demo.plan import make_plan
    from emoreason.errors import UserError

    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything the demo needs is local: never wait on the hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    if (args.with_synthetic or args.transcribe or args.corpus_fold != 1) and not args.corpus:
        raise UserError("--with-synthetic, --transcribe and --corpus-fold need --corpus KIND:PATH")
    from emoreason.startup import import_ml_stack

    budget = args.time_budget
    if budget == "auto":
        from emoreason.demo.plan import auto_time_budget

        import_ml_stack()  # auto_time_budget asks torch about the machine: import it with the collector paused
        budget, why = auto_time_budget(mode, args.corpus, args.out)
        if why:
            print(f"[demo] {why}", file=sys.stderr, flush=True)
    plan = make_plan(mode, seed=args.seed, variants=variants, extra_overrides=args.overrides, corpora=args.corpus,
                     with_synthetic=args.with_synthetic, corpus_fold=args.corpus_fold, transcribe=args.transcribe,
                     train_emotion_rows=args.train_emotion_rows,
                     test_emotion_rows=args.test_emotion_rows, time_budget_min=budget,
                     joined_share=args.joined_share)
    if args.config or args.speaker_norm is not None:
        from dataclasses import replace

        plan = replace(plan, config=args.config or plan.config,
                       speaker_norm=plan.speaker_norm if args.speaker_norm is None else args.speaker_norm)
    import_ml_stack()
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from emoreason.demo.pipeline import run_demo
    from emoreason.demo.report import format_analysis

    tic = time.perf_counter()
    result = run_demo(plan, args.out, say=lambda line: print(line, file=sys.stderr, flush=True))
    wall = time.perf_counter() - tic
    print("\nAnalysis of one held-out clip:")
    print(format_analysis(result.analysis))
    print("\nHeld-out speakers (offline judge): emotion / sentiment accuracy % [95% bootstrap CI], SQA score 0-100, "
          "ASR WER %:")
    for name, entry in result.table.items():
        tasks = entry.get("tasks") or {}
        other = "  ".join(f"{label} {tasks[t]['score']:5.1f}" for t, label in
                          (("sentiment", "sentiment"), ("sqa", "SQA"), ("asr", "WER")) if t in tasks)
        # the judge's score, as the report's ER column (not the extracted-label accuracy, which
        # counts a hedged answer by its first label)
        ci = entry["tasks"]["emotion"].get("ci") or {}
        interval = f" [{ci['low']:.1f}, {ci['high']:.1f}]" if ci else ""
        print(f"  {name:24s} emotion {entry['score']:5.1f}{interval}  "
              f"(forced choice {entry['forced_choice_accuracy']:.1f})  {other}")
    print(f"  {'majority class':24s} emotion {result.majority:5.1f}")
    print(f"\nReport: {result.report_html.resolve()}  (and {result.report_md})")
    print(f"Wall time this run: {wall:.0f} s")
    return 0
