"""``emoreason analyze``: label + scores + explanation + quotes (+ transcript) for audio files, or
the model's other trained tasks: a transcript (``--task asr``), an answer (``--task sqa``).

    emoreason analyze --model runs/x a.wav b.mp3 --json > results.jsonl
    emoreason analyze --model runs/x a.wav --task asr               # transcript
    emoreason analyze --model runs/x a.wav --task sqa --question "What does the speaker want?"
    emoreason analyze --model runs/x *.wav --out results.jsonl     # resumable: skips files already there
    emoreason analyze --server http://127.0.0.1:8000 a.wav          # ask a running `emoreason serve`
    emoreason analyze --model runs/x a.wav --local                  # never use a running server of runs/x

Loading torch, transformers and the model costs a few seconds per command; ``--server`` sends the
files to a running ``emoreason serve`` instead (model loaded once), so a short clip comes back in
about the time of its analysis. ``--model RUN`` does that by itself when a server of the same
model is running (``emoreason.inference.discovery``); ``--local`` turns it off.

A bad file (unreadable, empty, not audio, NaN samples, too long) gets one line on stderr and the
exit code becomes 1; the other files are still analysed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from emoreason.audio import MAX_SECONDS
from emoreason.model.static_decode import AUTO_ON_GPU, DECODE_COMPILE_MODES

KEEP_WARM_ENV = "EMOREASON_KEEP_WARM"
"""Minutes ``analyze --keep-warm`` takes when the flag is not given (unset or 0: off)."""

if TYPE_CHECKING:
    from emoreason.jsonl import ResumableJsonl


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``emoreason analyze``."""
    p = subparsers.add_parser(
        "analyze",
        help="analyse audio files with a trained model: label, scores, explanation, quotes, transcript; or "
        "transcribe (--task asr) or answer a question (--task sqa)",
        description="Analyse audio files with a trained model. With --task emotion or sentiment each file gets "
        "a forced-choice label with a probability per candidate label, a generated explanation (continuing the "
        "label's sentence), the quotes in it, measured acoustic cues and the transcript (the speech encoder's Whisper "
        "decoder, with word timings, or the model's own ASR task; --transcript none skips it); "
        "--task asr gives the transcript only, --task sqa the answer to --question. Files longer than 30 s are "
        "analysed per 30 s window (segments) plus overall (transcripts stitched in window order).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (wav, flac, mp3, m4a, webm ...: what soundfile or ffmpeg decodes; any rate / channels)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="RUN_DIR", help="a run directory (uses RUN_DIR/final) or a save_pretrained directory")
    source.add_argument("--server", metavar="URL", help="instead of loading a model, send each file to a running "
                        "`emoreason serve` at URL (e.g. http://127.0.0.1:8000); --batch-size/--device/--dtype are the server's")
    p.add_argument("--api-key", metavar="KEY", help="with --server: the server's API key (default: the EMOREASON_API_KEY "
                   "environment variable)")
    p.add_argument("--local", action="store_true", help="with --model: always load the model in this command. Without it, "
                   "a running `emoreason serve` of the same model (found through the files servers write, see docs/inference.md) "
                   "gets the files instead, skipping the few seconds of start-up; not with --device, --dtype or --transcriber")
    p.add_argument("--keep-warm", type=float, default=None, metavar="MIN",
                   help="with --model, when no `emoreason serve` of it is running: after answering, leave one running in "
                   "the background (127.0.0.1, a free port) until it has had no requests for MIN minutes, so that the "
                   "next `analyze --model` answers through it without the seconds of start-up; with the default "
                   "settings only (not with --local, --device, --dtype, --transcriber, --quote-check, --transcript-language "
                   f"or --window) (default: the {KEEP_WARM_ENV} environment variable, else off)")
    p.add_argument("--task", choices=["emotion", "sentiment", "asr", "sqa"], default="emotion",
                   help="emotion: score the model's emotion labels; sentiment: positive / negative / neutral; "
                   "asr: transcribe; sqa: answer --question about each file (default: emotion)")
    p.add_argument("--question", metavar="TEXT", help="the question asked about each file (required with --task sqa, "
                   "refused otherwise); long files are answered per 30 s window, one line each")
    p.add_argument("--transcript", choices=["auto", "model", "whisper", "none"], default="auto",
                   help="where the transcript of emotion / sentiment / sqa results comes from: whisper: the speech "
                   "encoder's own Whisper decoder (when the speech encoder is an unchanged Whisper checkpoint with its "
                   "decoder, e.g. packaged:whisper-tiny.en), with word timings; with --task asr it replaces the "
                   "model's own transcript; model: the model's ASR task (one more generation per window, up to "
                   "--max-new-tokens tokens); auto: whisper when the model has it, else model; none: skip it "
                   "(default: auto)")
    add_transcriber_argument(p)
    p.add_argument("--quotes", choices=["constrained", "free"], default=None,
                   help="constrained: quotes in emotion / sentiment explanations may only hold spans of the transcript "
                   "(it is generated first, then the explanation); free: unconstrained generation (transcript and "
                   "explanation in one batch); every quote says whether it is grounded "
                   "(default: constrained with a transcript, free with --transcript none)")
    p.add_argument("--quote-min-probability", type=float, default=None, metavar="P",
                   help="constrained quotes may not hold a transcript word the Whisper transcriber gave a probability "
                        "under P (0-1; 0: any word; default: the engine's, see docs/inference.md); no effect on the "
                        "model's own ASR transcripts (no word probabilities)")
    p.add_argument("--explain", choices=["forced", "free"], default="forced",
                   help="forced: the emotion / sentiment explanation continues the forced-choice label's sentence "
                   "(\"The speaker sounds angry. ...\"), so label and explanation agree; free: the model writes the "
                   "whole answer (it may then disagree with the label: 'consistent' in the JSON says so) "
                   "(default: forced)")
    p.add_argument("--speaker-norm", action="store_true",
                   help="emotion / sentiment: the files are clips of ONE speaker; normalise that speaker's emotion-encoder "
                   "frames (mean and spread over all the files, no labels used) to the model's training clips' before "
                   "labelling (per-speaker CMVN: a voice unlike the training voices then stops pulling every answer to "
                   "one label). Give several clips covering the speaker's moods; needs the model's training audio "
                   "(train_clips.json) here; not with --server")
    p.add_argument("--json", action="store_true", help="print one JSON object per file (JSON lines) instead of a readable "
                   "summary; a failed file gives {\"file\", \"error\"} (and its line on stderr)")
    p.add_argument("--out", metavar="FILE.jsonl", help="also append each result to this JSON-lines file as it finishes; "
                   "files already in it are skipped, so an interrupted run resumes")
    p.add_argument("--prompt", help="the instruction asked about each clip (default: the first question of the task's "
                   "training pool; for sqa a template containing {question})")
    p.add_argument("--batch-size", type=int, default=4, help="clips or long-audio windows per forward pass (default: 4)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="length limit of each generated text (explanation, "
                   "transcript, answer) in tokens; 0 = label and scores only, no explanation and no transcript "
                   "(emotion / sentiment only) (default: 128)")
    p.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help=f"refuse longer files (default: {MAX_SECONDS:.0f})")
    p.add_argument("--timings", action="store_true", help="print where the time went on stderr: import (process "
                   "start until torch, transformers and the engine are imported), load (the model), compute (the files); "
                   "wall and CPU (user + sys) seconds of each")
    add_runtime_arguments(p)
    p.set_defaults(func=run)


TRANSCRIBER_HELP = ("the Whisper checkpoint whose decoder writes the 'whisper' transcript (and the 'auto' one, "
                    "which then always uses it): packaged:whisper-base (the mini model's emotion encoder: its encoder "
                    "is shared), packaged:whisper-tiny.en, a local Whisper directory, or a hub id (offline: only when "
                    "already cached); transcripts say source 'whisper:<this>' (default: the speech encoder's own "
                    "decoder, when it has one)")


QUOTE_CHECK_HELP = ("a second Whisper checkpoint (same forms as --transcriber) that transcribes every clip too when "
                    "quotes are constrained: quotes may then hold only transcript words it heard as well (each "
                    "transcript word says 'confirmed'). packaged:whisper-base removes most misheard words from quotes "
                    "(docs/evaluation.md) for one more transcription per 30 s window (~3 CPU-s on 2 cores) "
                    "(default: none)")


LANGUAGE_HELP = ("the language of the speech, for the Whisper transcripts: a Whisper language code (en, de, fr, "
                 "es, zh, ...); other languages than English need a multilingual --transcriber (and --quote-check), "
                 "e.g. packaged:whisper-base: the packaged tiny.en speech encoder transcribes English only. The "
                 "answer is in English either way (default: en)")


def add_transcriber_argument(p: argparse.ArgumentParser) -> None:
    """``--transcriber``, ``--quote-check`` and ``--transcript-language``: ``Engine.load``'s
    ``transcriber``, ``quote_check`` and ``transcript_language`` (shared by ``analyze``, ``serve``,
    ``eval run``)."""
    p.add_argument("--transcriber", default=None, metavar="WHISPER", help=TRANSCRIBER_HELP)
    p.add_argument("--quote-check", default=None, metavar="WHISPER", help=QUOTE_CHECK_HELP)
    p.add_argument("--transcript-language", default="en", metavar="LANG", help=LANGUAGE_HELP)


def add_runtime_arguments(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--dtype``, ``--decode-threads``, ``--window`` and ``--decode-compile``: where
    and in which dtype ``Engine.load`` puts the model, how long audio is windowed and how its decode
    loops run (shared by ``analyze`` and ``serve``)."""
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="weights dtype at inference; auto: bf16 on a CPU with native bf16 (AVX512-BF16 / AMX), "
                   "else as the model was trained (default: auto)")
    p.add_argument("--decode-threads", type=_decode_threads, default="auto", metavar="N",
                   help="torch threads of the token-by-token generation loops (encoders and prefills keep torch's "
                   "default); auto on a CPU: analyze times a few steps of each loop on torch's threads and on one "
                   "and keeps the faster (one wins when other processes share the cores), serve decodes on one "
                   "(its request threads need a core); on a GPU torch's default; 0: torch's default everywhere "
                   "(default: auto)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="emotion / sentiment: files longer than this are cut, at pauses, into windows of at most this "
                   "length, each labelled and explained on its own (a timeline) and summarised (asr and sqa take "
                   "30 s windows); 1-30 (default: the length the "
                   "model was trained for, recorded in it at training: twice its emotion clips' median length; 30 for models "
                   "saved before it was recorded)")
    p.add_argument("--decode-compile", choices=list(DECODE_COMPILE_MODES), default="auto",
                   help="how the LLM's token-by-token steps run: off = dynamic KV cache; static = static cache; "
                   "cudagraphs / inductor (CUDA only) = static cache with each step compiled into a CUDA graph "
                   "(the first call of each batch size and length bucket compiles: ~30 s for cudagraphs, "
                   "minutes for inductor); auto: " + (f"{AUTO_ON_GPU} on a GPU, off on a CPU" if AUTO_ON_GPU != "off" else
                   "off everywhere for now (the compile pays off in a long-running serve)") + " (default: auto)")


def _decode_threads(text: str) -> str | int | None:
    """``--decode-threads``: ``auto``, a whole number >= 1, or 0 (None: torch's setting)."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number >= 0, got {value}")
    return value or None


def format_summary(result: dict[str, Any], top: int = 3) -> str:
    """A few readable lines for one result dict (any task; older results without the transcript,
    answer and question keys too)."""
    duration = f"[{result['duration']:.1f} s]"
    if result.get("label") is not None:
        ranked = sorted(result["scores"].items(), key=lambda kv: -kv[1])[:top]
        lines = [f"{result['file']}: {result['label']} ({result['scores'][result['label']]:.0%})  {duration}",
                 "  scores: " + ", ".join(f"{k} {v:.0%}" for k, v in ranked)]
    else:
        lines = [f"{result['file']}: {result['task']}  {duration}"]
    if result.get("question"):
        lines.append(f"  question: {result['question']}")
    for seg in result.get("segments", []):
        if seg.get("label") is not None:
            what = f"{seg['label']} ({seg['scores'][seg['label']]:.0%})"
        else:
            what = seg.get("answer") or (seg.get("transcript") or {}).get("text", "")
        lines.append(f"  {seg['start']:7.1f}-{seg['end']:7.1f} s  {what}")
    if result.get("answer") is not None:
        lines.append(f"  answer: {result['answer']}")
    if result["explanation"]:
        lines.append(f"  explanation: {result['explanation']}")
    if result.get("consistent") is False:
        lines.append("  note: the explanation does not commit to the label above (label and text disagree)")
    elif result.get("explanation_trimmed"):
        n = result["explanation_trimmed"]
        lines.append(f"  note: {n} generated sentence{'s' if n != 1 else ''} that repeated or argued against the label "
                     "left out")
    if result["quotes"]:
        lines.append("  quotes: " + "; ".join(f'"{q["text"]}"' for q in result["quotes"]))
    if result.get("transcript"):
        lines.append(f"  transcript ({result['transcript']['source']}): {result['transcript']['text']}")
    return "\n".join(lines)


def process_age() -> float:
    """Seconds since this process started. On Linux from the kernel's own clocks (the start time in
    clock ticks of ``/proc/self/stat`` against ``CLOCK_BOOTTIME``: ~10 ms); elsewhere psutil's
    ``create_time``, whose Linux value rests on a boot time in whole seconds and read up to ~0.8 s
    long here; 0 when neither is available."""
    import time

    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, IndexError, ValueError):
        pass
    try:
        import psutil

        return time.time() - psutil.Process().create_time()
    except ImportError:  # pragma: no cover - psutil comes with transformers
        return 0.0


class StageClock:
    """Wall and CPU seconds per stage, the first counted from the process start (``--timings``).

    CPU is user + sys of the whole process (every thread): on a shared machine the wall time
    grows with the other jobs' load, the CPU time much less, so it is the number to compare.
    ``enabled=False``: :meth:`mark` does nothing (and the process start, :func:`process_age`, is
    not looked up: a command without ``--timings`` does not pay for it)."""

    def __init__(self, enabled: bool = True) -> None:
        import time

        self.enabled = enabled
        self.stages: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        if not enabled:
            return

        self._last = time.perf_counter() - process_age()  # the interpreter's own start-up belongs to "import" too
        self._last_cpu = 0.0  # process_time counts from the process start

    def mark(self, stage: str) -> None:
        """End ``stage`` now (it began where the previous one ended)."""
        if not self.enabled:
            return
        import time

        now, cpu = time.perf_counter(), time.process_time()
        self.stages[stage], self.cpu[stage] = now - self._last, cpu - self._last_cpu
        self._last, self._last_cpu = now, cpu

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.2f} s (cpu {self.cpu[k]:.2f} s)" for k, v in self.stages.items())
        return (f"emoreason: timings: {parts}; total {sum(self.stages.values()):.2f} s "
                f"(cpu {sum(self.cpu.values()):.2f} s)")


class _NoBar:
    """What the loop needs of a tqdm bar, doing nothing: stderr is not a terminal, where tqdm would
    hide itself anyway (``disable=None``), so its import (importlib.metadata and email with it) is
    not worth paying for, least of all when a running server does the work."""

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None

    @staticmethod
    def write(line: str, file: Any = None) -> None:
        print(line, file=file or sys.stdout, flush=True)


def _progress(total: int) -> Any:
    """A tqdm bar over ``total`` files on stderr when it is a terminal, else a :class:`_NoBar`."""
    if not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, leave=False)


def run(args: argparse.Namespace) -> int:
    from emoreason.inference.generation import make_plan

    # Check task / question / transcript now, before loading a model or sending any file (no labels
    # needed for that: the engine re-checks with the model's own).
    make_plan(args.task, [], args.prompt, args.question, args.max_new_tokens, args.transcript, args.quotes, args.explain,
              whisper=True)  # whether the model has a Whisper decoder is known once it is loaded
    transcriber = getattr(args, "transcriber", None)
    quote_check = getattr(args, "quote_check", None)
    language = getattr(args, "transcript_language", "en")
    window = getattr(args, "window", None)
    if args.server and (transcriber is not None or quote_check is not None or language != "en" or window is not None):
        from emoreason.errors import UserError

        flag = ("--transcriber" if transcriber is not None else "--quote-check" if quote_check is not None
                else "--transcript-language" if language != "en" else "--window")
        raise UserError(f"{flag} is chosen when the server starts (`emoreason serve {flag} ...`), not with --server")
    speaker_norm = getattr(args, "speaker_norm", False)
    if args.server and speaker_norm:
        from emoreason.errors import UserError

        raise UserError("--speaker-norm measures the files here with the model loaded here: use --model, not --server")
    discoverable = bool(args.model) and not getattr(args, "local", False) and args.device is None and args.dtype == "auto" \
        and transcriber is None and quote_check is None and language == "en" and window is None and not speaker_norm
    keep_warm = keep_warm_minutes(args, discoverable)
    clock = StageClock(enabled=getattr(args, "timings", False))
    files = list(args.files)
    out_file: ResumableJsonl | None = None
    if args.out:
        from emoreason.jsonl import ResumableJsonl  # asyncio comes with it: only when --out is given

        # files with a result (not an error) in an earlier run's output are skipped; failed ones retried
        out_file = ResumableJsonl(args.out, key="file", finished=lambda row: "error" not in row)
        if len(set(files)) < len(files):  # --out holds one row per file: a repeat would be written twice
            print(f"emoreason: {len(files) - len(set(files))} repeated file(s) analysed once", file=sys.stderr)
            files = list(dict.fromkeys(files))
        skipped = [f for f in files if f in out_file]
        files = [f for f in files if f not in out_file]
        if skipped:
            print(f"emoreason: {len(skipped)} file(s) already in {args.out}, skipped", file=sys.stderr)
        if not files:
            out_file.close()
            return 0
    if discoverable:
        from emoreason.inference.discovery import STARTING_WAIT_S, find, starting_since, wait_for_starting

        url = find(args.model, _auth_headers(args))
        since = starting_since(args.model) if url is None else None
        if since is not None and time.time() - since < STARTING_WAIT_S:  # `--keep-warm` started one: still loading
            print(f"emoreason: waiting for the `emoreason serve` of this model that is starting (up to "
                  f"{STARTING_WAIT_S:.0f} s from its start; --local loads the model here instead)", file=sys.stderr)
            url = wait_for_starting(args.model, _auth_headers(args))
        if url is not None:
            print(f"emoreason: using the running `emoreason serve` of this model at {url} (--local loads it here instead)",
                  file=sys.stderr)
            args.server = url
    engine = None
    if args.server:
        results = _remote_results(args, files)
    elif len(unreadable := _unreadable(files)) == len(files):  # nothing to analyse: say so before loading torch and the model
        results = iter([{"file": f, "error": unreadable[f]} for f in files])
    else:
        from emoreason.startup import gc_paused

        # a one-shot command: what the imports and the load build lives until it exits, so it is
        # frozen out of the collector's walks (emoreason/startup.py)
        with gc_paused():
            import torch  # noqa: F401  (here, not inside the load: --timings tells import from load)
            import transformers.modeling_utils  # noqa: F401

            from emoreason.inference.engine import Engine

            clock.mark("import")
            engine = Engine.load(args.model, device=args.device, max_seconds=args.max_seconds, dtype=args.dtype,
                                 decode_threads=args.decode_threads, decode_compile=args.decode_compile,
                                 transcriber=transcriber, quote_check=quote_check, transcript_language=language,
                                 window_seconds=window)
            clock.mark("load")
        stats = None
        if speaker_norm:  # every readable file given (also ones --out skips), so a resumed run normalises alike
            stats = engine.speaker_stats([f for f in dict.fromkeys(args.files) if f not in unreadable], args.batch_size)
            from emoreason.inference.speaker_norm import FEW_CLIPS

            print(f"emoreason: speaker normalisation over {stats.clips} file(s) of one speaker"
                  + (f" (fewer than {FEW_CLIPS}: the statistics hold the clips' own emotion, and normalising takes "
                     "it out; give more of the speaker's clips)" if stats.clips < FEW_CLIPS else ""), file=sys.stderr)
        normed = {"speaker_norm": {"clips": stats.clips}} if stats is not None else {}  # recorded in --json / --out
        results = ({**r.to_dict(), **(normed if r.ok else {})} for r in engine.iter_analyze(
            files, task=args.task, prompt=args.prompt, question=args.question, transcript=args.transcript,
            quotes=args.quotes, explain=args.explain, quote_min_probability=args.quote_min_probability,
            batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, speaker_stats=stats))
    failed = 0
    # The bar counts files (windows of long files finish at different times).
    with _progress(len(files)) as bar:
        try:
            for row in results:
                bar.update(1)
                if "error" in row:
                    failed += 1
                    bar.write(f"emoreason: error: {row['error']}", file=sys.stderr)
                if args.json:  # errors too: one object per input file, {"file", "error"}
                    print(json.dumps(row, ensure_ascii=False), flush=True)
                elif "error" not in row:
                    bar.write(format_summary(row), file=sys.stdout)
                if out_file is not None:
                    out_file.append(row)
        finally:  # a dead server mid-run: what finished is already in --out
            if out_file is not None:
                out_file.close()
    clock.mark("compute")
    if clock.enabled:
        print(clock.summary(), file=sys.stderr)
    if keep_warm and engine is not None:  # answered here, cold: leave a server for the next command
        _start_warm_server(args.model, engine.name, keep_warm, args.max_seconds)
    return 1 if failed else 0


def keep_warm_minutes(args: argparse.Namespace, discoverable: bool) -> float:
    """``--keep-warm`` checked (0: off): a one-line error for a negative value, or for the flag
    with settings a warm server would not share (``discoverable`` False); the environment's
    default is skipped quietly in that case."""
    from emoreason.errors import UserError

    given = getattr(args, "keep_warm", None)
    if given is None:
        try:
            minutes = float(os.environ.get(KEEP_WARM_ENV) or 0)
        except ValueError:
            raise UserError(f"{KEEP_WARM_ENV} must be a number of minutes, got {os.environ[KEEP_WARM_ENV]!r}") from None
        return minutes if discoverable and minutes > 0 else 0.0
    if given < 0:
        raise UserError(f"--keep-warm takes minutes >= 0, got {given:g}")
    if given > 0 and not discoverable:
        raise UserError("--keep-warm leaves a server with the default settings for the next `analyze --model`: not with "
                        "--server, --local, --device, --dtype, --transcriber, --quote-check, --transcript-language, --window or "
                        "--speaker-norm")
    return given


def _start_warm_server(model: str, name: str, minutes: float, max_seconds: float) -> None:
    """``--keep-warm``: start the background server unless one of this model is running or starting."""
    from emoreason.inference.discovery import running, start_warm_server

    if running(model):  # still loading (it did not answer /health), or busy: no second one
        return
    try:
        url, pid, log = start_warm_server(model, name, minutes, max_seconds)
    except OSError as e:  # the answer is printed already: say why there is no server, do not fail
        print(f"emoreason: --keep-warm: could not start `emoreason serve`: {e}", file=sys.stderr)
        return
    print(f"emoreason: keeping the model warm: `emoreason serve` at {url} (pid {pid}, log {log}) until it has had "
          f"no requests for {minutes:g} min; the next `analyze --model {model}` answers through it", file=sys.stderr)


def _unreadable(files: list[str]) -> dict[str, str]:
    """The files that cannot be audio (missing, a directory, empty), each with the one-line error
    the engine would give it; from the file system only, no decoding."""
    from emoreason.audio import AudioError, check_file

    found: dict[str, str] = {}
    for name in files:
        try:
            check_file(name, name)
        except AudioError as e:
            found[name] = str(e)
    return found


def _auth_headers(args: argparse.Namespace) -> dict[str, str]:
    """The Authorization header for the server's API key (``--api-key`` or EMOREASON_API_KEY), if any."""
    key = args.api_key or os.environ.get("EMOREASON_API_KEY")
    return {"authorization": f"Bearer {key}"} if key else {}


def _remote_results(args: argparse.Namespace, files: list[str]) -> Iterator[dict[str, Any]]:
    """POST each file to ``{args.server}/analyze``; yield result dicts (``{"file", "error"}`` for a
    file the server refused). An unreachable or misbehaving server raises UserError (one line)."""
    import httpx

    from emoreason.errors import UserError

    url = args.server.rstrip("/") + "/analyze"
    form = {"task": args.task, "max_new_tokens": str(args.max_new_tokens), "prompt": args.prompt or "",
            "question": args.question or "", "transcript": args.transcript, "quotes": args.quotes or "", "explain": args.explain}
    if args.quote_min_probability is not None:
        form["quote_min_probability"] = str(args.quote_min_probability)
    headers = _auth_headers(args)
    with httpx.Client(timeout=httpx.Timeout(10.0, read=None), headers=headers) as client:  # long clips take long: no read timeout
        for name in files:
            path = Path(name)
            if not path.is_file():
                yield {"file": name, "error": f"{name}: no such file"}
                continue
            try:
                with path.open("rb") as fh:
                    response = client.post(url, data=form, files={"file": (path.name, fh)})
            except httpx.HTTPError as e:
                raise UserError(f"cannot reach the emoreason server at {args.server} ({type(e).__name__}: {e}); "
                                "is `emoreason serve` running?") from None
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise UserError(f"{url} answered HTTP {response.status_code} with no JSON object: not an emoreason server?")
            error = body.get("error")
            # {"error": {"message", ...}} (OpenAI's shape, every route); a plain string from older servers
            message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            if response.status_code == 200 and "label" in body:
                yield {**body, "file": name}
            elif response.status_code in (400, 413) and error is not None:
                message = message.replace(path.name, name, 1)
                yield {"file": name, "error": message if name in message else f"{name}: {message}"}
            elif error is not None:
                raise UserError(f"{url} answered HTTP {response.status_code}: {message[:200]}")
            else:
                raise UserError(f"{url} answered HTTP {response.status_code}: {str(body)[:200]}")
