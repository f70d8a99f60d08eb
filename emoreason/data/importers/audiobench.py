"""AudioBench-format datasets (fields ``context`` = audio, ``instruction``, ``answer``).

Works on a local copy (``datasets.save_to_disk`` folder, or a folder of parquet / arrow shards) or
a hub id (``AudioLLMs/iemocap_emotion_recognition``; same code path, fails offline with a clear
message). Audio is never decoded by ``datasets`` (its Audio decoding needs torchcodec, which does
not work with our torch): the column is cast to ``Audio(decode=False)`` and the raw bytes are
decoded with soundfile via :func:`emoreason.audio.load_audio`.

The task comes from the dataset id (or ``--task``): IEMOCAP / MELD emotion sets -> ``emotion``
(label extracted from the answer sentence, "The speaker's tone sounds anger." -> angry), MELD
sentiment -> ``sentiment``, Spoken-SQuAD / SLUE-SQA / MNSC SQA -> ``sqa`` (the instruction is the
question), LibriSpeech / MNSC ASR -> ``asr`` (the answer is the transcript).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from emoreason.audio import AudioError
from emoreason.data.importers.common import ManifestBuilder, ImportSummary, label_from_text, safe_name
from emoreason.errors import UserError
from emoreason.labels import IEMOCAP, MELD_EMOTION, SENTIMENT, VOCABULARIES

log = logging.getLogger(__name__)

# (pattern on the lowercased dataset id / path, task, label vocabulary). First match wins.
TASK_RULES: list[tuple[str, str, list[str] | None]] = [
    (r"iemocap", "emotion", IEMOCAP),
    (r"meld.*sentiment|sentiment", "sentiment", SENTIMENT),
    (r"meld|emotion", "emotion", MELD_EMOTION),
    (r"squad|sqa", "sqa", None),
    (r"librispeech|asr|speech_recognition", "asr", None),
]
TRANSCRIPT_KEYS = ("transcript", "transcription", "text", "utterance", "sentence", "Utterance")


def infer_task(name: str) -> tuple[str, list[str] | None]:
    """Dataset id or path -> (task, vocabulary). Raises UserError when nothing matches."""
    low = name.lower()
    for pattern, task, vocab in TASK_RULES:
        if re.search(pattern, low):
            return task, vocab
    raise UserError(f"cannot tell the task of {name!r} from its name: pass --task (emotion, sentiment, asr, sqa)")


def short_name(source: str, data_dir: str | None = None) -> str:
    """``AudioLLMs/meld_emotion_test`` -> ``meld_emotion_test``; a path -> its folder name."""
    name = Path(source.rstrip("/")).name or "audiobench"
    if data_dir:
        name = f"{name}-{data_dir}"
    return safe_name(name).lower()


def open_dataset(source: str, split: str | None = None, data_dir: str | None = None):
    """A ``datasets.Dataset`` with ``context`` cast to raw (undecoded) audio.

    ``source``: a ``save_to_disk`` folder, a folder of parquet/arrow files, or a hub id.
    ``split``: which split of a DatasetDict / hub dataset (default: ``test`` if present, else the
    only one).
    """
    try:
        import datasets
    except ModuleNotFoundError:
        raise UserError("the 'datasets' package is needed for AudioBench imports: pip install datasets") from None
    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{source}: expected a dataset folder (save_to_disk output or parquet/arrow files)")
        if any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            try:
                ds = datasets.load_from_disk(str(path))
            except Exception as e:  # noqa: BLE001 - datasets raises many kinds
                raise UserError(f"{source}: cannot load the saved dataset ({str(e).splitlines()[0]})") from None
        else:
            files = sorted(path.rglob("*.parquet")) or sorted(path.rglob("*.arrow"))
            if not files:
                raise UserError(f"{source}: no save_to_disk metadata and no .parquet / .arrow files inside")
            fmt = "parquet" if files[0].suffix == ".parquet" else "arrow"
            ds = datasets.load_dataset(fmt, data_files=[str(f) for f in files], split="train")
    else:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", source):
            raise UserError(f"{source}: no such folder, and not a hub id (owner/name)")
        try:
            ds = datasets.load_dataset(source, data_dir=data_dir, split=split)  # None: a DatasetDict, picked below
        except Exception as e:  # noqa: BLE001 - offline / missing / auth errors all end here
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(
                f"cannot load {source} from the hub ({first}). Offline? Save a copy on a connected machine "
                f"with datasets.load_dataset(...).save_to_disk(DIR) and pass DIR"
            ) from None
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds)
        pick = split or ("test" if "test" in ds else (names[0] if len(names) == 1 else None))
        if pick not in ds:
            raise UserError(f"{source}: choose a split with --hf-split (available: {names})")
        ds = ds[pick]
    if "context" not in ds.column_names:
        raise UserError(f"{source}: no 'context' audio column (columns: {ds.column_names}); is this an AudioBench dataset?")
    undecoded = _without_decoding(ds.features, datasets)
    if undecoded != ds.features:
        ds = ds.cast(undecoded)  # metadata only: the stored bytes stay as they are
    return ds


def _without_decoding(features, datasets):
    """The same features with every Audio feature (also nested: older AudioBench uploads have
    ``context = {"audio": Audio, "text": str}``) switched to ``decode=False``."""
    def walk(f):
        if isinstance(f, datasets.Audio):
            return datasets.Audio(decode=False)
        if isinstance(f, dict):
            return {k: walk(v) for k, v in f.items()}
        return f

    return datasets.Features({k: walk(v) for k, v in features.items()})


def _text(value: Any) -> str:
    """A text field, flat (``"..."``) or in the older nested layout (``{"text": "..."}``)."""
    if isinstance(value, dict):
        value = value.get("text")
    return value.strip() if isinstance(value, str) else ""


def _audio_source(context: Any, base: Path | None) -> bytes | str:
    """Raw ``context`` value -> encoded bytes or a file path for load_audio."""
    if isinstance(context, dict):
        if isinstance(context.get("audio"), dict):  # older nested layout
            return _audio_source(context["audio"], base)
        if context.get("bytes"):
            return context["bytes"]
        if context.get("path"):
            p = Path(context["path"])
            if not p.is_absolute() and base is not None:
                p = base / p
            return str(p)
    if isinstance(context, (bytes, bytearray)):
        return bytes(context)
    raise AudioError("context holds neither audio bytes nor a path")


def _transcript_of(record: dict[str, Any]) -> str | None:
    extra = record.get("other_attributes")
    context = record.get("context")
    if isinstance(context, dict) and _text(context.get("text")):  # older nested layout
        return _text(context.get("text"))
    for holder in (record, extra if isinstance(extra, dict) else {}):
        for k in TRANSCRIPT_KEYS:
            v = holder.get(k)
            if isinstance(v, str) and v.strip():
                return v.strip()
    return None


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return None


def import_audiobench(
    source: str,
    out_dir: str | Path,
    *,
    task: str | None = None,
    vocabulary: str | None = None,
    hf_split: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    seed: int = 0,
    keep_instructions: bool = False,
    limit: int | None = None,
) -> ImportSummary:
    """Import one AudioBench dataset into ``out_dir`` (manifest + wavs); see the module docstring.

    Args:
        task: override the task inferred from the dataset id.
        vocabulary: label vocabulary name (``iemocap``, ``meld``, ``sentiment``) for emotion /
            sentiment sets; default from the id.
        hf_split / data_dir: which split / sub-folder of the dataset to read (MNSC uses data_dir).
        split: the manifest split written to every row (AudioBench sets are test sets).
        keep_instructions: keep the dataset's own instruction instead of the seeded pool choice.
        limit: import only the first N records.
    """
    from tqdm import tqdm

    name = short_name(source, data_dir)
    inferred_task, inferred_vocab = infer_task(name) if task is None else (task, None)
    task = inferred_task
    vocab = VOCABULARIES[vocabulary] if vocabulary else inferred_vocab
    if task == "emotion" and vocab is None:
        vocab = MELD_EMOTION if "meld" in name else IEMOCAP
    if task == "sentiment":
        vocab = SENTIMENT
    ds = open_dataset(source, split=hf_split, data_dir=data_dir)
    base = Path(source) if Path(source).is_dir() else None
    builder = ManifestBuilder(out_dir, source=name, tasks=(task,), seed=seed, keep_instructions=keep_instructions)
    n = len(ds) if limit is None else min(limit, len(ds))
    for i in tqdm(range(n), desc=f"import {name}", unit="rec"):
        where = f"record {i}"
        try:
            rec = ds[i]
        except Exception as e:  # noqa: BLE001 - a corrupt record must not stop the import
            builder.skip(where, f"unreadable record ({e})")
            continue
        instruction, answer = _text(rec.get("instruction")), _text(rec.get("answer"))
        if not answer:
            builder.skip(where, "empty 'answer'")
            continue
        fields: dict[str, Any] = {}
        if task in ("emotion", "sentiment"):
            label = label_from_text(answer, vocab)
            if label is None:
                builder.skip(where, f"no {task} label found in the answer {answer[:60]!r}")
                continue
            fields[task] = label
            fields["answers"] = {task: answer}
            fields["transcript"] = _transcript_of(rec)
        elif task == "asr":
            fields["transcript"] = answer
        elif task == "sqa":
            if not instruction:
                builder.skip(where, "empty 'instruction' (the SQA question)")
                continue
            fields.update(question=instruction, answer=answer, transcript=_transcript_of(rec))
        key = f"{i:06d}"
        try:
            audio, duration = builder.write_audio(key, _audio_source(rec.get("context"), base))
        except AudioError as e:
            builder.skip(where, str(e))
            continue
        meta = {"record": i}
        extra = _jsonable(rec.get("other_attributes"))
        if extra:
            meta["other_attributes"] = extra
        builder.add_utterance(
            key, audio, duration, instructions={task: instruction} if instruction else None,
            split=split, meta=meta, **fields,
        )
    return builder.finish()
