"""`eval run`: generate predictions for a manifest with our model (inference Engine) into
DIR/predictions.jsonl (appended per row, resumable), then score them. The rows, instructions and
references defined here are shared by the other generators: the cascade, the classifier and an
outside audio LLM behind an endpoint (``eval/endpoint.py``).

Every task of the paper is evaluated: emotion / sentiment (the engine's explanation, judged
against the dataset's answer sentence), sqa (the engine's answer, judged against the reference
answer) and asr (the engine's transcript, scored by WER against the row's transcript).

Emotion / sentiment rows are generated in one *mode* (:class:`GenerationMode`): where the engine's
transcript comes from (``auto`` | ``model`` | ``whisper`` | ``none``), whether quotes are held to it
(``constrained`` | ``free``, with the word-probability threshold ``quote_min_probability``) and how
the explanation starts (``free`` | ``forced``), and whether each speaker's emotion frames are
normalised (``speaker_norm``). Every row records
its mode and the transcript the engine used (``engine_transcript``: text + source), so the scorer can
check quotes against both that transcript and what was said (the row's reference ``transcript``). A
predictions file holds one mode: resuming it in another is refused.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoreason.errors import UserError
from emoreason.jsonl import ResumableJsonl

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
EVAL_TASKS = ("emotion", "sentiment", "sqa", "asr")
INSTRUCTION_SOURCES = ("dataset", "pool")
"""Where the instruction comes from: the dataset's own (AudioBench's protocol), or our pool."""
TRANSCRIPTS = ("auto", "model", "whisper", "none")
"""``--transcript``: the engine's transcript source for emotion / sentiment rows
(``emoreason.inference.generation.TRANSCRIPT_MODES``, restated: eval checks before loading a model)."""
QUOTES = ("constrained", "free")
EXPLAINS = ("free", "forced")


@dataclass(frozen=True)
class GenerationMode:
    """How emotion / sentiment answers are generated (what a predictions file records per row).

    ``transcript``: the setting asked for (``auto`` resolves per model; the row's
    ``engine_transcript.source`` says what it became); ``quotes``: ``constrained`` (quotes may only
    hold spans of that transcript) or ``free``; ``explain``: ``free`` (the paper's protocol) or
    ``forced`` (the answer starts with the forced-choice label's sentence, as ``analyze`` answers).
    """

    transcript: str = "auto"
    quotes: str = "constrained"
    explain: str = "free"
    quote_min_probability: float = 0.0
    """Constrained quotes: the engine's word-probability threshold (0 with free quotes, and in
    rows from before it was recorded, which were all made without one)."""
    transcriber: str | None = None
    """The engine's Whisper checkpoint (``Engine.load``'s ``transcriber``); None: the speech
    encoder's own decoder (and in rows from before it was recorded, and with ``transcript``
    ``model`` / ``none``, where no Whisper checkpoint transcribes)."""
    quote_check: str | None = None
    """The engine's second Whisper checkpoint (``Engine.load``'s ``quote_check``): constrained
    quotes hold only words it heard too; None: no check (and in rows from before it was recorded,
    and with free quotes, where it does nothing)."""
    transcript_language: str = "en"
    """The language the Whisper transcripts were asked for (``Engine.load``'s; ``en`` in rows from
    before it was recorded, which were all English, and where no Whisper transcribes)."""
    speaker_norm: bool = False
    """Each speaker's emotion frames normalised to the training clips' statistics, from all of
    that speaker's rows (:mod:`emoreason.inference.speaker_norm`); False in rows from before it
    was recorded."""

    @classmethod
    def make(cls, transcript: str = "auto", quotes: str | None = None, explain: str = "free",
             quote_min_probability: float | None = None, transcriber: str | None = None,
             quote_check: str | None = None, transcript_language: str = "en",
             speaker_norm: bool = False) -> "GenerationMode":
        """Checked mode; ``quotes`` None: ``constrained`` with a transcript, ``free`` without one
        (the engine's rule); ``quote_min_probability`` None: the engine's default. UserError (one
        line) on a bad combination."""
        from emoreason.inference.generation import check_quote_min_probability

        for name, value, allowed in (("transcript", transcript, TRANSCRIPTS), ("explain", explain, EXPLAINS)):
            if value not in allowed:
                raise UserError(f"unknown {name} setting {value!r} (expected one of {', '.join(allowed)})")
        if quotes is None:
            quotes = "free" if transcript == "none" else "constrained"
        if quotes not in QUOTES:
            raise UserError(f"unknown quotes setting {quotes!r} (expected one of {', '.join(QUOTES)})")
        if quotes == "constrained" and transcript == "none":
            raise UserError("--quotes constrained needs a transcript to hold quotes to (--transcript auto, model "
                            "or whisper), not --transcript none")
        threshold = check_quote_min_probability(quote_min_probability) if quotes == "constrained" else 0.0
        whisper = transcript in ("auto", "whisper")
        return cls(transcript, quotes, explain, threshold, transcriber if whisper else None,
                   quote_check if whisper and quotes == "constrained" else None,
                   transcript_language if whisper else "en", bool(speaker_norm))

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> "GenerationMode":
        """The mode a predictions row was made in; rows from before modes were recorded were all
        made without a transcript, with free quotes and free explanations."""
        return cls(row.get("transcript_mode", "none"), row.get("quotes_mode", "free"), row.get("explain", "free"),
                   float(row.get("quote_min_probability", 0.0)), row.get("transcriber"), row.get("quote_check"),
                   row.get("transcript_language", "en"), bool(row.get("speaker_norm", False)))

    def fields(self) -> dict[str, Any]:
        """The row fields that record it."""
        return {"transcript_mode": self.transcript, "quotes_mode": self.quotes, "explain": self.explain,
                "quote_min_probability": self.quote_min_probability, "transcriber": self.transcriber,
                "quote_check": self.quote_check, "transcript_language": self.transcript_language,
                "speaker_norm": self.speaker_norm}

    def flags(self) -> str:
        return ((f"--transcriber {self.transcriber} " if self.transcriber else "")
                + (f"--quote-check {self.quote_check} " if self.quote_check else "")
                + (f"--transcript-language {self.transcript_language} " if self.transcript_language != "en" else "")
                + ("--speaker-norm " if self.speaker_norm else "")
                + f"--transcript {self.transcript} --quotes {self.quotes} --explain {self.explain} "
                f"--quote-min-probability {self.quote_min_probability:g}")


def eval_rows(manifest: str | Path, task: str | None, limit: int | None, purpose: str,
              tasks: tuple[str, ...] = EVAL_TASKS) -> list:
    """The manifest's rows of ``tasks`` (only ``task``'s when given), the first ``limit``;
    UserError naming ``purpose`` when there are none."""
    from emoreason.data.manifest import read_manifest

    rows = [r for r in read_manifest(manifest) if r.task in tasks and (task is None or r.task == task)]
    if limit:
        rows = rows[:limit]
    if not rows:
        raise UserError(f"{manifest}: no {' / '.join(tasks)} rows to {purpose}")
    return rows


def emotion_rows(manifest: str | Path, task: str | None, limit: int | None, purpose: str) -> list:
    """The emotion / sentiment rows (what the cascade baseline answers)."""
    return eval_rows(manifest, task, limit, purpose, tasks=("emotion", "sentiment"))


def instruction_of(row, source: str = "dataset", seed: int = 0) -> str:
    """The instruction ``row`` is evaluated with.

    ``dataset``: the dataset's own instruction. An AudioBench import keeps it in
    ``meta.corpus_instruction`` (or in ``instruction`` when imported with ``--keep-instructions``);
    other corpora have none, and their row's instruction is used. ``pool``: a question from our
    training pool chosen by ``(seed, row id)`` (``data.questions.instruction_for``), reproducible,
    unlike AudioBench's unseeded ``random.choice``.
    """
    if source not in INSTRUCTION_SOURCES:
        raise UserError(f"unknown instruction source {source!r} (expected one of {', '.join(INSTRUCTION_SOURCES)})")
    if source == "dataset":
        own = row.meta.get("corpus_instruction") or row.instruction
        if own:
            return own
    from emoreason.data.questions import instruction_for

    question = (row.meta.get("question") or row.instruction) if row.task == "sqa" else None
    return instruction_for(row.id, row.task, seed=seed, question=question)


def reference_of(row) -> str:
    """What the prediction is compared with: the transcript (asr), the reference answer (sqa), the
    dataset's answer sentence ("The speaker's tone sounds anger.", as AudioBench's judge gets it)
    for emotion / sentiment, or the bare label for rows whose target a teacher wrote (it holds
    our own explanation, not the dataset's answer)."""
    if row.task == "asr":
        return row.transcript if row.transcript is not None else (row.target or "")
    if row.task == "sqa":
        answer = row.target or row.meta.get("answer")
        if not answer:
            raise UserError(f"{row.id}: an sqa row needs its reference answer in 'target'")
        return answer
    if row.target and "teacher" not in row.meta:
        return row.target
    return row.label


def prediction_row(row, prediction: str, instruction: str, model: str) -> dict[str, Any]:
    """One predictions.jsonl row, the fields every generator of the paper's tasks writes: the
    prediction text, the row's reference, the question the judge reads (the bare question for sqa:
    the pool's template around it is not the dataset's) and, for emotion / sentiment, the gold
    label and the transcript (for quote scores)."""
    out: dict[str, Any] = {"id": row.id, "task": row.task, "source": row.source, "reference": reference_of(row),
                           "question": instruction, "model": model, "prediction": prediction}
    if row.task == "sqa":
        out["question"] = row.meta.get("question") or instruction
    elif row.task in ("emotion", "sentiment"):
        out.update(label=row.label, transcript=row.transcript)
    return out


def _prediction_row(row, data: dict[str, Any], instruction: str, model: str,
                    mode: GenerationMode) -> dict[str, Any]:
    """One predictions.jsonl row from an engine result (``AnalysisResult.to_dict()``); emotion /
    sentiment rows also record the generation ``mode``, the transcript the engine used
    (``engine_transcript``: ``{"text", "source"}`` or None) and whether label and text agree
    (``consistent``: the engine's reading; None when the text commits to no label)."""
    if row.task == "asr":
        return prediction_row(row, (data.get("transcript") or {}).get("text") or "", instruction, model)
    if row.task == "sqa":
        return prediction_row(row, data.get("answer") or "", instruction, model)
    out = prediction_row(row, data.get("explanation") or f"The speaker sounds {data.get('label')}.", instruction, model)
    used = data.get("transcript")
    out.update(model_label=data.get("label"), model_scores=data.get("scores"), consistent=data.get("consistent"),
               engine_transcript={"text": used.get("text") or "", "source": used.get("source")} if used else None,
               **mode.fields())
    return out


def _engine_call(engine, paths: list[str], task: str, instruction: str | list[str], batch_size: int,
                 max_new_tokens: int, mode: GenerationMode = GenerationMode(), speaker_stats: list | None = None):
    """The engine API per task: asr and emotion / sentiment take the instruction as ``prompt``;
    sqa takes it as ``question``; a list gives each path its own (rows asked different questions
    share batches). asr is the model's own transcription (its ASR task, whatever ``mode`` says);
    emotion / sentiment follow ``mode`` (and ``speaker_stats``, one per path, with
    ``mode.speaker_norm``); sqa gets no transcript (its answer does not quote)."""
    if task == "sqa":
        return engine.analyze(paths, task="sqa", question=instruction, batch_size=batch_size,
                              max_new_tokens=max_new_tokens, transcript="none")
    if task == "asr":
        return engine.analyze(paths, task="asr", prompt=instruction, batch_size=batch_size,
                              max_new_tokens=max_new_tokens, transcript="model")
    return engine.analyze(paths, task=task, prompt=instruction, batch_size=batch_size, max_new_tokens=max_new_tokens,
                          transcript=mode.transcript, quotes=mode.quotes, explain=mode.explain,
                          quote_min_probability=mode.quote_min_probability,
                          **({"speaker_stats": speaker_stats} if speaker_stats is not None else {}))


def check_mode(done: dict[Any, dict], mode: GenerationMode, path: Path) -> None:
    """UserError when ``path`` already holds emotion / sentiment rows made in another mode (a
    resumed file must not mix modes; nothing is deleted)."""
    for row in done.values():
        if row.get("task") in ("emotion", "sentiment") and GenerationMode.of_row(row) != mode:
            theirs = GenerationMode.of_row(row)
            raise UserError(f"{path} holds answers made with {theirs.flags()}, not {mode.flags()}; "
                            "use another --out, the same settings, or --overwrite")


def model_predictions(run_dir: str | Path, manifest: str | Path, out_path: str | Path, task: str | None = None,
                      limit: int | None = None, batch_size: int = 8, seed: int = 0, max_new_tokens: int = 128,
                      instructions: str = "dataset", engine: Any = None, exclude_training_clips: bool = False,
                      explain: str = "free", transcript: str = "auto", quotes: str | None = None,
                      quote_min_probability: float | None = None, transcriber: str | None = None,
                      quote_check: str | None = None, transcript_cache: Any = None,
                      transcript_language: str = "en", frame_cache: Any = None, speaker_norm: bool = False) -> Path:
    """Run the inference engine over the manifest's rows of every task (only ``task``'s when given).

    Prediction text per task: asr the engine's ``transcript.text``, sqa its ``answer``, emotion /
    sentiment its free-text ``explanation`` (what an LLM judge reads; the forced-choice ``label``
    and its ``scores`` are kept as ``model_label`` / ``model_scores``). ``instructions``: see
    :func:`instruction_of`. ``engine``: an already loaded engine (default: ``Engine.load(run_dir)``).
    ``explain``: ``free`` (default; the paper's protocol: the judge reads the label the model wrote)
    or ``forced`` (what ``analyze`` prints: the answer starts with the forced-choice label's
    sentence, so the judged label is the forced choice). ``transcript`` / ``quotes``: the emotion /
    sentiment rows' transcript source and quote mode (:meth:`GenerationMode.make`; default: a
    transcript from ``auto`` with quotes held to it, as ``analyze`` answers; ``transcript="none"``
    is the paper's protocol); ``quote_min_probability``: the constrained quotes' word-probability
    threshold (None: the engine's default); ``transcriber``: the engine's Whisper checkpoint
    (``Engine.load``'s; None: the speech encoder's own decoder; a given ``engine`` must have been
    loaded with it); ``quote_check``: the engine's second Whisper for constrained quotes
    (``Engine.load``'s; likewise); ``transcript_language``: the speech's language for the Whisper
    transcripts (``Engine.load``'s; likewise); ``transcript_cache``: a ``whisper_asr.TranscriptCache`` the
    engine it loads shares (calls over the same clips transcribe each once); ``frame_cache``: a
    ``frame_cache.FrameCache`` the model's frozen encoders read and fill (models with the same
    frozen encoders, as the demo's variants, then encode each clip once; each clip is encoded
    alone at the encoder's precision, as training's frame cache does). ``speaker_norm``: emotion /
    sentiment rows get their speaker's emotion frames normalised to the model's training clips'
    statistics, each speaker's measured on all of its rows here (no labels used; every row needs
    a ``speaker``; :mod:`emoreason.inference.speaker_norm`). A file that holds rows of another
    mode is refused (:func:`check_mode`).
    Clips with the same audio as the model's training clips (``train_clips.json``) are refused with
    a UserError naming them, or left out with ``exclude_training_clips``.
    """
    from tqdm import tqdm

    from emoreason.data.manifest import resolve_audio

    from emoreason.train.contamination import check_contamination

    mode = GenerationMode.make(transcript, quotes, explain, quote_min_probability, transcriber, quote_check,
                               transcript_language, speaker_norm)
    if engine is not None and engine.transcriber != transcriber:
        raise ValueError(f"the engine was loaded with transcriber {engine.transcriber!r}, not {transcriber!r}")
    checked = mode.quotes == "constrained" and mode.transcript in ("auto", "whisper")  # where a check applies
    loaded = getattr(engine, "quote_check", None)  # duck-typed engines (tests' fakes) have none
    if engine is not None and checked and loaded != mode.quote_check:
        raise ValueError(f"the engine was loaded with quote check {loaded!r}, not {mode.quote_check!r}")
    language = getattr(engine, "transcript_language", "en")
    if engine is not None and mode.transcript in ("auto", "whisper") and language != mode.transcript_language:
        raise ValueError(f"the engine was loaded with transcript language {language!r}, not {mode.transcript_language!r}")
    rows = eval_rows(manifest, task, limit, "evaluate")
    out_path = Path(out_path)
    rows, _ = check_contamination(run_dir, rows, [resolve_audio(r, manifest) for r in rows], exclude=exclude_training_clips,
                                  cache_file=out_path.with_name("clip_hashes.json"))
    out = ResumableJsonl(out_path)
    check_mode(out.done, mode, out_path)
    todo = [r for r in rows if r.id not in out]
    if engine is None and todo:
        from emoreason.inference.engine import Engine

        engine = Engine.load(str(run_dir), transcriber=transcriber, quote_check=mode.quote_check,
                             transcript_cache=transcript_cache, transcript_language=mode.transcript_language)
    if engine is not None and frame_cache is not None:
        engine.model.use_frame_cache(frame_cache)
    stats = _speaker_stats(engine, rows, manifest, batch_size) if mode.speaker_norm and todo else {}
    # Rows of one task are batched together, each with its own instruction (SQA: its own question).
    groups: dict[str, list] = {}
    for r in todo:
        groups.setdefault(r.task, []).append(r)
    with out, tqdm(total=len(todo), desc="generating", unit="utt") as bar:
        for t, group in groups.items():
            for start in range(0, len(group), batch_size):
                batch = group[start:start + batch_size]
                paths = [str(resolve_audio(r, manifest)) for r in batch]
                asked = [instruction_of(r, instructions, seed) for r in batch]
                normed = [stats[r.speaker] for r in batch] if stats and t in ("emotion", "sentiment") else None
                results = _engine_call(engine, paths, t, asked, batch_size, max_new_tokens, mode, normed)
                for row, instruction, res in zip(batch, asked, results, strict=True):
                    data = res.to_dict()
                    if not res.ok:
                        raise UserError(f"{row.id}: the engine failed: {data.get('error')}")
                    out.append(_prediction_row(row, data, instruction, str(run_dir), mode))
                    bar.update(1)
    return out_path


def _speaker_stats(engine: Any, rows: list, manifest: str | Path, batch_size: int) -> dict[str, Any]:
    """speaker -> emotion-frame statistics over all of that speaker's emotion / sentiment rows'
    distinct clips (UserError naming the first such row without a speaker)."""
    from emoreason.data.manifest import resolve_audio
    from emoreason.inference.speaker_norm import speakers_of

    labelled = [r for r in rows if r.task in ("emotion", "sentiment")]
    clips: dict[str, dict[str, None]] = {}
    for r, speaker in zip(labelled, speakers_of(labelled)):
        clips.setdefault(speaker, {})[str(resolve_audio(r, manifest))] = None
    from emoreason.inference.speaker_norm import FEW_CLIPS

    log.info("speaker normalisation: %d speakers, %d clips", len(clips), sum(map(len, clips.values())))
    few = sorted(s for s, paths in clips.items() if len(paths) < FEW_CLIPS)
    if few:
        log.warning("speaker normalisation: %d speaker(s) with fewer than %d clips (%s): their statistics hold "
                    "their clips' own emotion, and normalising takes it out", len(few), FEW_CLIPS, ", ".join(few[:5]))
    return {speaker: engine.speaker_stats(list(paths), batch_size) for speaker, paths in clips.items()}
