"""`emoreason eval score | run | compare`: argument handling only; the work lives in the modules."""
from __future__ import annotations

import argparse
from pathlib import Path

from emoreason.text.label_extraction import READINGS


def _add_judge_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge", default="offline",
                   help="'offline' (built-in rules, no LLM; the default) or the base URL of an OpenAI-compatible "
                        "chat endpoint serving the judge LLM, e.g. http://127.0.0.1:8000/v1 (AudioBench used "
                        "Llama-3-70B-Instruct on vLLM)")
    p.add_argument("--offline-reading", choices=sorted(READINGS), default="audiobench",
                   help="how the offline judge rates emotion / sentiment answers: 'audiobench' (default; as "
                        "AudioBench's Llama-3-70B judge reads its binary rubric: frustrated~angry and "
                        "excited~happy, 'no emotion detected' = neutral, hedged answers wrong, implied "
                        "sentiment) or 'literal' (exact label match; a two-label verdict covers either)")
    p.add_argument("--judge-model", default=None,
                   help="model name to request from the judge endpoint (default: the first one it lists)")
    p.add_argument("--judge-key", default="EMPTY", help="API key sent to the judge endpoint (default: EMPTY)")
    p.add_argument("--concurrency", type=int, default=8, help="judge requests in flight at once (default 8)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per judge request (default 120)")
    p.add_argument("--retries", type=int, default=3,
                   help="retries per judge request with exponential backoff (default 3); after that the run "
                        "stops, keeping every row already scored")
    p.add_argument("--task", choices=["emotion", "sentiment", "sqa", "asr"], default=None,
                   help="task of rows without a 'task' field (default: inferred from the reference label)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (and of instruction choice in run)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs (default 1000)")
    p.add_argument("--min-judge-success", type=float, default=0.9, metavar="FRACTION",
                   help="with an LLM judge, fail (exit 1, scores still written) when a task's judge success rate "
                        "is under this (default 0.9); rows the judge gave no text for are asked again on a rerun")
    p.add_argument("--overwrite", action="store_true",
                   help="discard scores already in --out instead of resuming from them")


def _judge(args: argparse.Namespace, out: Path):
    from emoreason.eval.judges import make_judge

    return make_judge(args.judge, model=args.judge_model, api_key=args.judge_key, concurrency=args.concurrency,
                      timeout=args.timeout, retries=args.retries, cache_path=out / "judge_cache.jsonl") \
        if args.judge != "offline" else make_judge("offline", offline_reading=args.offline_reading)


def _print_summary(metrics: dict, out: Path) -> None:
    for task, m in metrics["tasks"].items():
        line = f"{task:9s} n={m['n']:<6d} {m['metric']}: {m['score']:.1f} [{m['ci']['low']:.1f}, {m['ci']['high']:.1f}]"
        if "success_rate" in m:
            line += f"  judge success {100 * m['success_rate']:.1f}%"
        if "classification" in m:
            c = m["classification"]
            line += f"  wt acc {c['weighted_accuracy']:.1f} unwt acc {c['unweighted_accuracy']:.1f} macro-F1 {c['macro_f1']:.1f}"
        print(line)
    print(f"wrote {out / 'scores.jsonl'}, metrics.json, report.md, report.html")


def cmd_score(args: argparse.Namespace) -> int:
    from emoreason.eval.scoring import score_file

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = score_file(args.predictions, out, _judge(args, out), task=args.task, seed=args.seed,
                         bootstrap=args.bootstrap, overwrite=args.overwrite, min_success=args.min_judge_success)
    _print_summary(metrics, out)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from emoreason.errors import UserError
    from emoreason.startup import import_ml_stack

    import_ml_stack()
    from emoreason.eval.scoring import score_file

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preds = out / "predictions.jsonl"
    if args.overwrite:
        preds.unlink(missing_ok=True)
    chosen = [flag for flag, value in (("--model", args.model), ("--cascade", args.cascade),
                                       ("--classifier", args.classifier), ("--endpoint", args.endpoint)) if value]
    if len(chosen) > 1:
        raise UserError(f"eval run takes one of --model, --cascade, --classifier, --endpoint (got {', '.join(chosen)})")
    if args.speaker_norm and not args.model:
        raise UserError("--speaker-norm normalises our model's emotion frames: it needs --model RUN_DIR")
    if args.endpoint:
        from emoreason.eval.endpoint import endpoint_predictions

        endpoint_predictions(args.endpoint, args.manifest, preds, model=args.endpoint_model, task=args.task,
                             limit=args.limit, seed=args.seed, max_tokens=args.max_new_tokens,
                             instructions=args.instructions, concurrency=args.endpoint_concurrency,
                             api_key=args.endpoint_key)
    elif args.cascade:
        from emoreason.eval.cascade import cascade_predictions

        cascade_predictions(args.manifest, preds, llm=args.cascade_llm, llm_model=args.cascade_model,
                            task=args.task, limit=args.limit, asr=args.cascade_asr)
    elif args.classifier:
        from emoreason.eval.classifier import classifier_predictions

        classifier_predictions(args.classifier, args.manifest, preds, task=args.task, limit=args.limit)
    elif args.model:
        from emoreason.eval.run import model_predictions

        model_predictions(args.model, args.manifest, preds, task=args.task, limit=args.limit,
                          batch_size=args.batch_size, seed=args.seed, max_new_tokens=args.max_new_tokens,
                          instructions=args.instructions, exclude_training_clips=args.exclude_training_clips,
                          explain=args.explain, transcript=args.transcript, quotes=args.quotes,
                          quote_min_probability=args.quote_min_probability, transcriber=args.transcriber,
                          quote_check=args.quote_check, transcript_language=args.transcript_language,
                          speaker_norm=args.speaker_norm)
    else:
        raise UserError("eval run needs --model RUN_DIR, --cascade, --classifier CHECKPOINT_DIR or --endpoint URL")
    if args.probe_train:
        _run_probe_beside(args, out)
    metrics = score_file(preds, out, _judge(args, out), task=args.task, seed=args.seed,
                         bootstrap=args.bootstrap, overwrite=args.overwrite, min_success=args.min_judge_success)
    _print_summary(metrics, out)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from emoreason.startup import import_ml_stack

    import_ml_stack()
    from emoreason.eval.probe import format_probe, resolve_encoder, run_probe

    encoder = resolve_encoder(args.model, args.config, args.overrides)
    metrics = run_probe(args.train, args.manifest, args.out, encoder, task=args.task, c=args.c, seed=args.seed,
                        resamples=args.bootstrap, cache_dir=args.cache_dir, train_split=args.train_split,
                        test_split=args.split)
    print(format_probe(metrics))
    print(f"wrote {Path(args.out) / 'probe.json'}")
    return 0


def _run_probe_beside(args: argparse.Namespace, out: Path) -> None:
    """``eval run --probe-train``: the probe on the model's own emotion encoder, same test rows."""
    from emoreason.errors import UserError
    from emoreason.eval.probe import resolve_encoder, run_probe
    from emoreason.eval.report import PROBE_DIR

    if not args.model:
        raise UserError("--probe-train needs --model (the probe uses that model's emotion encoder)")
    run_probe(args.probe_train, args.manifest, out / PROBE_DIR, resolve_encoder(args.model, None),
              seed=args.seed, resamples=args.bootstrap)


def cmd_compare(args: argparse.Namespace) -> int:
    from emoreason.eval.compare import compare_table, per_class_table, render_markdown

    names = args.names.split(",") if args.names else None
    head, rows = per_class_table(args.dirs, names, args.per_class) if args.per_class else compare_table(args.dirs, names)
    text = render_markdown(head, rows)
    if args.out:
        Path(args.out).write_text(text)
    print(text, end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="score predictions (offline or LLM judge), run and compare evaluations",
                              description="Evaluate emotion / sentiment reasoning, SQA and ASR outputs, AudioBench-style.")
    sub = p.add_subparsers(dest="eval_verb", metavar="EVAL_VERB")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    s = sub.add_parser("score", help="score an existing predictions JSONL",
                       description="Score predictions: each row needs 'prediction' and 'reference' (gold label or a "
                                   "reference sentence) or 'label'; optional task, question, transcript, id. Writes "
                                   "DIR/scores.jsonl (resumable), metrics.json, report.md, report.html, confusion.png.")
    s.add_argument("--predictions", required=True, help="predictions JSONL file")
    s.add_argument("--out", required=True, help="output directory (rerun with the same directory to resume)")
    _add_judge_options(s)
    s.set_defaults(func=cmd_score)

    r = sub.add_parser("run", help="generate predictions for a manifest (our model, another audio LLM, the cascade "
                                   "or a classifier), then score",
                       description="Generate answers for the rows of a manifest with a trained run (--model) or "
                                   "another audio LLM behind an OpenAI-compatible endpoint (--endpoint), both on "
                                   "emotion, sentiment, sqa and asr rows with the same instructions; the ASR -> "
                                   "text LLM cascade baseline (--cascade) or an emotion2vec+ classifier "
                                   "(--classifier), both on emotion / sentiment rows; write DIR/predictions.jsonl, "
                                   "then score it like `eval score` (asr by corpus WER).")
    r.add_argument("--model", help="run directory or its final/ directory (loaded by the inference engine)")
    r.add_argument("--endpoint", default=None, metavar="URL",
                   help="base URL of an OpenAI-compatible chat endpoint serving an audio LLM that takes input_audio "
                        "parts (e.g. vLLM serving Qwen2-Audio: http://127.0.0.1:8000/v1); each clip is sent as "
                        "16 kHz mono wav with the row's instruction")
    r.add_argument("--endpoint-model", default=None, metavar="NAME",
                   help="model name to request from --endpoint (default: the first one it lists)")
    r.add_argument("--endpoint-key", default="EMPTY", help="API key sent to --endpoint (default: EMPTY)")
    r.add_argument("--endpoint-concurrency", type=int, default=4,
                   help="--endpoint requests in flight at once (default 4)")
    r.add_argument("--cascade", action="store_true",
                   help="cascade baseline (paper Table 5): Whisper transcript (--cascade-asr) -> text answer")
    r.add_argument("--cascade-asr", default="packaged:whisper-tiny.en",
                   help="Whisper checkpoint of the cascade: a hub id (openai/whisper-large-v3), a local directory, "
                        "or packaged:whisper-tiny.en / packaged:whisper-base offline (default packaged:whisper-tiny.en)")
    r.add_argument("--classifier", default=None, metavar="CHECKPOINT_DIR",
                   help="classifier baseline (paper Table 6): an emotion2vec+ checkpoint directory (FunASR layout: "
                        "config.yaml + model.pt) whose 9-class head is mapped onto the manifest's labels")
    r.add_argument("--cascade-llm", default="offline",
                   help="text step of the cascade: 'offline' (lexical rule) or an OpenAI-compatible base URL")
    r.add_argument("--cascade-model", default=None, help="model name for --cascade-llm (default: first listed)")
    r.add_argument("--manifest", required=True, help="manifest JSONL with emotion / sentiment / sqa / asr rows and audio "
                   "(or a datasets save_to_disk dir / parquet file / hf:ID, SOURCE#field=column mapping: docs/data.md)")
    r.add_argument("--exclude-training-clips", action="store_true",
                   help="--model: leave out test clips whose audio the model was trained on (default: refuse to "
                        "evaluate and name them; the run's train_clips.json records its training audio)")
    r.add_argument("--instructions", choices=["dataset", "pool"], default="dataset",
                   help="instruction given to the model: 'dataset' (the dataset's own, as AudioBench evaluates; "
                        "the default) or 'pool' (our training pool's questions, chosen by --seed and row id)")
    r.add_argument("--out", required=True, help="output directory (rerun with the same directory to resume)")
    r.add_argument("--limit", type=int, default=None, help="only the first N rows (smoke tests)")
    r.add_argument("--batch-size", type=int, default=8, help="clips per engine call (default 8)")
    r.add_argument("--explain", choices=("free", "forced"), default="free",
                   help="emotion / sentiment answers: free (default, the paper's protocol: the judge reads the label the "
                        "model wrote) or forced (as `analyze` answers: the forced-choice label's sentence starts the answer)")
    r.add_argument("--transcript", choices=("auto", "model", "whisper", "none"), default="auto",
                   help="--model, emotion / sentiment rows: where the engine's transcript comes from, as `analyze` "
                        "takes it: auto (default: the speech encoder's Whisper decoder when it has one, else the "
                        "model's ASR task), model, whisper, or none (the paper's protocol: no transcript, free quotes)")
    r.add_argument("--quotes", choices=("constrained", "free"), default=None,
                   help="--model, emotion / sentiment rows: constrained (default with a transcript: quotes may only "
                        "hold spans of the engine's transcript, as `analyze` answers) or free (the paper's "
                        "unconstrained generation); rows record the mode, and a resumed --out must keep it")
    r.add_argument("--quote-min-probability", type=float, default=None, metavar="P",
                   help="--model, constrained quotes: transcript words the Whisper transcriber gave a probability under "
                        "P (0-1) may not be quoted (0: any word; default: the engine's); recorded in the rows' mode")
    r.add_argument("--transcriber", default=None, metavar="WHISPER",
                   help="--model: the Whisper checkpoint of the engine's whisper / auto transcript, as `analyze` takes it "
                        "(packaged:whisper-base, a local Whisper directory, a hub id; default: the speech encoder's own "
                        "decoder); recorded in the rows' mode")
    r.add_argument("--quote-check", default=None, metavar="WHISPER",
                   help="--model, constrained quotes: a second Whisper checkpoint (as --transcriber) that transcribes "
                        "every clip too; quotes may hold only words it heard as well (e.g. packaged:whisper-base; "
                        "default: none); recorded in the rows' mode")
    r.add_argument("--transcript-language", default="en", metavar="LANG",
                   help="--model: the language of the speech, for the Whisper transcripts (en, de, fr, ...; another "
                        "language than English needs a multilingual --transcriber, e.g. packaged:whisper-base; "
                        "default: en); recorded in the rows' mode")
    r.add_argument("--speaker-norm", action="store_true",
                   help="--model, emotion / sentiment rows: normalise each speaker's emotion-encoder frames from that "
                        "speaker's statistics (over all of its rows here; no labels used) to the training clips' "
                        "(per-speaker CMVN; every row needs a speaker; the run's train_clips.json audio must be "
                        "here); recorded in the rows' mode. Off by default: AudioBench and the paper score clip by clip")
    r.add_argument("--max-new-tokens", type=int, default=128,
                   help="length of the generated answer, in tokens (default 128; max_tokens for --endpoint)")
    _add_judge_options(r)
    r.set_defaults(func=cmd_run)

    r.add_argument("--probe-train", default=None, metavar="MANIFEST",
                   help="also fit a linear probe on the model's frozen emotion encoder with this manifest's emotion "
                        "rows, score it on --manifest, and show it in the report (DIR/probe/)")

    pr = sub.add_parser("probe", help="linear-probe baseline on a frozen emotion encoder (mean+std pooled frames)",
                        description="Fit a logistic regression on the emotion encoder's pooled frames (mean and std "
                                    "over time) of --train's emotion rows and score it on --manifest's: accuracy and "
                                    "unweighted accuracy with 95%% bootstrap CIs, per class. Writes DIR/probe.json and "
                                    "DIR/predictions.jsonl; features are cached (DIR/features unless --cache-dir).")
    pr.add_argument("--train", required=True, help="manifest whose emotion rows train the probe (the model's training split)")
    pr.add_argument("--manifest", required=True, help="manifest whose emotion rows are scored (the held-out clips)")
    pr.add_argument("--train-split", default=None, help="only --train rows of this split (e.g. train)")
    pr.add_argument("--split", default=None, help="only --manifest rows of this split (e.g. test)")
    pr.add_argument("--out", required=True, help="output directory")
    pr.add_argument("--model", default=None, help="run directory or final/: probe that model's emotion encoder")
    pr.add_argument("--config", default=None,
                    help="or a config (packaged name or YAML) whose model.emotion_encoder is probed (default: mini)")
    pr.add_argument("--task", default="emotion", choices=["emotion", "sentiment"], help="rows to probe (default emotion)")
    pr.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the logistic regression (default 1.0)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the fit and the bootstrap")
    pr.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs (default 1000)")
    pr.add_argument("--cache-dir", default=None, help="pooled-feature cache shared between probes")
    pr.add_argument("overrides", nargs="*", default=[], help="dotted key=value overrides of --config")
    pr.set_defaults(func=cmd_probe)

    c = sub.add_parser("compare", help="one table across evaluation directories",
                       description="Print one markdown table (scores per task, average, accuracies, quote scores) "
                                   "across directories written by `eval score` / `eval run`.")
    c.add_argument("dirs", nargs="+", help="evaluation directories holding metrics.json")
    c.add_argument("--names", default=None, help="comma-separated row names (default: directory names)")
    c.add_argument("--out", default=None, help="also write the table to this markdown file")
    c.add_argument("--per-class", nargs="?", const="emotion", default=None, choices=["emotion", "sentiment"],
                   help="instead: per-class accuracy of the task (default emotion) with Wt Avg / Unwt Avg, "
                        "as in paper Table 6")
    c.set_defaults(func=cmd_compare)
