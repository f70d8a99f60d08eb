"""``emoreason data import FORMAT ...`` and ``emoreason data synth ...``: argument handling only.

The work lives in :mod:`emoreason.data.importers` and :mod:`emoreason.data.synth`; handlers import
them lazily so ``--help`` stays instant. This module is a command-line front end (layer 5 in
docs/layers.md, like ``emoreason/cli.py``): ``--transcribe`` builds the evaluation's Whisper ASR here
and hands the importers a plain callable, so the importers themselves never import ``eval``.
"""
from __future__ import annotations

import argparse


def _common(p: argparse.ArgumentParser, tasks_help: str | None) -> None:
    p.add_argument("--out", required=True, help="output folder: gets manifest.jsonl and wavs/ (reruns reuse existing wavs)")
    p.add_argument("--seed", type=int, default=0, help="seed for instruction choice and splits (default 0)")
    if tasks_help:
        p.add_argument("--tasks", default=None, help=tasks_help)


def _print(summary) -> int:
    print(summary.text())
    return 0


def _run_audiobench(args: argparse.Namespace) -> int:
    from emoreason.data.importers.audiobench import import_audiobench

    return _print(import_audiobench(
        args.source, args.out, task=args.task, vocabulary=args.vocabulary, hf_split=args.hf_split,
        data_dir=args.data_dir, split=args.split, seed=args.seed, keep_instructions=args.keep_instructions,
        limit=args.limit,
    ))


def _run_meld(args: argparse.Namespace) -> int:
    from emoreason.data.importers.meld import import_meld

    return _print(import_meld(args.csv, args.audio_dir, args.out, split=args.split, tasks=args.tasks,
                              seed=args.seed, workers=args.workers))


def _run_iemocap(args: argparse.Namespace) -> int:
    from emoreason.data.importers.iemocap import import_iemocap

    sessions = [int(s) for s in args.test_sessions.split(",") if s.strip()] if args.test_sessions else None
    return _print(import_iemocap(
        args.root, args.out, tasks=args.tasks, split_by=args.split_by, test_fraction=args.test_fraction,
        dev_fraction=args.dev_fraction, test_sessions=sessions, xxx=args.xxx, seed=args.seed,
        exclude_manifest=args.exclude_manifest,
    ))


def _run_generic(args: argparse.Namespace) -> int:
    from emoreason.data.importers.generic import import_generic, parse_mapping

    return _print(import_generic(
        args.table, args.out, mapping=parse_mapping(args.map), tasks=args.tasks, vocabulary=args.vocabulary,
        split=args.split, split_by=args.split_by, test_fraction=args.test_fraction, dev_fraction=args.dev_fraction,
        source=args.source, seed=args.seed,
    ))


def make_transcriber(spec: str | None):
    """``--transcribe SPEC`` -> (transcriber, name): the packaged Whisper (or any Whisper spec) of the
    cascade's ASR (:mod:`emoreason.eval.asr_whisper`); (None, None) for no spec."""
    if not spec or spec == "none":
        return None, None
    from emoreason.eval.asr_whisper import WhisperASR

    return WhisperASR(spec).transcribe, spec


def _run_named(args: argparse.Namespace) -> int:
    from pathlib import Path

    from emoreason.data.importers.corpora import import_corpus
    from emoreason.data.importers.named import SplitOptions

    options = SplitOptions(split_by=args.split_by, folds=args.folds, fold=args.fold, seed=args.seed,
                           dev_speakers=args.dev_speakers, emobox=Path(args.emobox) if args.emobox else None,
                           test_speakers=tuple(s.strip() for s in (args.test_speakers or "").split(",") if s.strip()))
    scan_options = {}
    if getattr(args, "calm", None) == "neutral":
        scan_options["calm_as"] = "neutral"
    if getattr(args, "languages", None):
        scan_options["languages"] = tuple(s.strip() for s in args.languages.split(",") if s.strip())
    emotions = [e.strip() for e in args.emotions.split(",") if e.strip()] if args.emotions else None
    transcriber, name = make_transcriber(args.transcribe)
    summary = import_corpus(args.format, args.root, args.out, options=options, tasks=args.tasks, emotions=emotions,
                            transcriber=transcriber, transcriber_name=name, scan_options=scan_options)
    print(summary.text(max_skipped=len(summary.skipped)))  # every malformed name, one line each
    if summary.skipped:
        print(f"{len(summary.skipped)} input(s) skipped (listed above); the rest was imported")
    return 0


def _register_named(fmt: argparse._SubParsersAction) -> None:
    """One sub-command per file-named corpus (:data:`emoreason.data.importers.corpora.KINDS`)."""
    from emoreason.data.importers.corpora import KINDS

    for kind in KINDS.values():
        p = fmt.add_parser(kind.name, help=f"{kind.title}: {kind.layout}",
                           description=f"{kind.title} from its release layout ({kind.layout}); get it at {kind.url} "
                                       f"({kind.licence}). File names that do not follow the scheme are reported by "
                                       "path and skipped; emotions outside our vocabulary are left out and counted.")
        p.add_argument("root", help="the corpus folder as downloaded (MSP-Podcast: the folder with Labels/ and Audios/)")
        _common(p, "comma list among emotion, sentiment, asr (default emotion; asr rows where there is a transcript)")
        p.add_argument("--emotions", default=None,
                       help="keep only these labels, e.g. neutral,happy,sad,angry (default: all that map to our vocabulary)")
        splits = ["speaker", "emobox"] + (["official"] if kind.official else [])
        p.add_argument("--split-by", choices=splits, default=kind.default_split,
                       help=f"speaker: leave-k-speakers-out folds (seeded); emobox: EmoBox's published folds (--emobox)"
                            f"{'; official: the release own split' if kind.official else ''} (default {kind.default_split})")
        p.add_argument("--folds", type=int, default=kind.folds, help=f"number of speaker folds (default {kind.folds})")
        p.add_argument("--fold", type=int, default=1, help="which fold is the test set, 1-based (default 1)")
        p.add_argument("--dev-speakers", type=int, default=0, help="non-test speakers held out for dev (default 0)")
        p.add_argument("--test-speakers", default=None, help="comma list of test speakers instead of a fold (e.g. 03,08)")
        p.add_argument("--emobox", default=None, metavar="DIR",
                       help="an EmoBox checkout (or its data/ folder): --split-by emobox reads its fold files")
        p.add_argument("--transcribe", default=None, metavar="SPEC",
                       help="transcribe clips that have no corpus transcript with this Whisper, e.g. "
                            "packaged:whisper-tiny.en (cached in OUT/transcripts.json)")
        if kind.name == "ravdess":
            p.add_argument("--calm", choices=["drop", "neutral"], default="drop",
                           help="RAVDESS calm is not in our vocabulary: leave it out (default) or count it as neutral")
        if kind.name == "esd":
            p.add_argument("--languages", default="en", help="en (speakers 0011-0020, default), zh (0001-0010), or en,zh")
        p.set_defaults(func=_run_named)


def _run_synth(args: argparse.Namespace) -> int:
    from emoreason.data.synth import synth_corpus

    emotions = tuple(e.strip() for e in args.emotions.split(",") if e.strip())
    return _print(synth_corpus(
        args.out, n=args.n, seed=args.seed, emotions=emotions, n_speakers=args.speakers,
        neutral_text_share=args.neutral_text_share, test_fraction=args.test_fraction, dev_fraction=args.dev_fraction,
        tasks=args.tasks, workers=args.workers, augment=not args.no_augment,
        **({"style": args.style} if args.style else {}),
    ))


def _register_import(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser("import", help="import a corpus into a manifest + 16 kHz wavs",
                         description="Import a corpus into OUT/manifest.jsonl + OUT/wavs/. Bad input records are "
                                     "reported (file:line or record N, and why) and the rest is imported.")
    fmt = imp.add_subparsers(dest="format", metavar="FORMAT", required=True)

    ab = fmt.add_parser("audiobench", help="AudioBench-format HF dataset (local copy or hub id)",
                        description="AudioBench-format dataset (context audio, instruction, answer): a save_to_disk "
                                    "folder, a folder of parquet/arrow files, or a hub id such as "
                                    "AudioLLMs/iemocap_emotion_recognition (needs network).")
    ab.add_argument("source", help="dataset folder or hub id")
    _common(ab, None)
    ab.add_argument("--task", choices=["emotion", "sentiment", "asr", "sqa"], default=None,
                    help="task of the dataset (default: inferred from its id/folder name)")
    ab.add_argument("--vocabulary", choices=["iemocap", "meld", "sentiment"], default=None,
                    help="label vocabulary for emotion sets (default: from the id; iemocap if unclear)")
    ab.add_argument("--hf-split", default=None, help="split of the dataset to read (default: test, or the only one)")
    ab.add_argument("--data-dir", default=None, help="hub data_dir, e.g. ASR-PART3-Test for MNSC")
    ab.add_argument("--split", default="test", choices=["train", "dev", "test"], help="manifest split for all rows (default test)")
    ab.add_argument("--keep-instructions", action="store_true",
                    help="keep the dataset's own instruction (default: seeded pick from our pools; the original goes to meta)")
    ab.add_argument("--limit", type=int, default=None, help="import only the first N records")
    ab.set_defaults(func=_run_audiobench)

    meld = fmt.add_parser("meld", help="MELD release: *_sent_emo.csv + dia{D}_utt{U}.mp4/.wav clips",
                          description="MELD's own release. Each CSV's split comes from its name (train/dev/test_sent_emo.csv). "
                                      "mp4 clips are converted to 16 kHz mono wav with ffmpeg.")
    meld.add_argument("csv", nargs="+", help="one or more MELD CSV files")
    meld.add_argument("--audio-dir", required=True, help="folder with dia{D}_utt{U}.{wav,flac,mp4,mkv} (its sub-folders are searched too)")
    _common(meld, "comma list among emotion, sentiment, asr (default emotion,sentiment)")
    meld.set_defaults(tasks="emotion,sentiment")
    meld.add_argument("--split", default=None, choices=["train", "dev", "test"], help="override the split taken from the CSV name")
    meld.add_argument("--workers", type=int, default=4, help="concurrent ffmpeg processes (default 4)")
    meld.set_defaults(func=_run_meld)

    iem = fmt.add_parser("iemocap", help="IEMOCAP release tree (Session1..5)",
                         description="IEMOCAP release layout: Session*/dialog/EmoEvaluation, transcriptions, sentences/wav.")
    iem.add_argument("root", help="folder holding Session1 .. Session5")
    _common(iem, "comma list among emotion, sentiment, asr (default emotion, as the paper; sentiment rows are "
                 "derived from the emotion label, an extra)")
    iem.set_defaults(tasks="emotion")
    iem.add_argument("--split-by", choices=["random", "speaker", "session"], default="random",
                     help="random: AudioBench-like seeded 90/10 over utterances; speaker / session: disjoint held-out groups")
    iem.add_argument("--test-fraction", type=float, default=0.1, help="held-out test share of utterances or speakers (default 0.1)")
    iem.add_argument("--dev-fraction", type=float, default=0.0, help="held-out dev share (default 0)")
    iem.add_argument("--test-sessions", default="5", help="--split-by session: comma list of test sessions (default 5)")
    iem.add_argument("--xxx", choices=["vote", "drop", "other"], default="vote",
                     help="turns without a majority label: vote = most frequent annotator category (default), drop, or other")
    iem.add_argument("--exclude-manifest", default=None, metavar="PATH",
                     help="leave out utterances of this manifest (e.g. AudioBench's IEMOCAP test set imported with "
                     "'data import audiobench'): same utterance id, or same decoded audio (content hash); counted in the summary")
    iem.set_defaults(func=_run_iemocap)

    gen = fmt.add_parser("generic", aliases=["csv", "jsonl"], help="any CSV/TSV/JSONL with a column mapping",
                         description="Any table: --map audio=COL,emotion=COL,sentiment=COL,transcript=COL,speaker=COL,"
                                     "split=COL,id=COL,question=COL,answer=COL ('label' = emotion). Audio paths are "
                                     "relative to the table's folder.")
    gen.add_argument("table", help="CSV, TSV or JSONL file")
    gen.add_argument("--map", default="", help="our_field=column pairs, comma separated (columns named like our fields need none)")
    _common(gen, "comma list among emotion, sentiment, asr, sqa (default: what the mapped columns support)")
    gen.add_argument("--vocabulary", choices=["iemocap", "meld", "emotion2vec"], default=None,
                     help="reject emotion labels outside this vocabulary (default: any label in the synonym table)")
    gen.add_argument("--split", default="train", choices=["train", "dev", "test"], help="split for rows without a split column (default train)")
    gen.add_argument("--split-by", choices=["none", "random", "speaker"], default="none",
                     help="none: use the split column / --split; random / speaker: seeded held-out shares")
    gen.add_argument("--test-fraction", type=float, default=0.1, help="--split-by: test share (default 0.1)")
    gen.add_argument("--dev-fraction", type=float, default=0.1, help="--split-by: dev share (default 0.1)")
    gen.add_argument("--source", default=None, help="corpus name for ids and 'source' (default: the table's file name)")
    gen.set_defaults(func=_run_generic)
    _register_named(fmt)


def _register_synth(sub: argparse._SubParsersAction) -> None:
    syn = sub.add_parser("synth", help="synthesize an emotional speech corpus offline (espeak-ng + sox)",
                         description="Synthetic emotional speech: sentences from a bank, several espeak-ng speakers, "
                                     "emotion-dependent prosody, speaker-disjoint splits, rows for emotion / sentiment / "
                                     "asr / sqa. Same seed -> byte-identical output; reruns skip existing audio.")
    syn.add_argument("--out", required=True, help="output folder: gets manifest.jsonl and wavs/")
    syn.add_argument("--n", type=int, default=300, help="number of utterances (default 300)")
    syn.add_argument("--seed", type=int, default=0, help="seed for sentences, speakers, prosody jitter, splits, instructions")
    syn.add_argument("--emotions", default="neutral,happy,sad,angry",
                     help="comma list among neutral, happy, sad, angry, fearful, surprised (default the first four)")
    syn.add_argument("--speakers", type=int, default=12, help="number of synthetic speakers (default 12)")
    syn.add_argument("--neutral-text-share", type=float, default=0.4,
                     help="share of emotional utterances spoken with a neutral-worded sentence (default 0.4)")
    syn.add_argument("--test-fraction", type=float, default=0.15, help="share of speakers held out for test (default 0.15)")
    syn.add_argument("--dev-fraction", type=float, default=0.15, help="share of speakers held out for dev (default 0.15)")
    syn.add_argument("--tasks", default=None, help="comma list among emotion, sentiment, asr, sqa (default all)")
    syn.add_argument("--workers", type=int, default=None, help="concurrent synthesis jobs (default: CPU count)")
    syn.add_argument("--style", default=None, choices=("v1", "v2", "v3", "v4"),
                     help="v4 (default): v1 with every third speaker spoken by CMU flite (needs the flite package); "
                          "v1: the first corpus, espeak-ng only (fixed prosody, clean audio); v2: varied voices, prosody "
                          "ranges from the acoustic-correlates literature, spectral tilt, augmentation; v3: v1's prosody "
                          "on v2's voices with augmentation (transfer measured in docs/data.md)")
    syn.add_argument("--no-augment", action="store_true",
                     help="v2 / v3 without noise / reverberation / channel / gain / speed augmentation")
    syn.set_defaults(func=_run_synth)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``import`` and ``synth`` under ``emoreason data``."""
    _register_import(subparsers)
    _register_synth(subparsers)
