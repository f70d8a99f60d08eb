"""The teach pipeline: manifest in, manifest with reasoning targets out (``emoreason data teach``).

    summary = teach("D/manifest.jsonl", "T.jsonl", make_teacher("offline"), style="detailed")

For each emotion / sentiment row the teacher gets transcript + gold label (+ measured cues) through
a versioned prompt; its answer is checked (label stated, quotes real), retried on failure (LLM
backends) or flagged in ``meta.teacher_check``, and written as a QA row (``qa.py``). Other rows pass
through. Output is append-only, one flushed line per finished row: a rerun skips the ids already in
``T.jsonl``, and a crash loses only the requests in flight. When every row is present the file is
rewritten once, atomically, in manifest order, so the result does not depend on concurrency.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from emoreason.data.manifest import ManifestRow, read_manifest, resolve_audio, validate_row
from emoreason.errors import UserError
from emoreason.jsonl import ResumableJsonl, run_bounded
from emoreason.llm_client import ResponseCache
from emoreason.teacher.base import Teacher, TeachRequest, TeacherError, TeacherUnavailable
from emoreason.teacher.checks import CheckResult, canonical_label, check_output
from emoreason.teacher.qa import LABEL_TARGETS, compose_target, label_only_target, needs_teaching, qa_row
from emoreason.teacher.templates import STYLES, render, template_name

log = logging.getLogger(__name__)

_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(ManifestRow))
CUES_VERSION = 1
"""Part of the cue cache key: bump when ``cues.measure_cues`` changes what it returns."""


@dataclass
class TeachSummary:
    """Counts for one run (printed at the end by the CLI)."""

    rows: int = 0
    """Manifest rows considered (after --limit)."""
    taught: int = 0
    """Emotion / sentiment rows written this run."""
    passed_through: int = 0
    """Other rows (ASR, SQA, ...) written unchanged this run."""
    skipped: int = 0
    """Rows already in the output from an earlier run."""
    failed_checks: int = 0
    """Rows written with ``meta.teacher_check.ok == false``."""
    rejected_answers: int = 0
    """Answers that failed a check and were asked again."""
    errors: int = 0
    """Rows not written because the teacher failed: the next run retries them."""
    cache_hits: int = 0
    requests: int = 0
    """Teacher calls made (cache misses)."""
    cue_errors: int = 0
    corpus_answers: int = 0
    """Label-only rows whose target is the corpus' answer sentence (``meta.corpus_answer``)."""
    label_sentences: int = 0
    """Label-only rows whose target is ``labels.label_sentence`` (no usable corpus answer, or
    ``label_targets="template"``)."""

    def format(self) -> str:
        return (
            f"{self.taught} taught, {self.passed_through} passed through, {self.skipped} skipped (already done), "
            f"{self.failed_checks} failed checks, {self.errors} errors; {self.requests} teacher requests, "
            f"{self.cache_hits} cache hits, {self.rejected_answers} answers rejected and retried"
            + (f", {self.cue_errors} clips without cues" if self.cue_errors else "")
            + (f"; label-only targets: {self.corpus_answers} corpus answers, {self.label_sentences} label sentences"
               if self.corpus_answers or self.label_sentences else "")
        )


def make_teacher(
    spec: str,
    model: str | None = None,
    timeout: float = 60.0,
    retries: int = 4,
    concurrency: int = 32,
    backoff_s: float = 0.5,
    max_tokens: int = 300,
) -> Teacher:
    """``offline`` | ``http(s)://host:port/v1`` | ``local:PATH`` -> a teacher backend."""
    if spec == "offline":
        from emoreason.teacher.offline import OfflineTeacher

        return OfflineTeacher()
    if spec.startswith("local:"):
        from emoreason.teacher.local import LocalTeacher

        return LocalTeacher(spec[len("local:") :], max_new_tokens=max_tokens, batch_size=concurrency)
    if spec.startswith(("http://", "https://")):
        from emoreason.teacher.openai_compat import OpenAICompatTeacher

        return OpenAICompatTeacher(
            spec, model=model, timeout=timeout, retries=retries, backoff_s=backoff_s, max_tokens=max_tokens, concurrency=concurrency
        )
    raise UserError(f"--teacher {spec!r}: expected 'offline', an OpenAI-compatible base URL (http://host:port/v1) or local:PATH")


def _open_output(out: Path) -> ResumableJsonl:
    """The output file, resumed: rows already there are done (a torn last line from a killed run
    is cut off first); a line that is not a manifest row means --out names some other file."""
    what = "a manifest row; is --out pointing at the right file?"

    def row_id(row: dict) -> str:
        if not isinstance(row.get("id"), str):
            raise UserError(f"{out}: a row without an id is not {what}")
        return row["id"]

    return ResumableJsonl(out, key=row_id, strict=True, what=what)


class _AudioRebaser:
    """Keep relative audio paths valid when the output lives in another folder than the manifest."""

    def __init__(self, manifest: Path, out_dir: Path) -> None:
        self.manifest_dir = manifest.resolve().parent
        self.out_dir = out_dir.resolve()
        self.same_dir = self.manifest_dir == self.out_dir

    def __call__(self, row: ManifestRow) -> ManifestRow:
        if self.same_dir or os.path.isabs(row.audio):
            return row
        return dataclasses.replace(row, audio=os.path.relpath(self.manifest_dir / row.audio, self.out_dir))


def measure_all_cues(rows: list[ManifestRow], manifest: Path, cache: ResponseCache, summary: TeachSummary, progress: bool) -> dict[str, dict]:
    """Cues of every row (cached by audio file, size, mtime and transcript) -> {row id: cues}."""
    from tqdm import tqdm

    from emoreason.audio import SAMPLE_RATE, AudioError, load_audio
    from emoreason.cues import measure_cues

    out: dict[str, dict] = {}
    for row in tqdm(rows, desc="cues", unit="clip", disable=not progress):
        path = resolve_audio(row, manifest)
        try:
            st = path.stat()
            key = "cues|" + hashlib.sha256(json.dumps([CUES_VERSION, str(path), st.st_size, st.st_mtime_ns, row.transcript]).encode()).hexdigest()
        except OSError:
            key = None
        values = cache.get(key) if key else None
        if values is None:
            try:
                values = measure_cues(load_audio(path), SAMPLE_RATE, row.transcript)
            except AudioError as e:
                log.warning("%s: no cues (%s)", row.id, e)
                summary.cue_errors += 1
                continue
            if key:
                cache.put(key, values)
        out[row.id] = values
    return out


def cue_phrases_by_row(rows: list[ManifestRow], cues: dict[str, dict]) -> dict[str, list[str]]:
    """Describe each row's cues against its speaker's baseline (same source + speaker, >= 3 clips),
    or in absolute terms where the corpus has no such baseline."""
    from emoreason.cues import describe_cues, speaker_baseline

    groups: dict[tuple, list[str]] = defaultdict(list)
    for row in rows:
        if row.speaker and row.id in cues:
            groups[(row.source, row.speaker)].append(row.id)
    baselines = {k: speaker_baseline(cues[i] for i in ids) for k, ids in groups.items()}
    return {
        row.id: describe_cues(cues[row.id], baselines.get((row.source, row.speaker)) if row.speaker else None)
        for row in rows
        if row.id in cues
    }


class _Run:
    """State of one teach run: the output file, the cache, the counts."""

    def __init__(self, teacher: Teacher, style: str, out_file: ResumableJsonl, cache: ResponseCache | None, summary: TeachSummary,
                 check_retries: int, seed: int, cues: dict[str, dict] | None, phrases: dict[str, list[str]],
                 label_targets: str, label_prefix: bool) -> None:
        self.teacher, self.style, self.out_file, self.cache = teacher, style, out_file, cache
        self.summary, self.check_retries, self.seed = summary, check_retries, seed
        self.cues, self.phrases = cues, phrases
        self.label_targets, self.label_prefix = label_targets, label_prefix

    def write(self, row: ManifestRow) -> None:
        # same JSON as ManifestRow.to_json without dataclasses.asdict's deep copy (a third of the
        # client's CPU per row at 500 rows/s)
        data = {k: getattr(row, k) for k in _ROW_FIELDS}
        data = {k: v for k, v in data.items() if v is not None and not (k == "meta" and not v)}
        validate_row(data)
        # one write + flush per finished row: a kill loses at most the rows still in flight
        self.out_file.append(data)

    async def ask(self, request: TeachRequest) -> str:
        key_fn = getattr(self.teacher, "request_key", None)
        key = key_fn(request) if (key_fn and self.cache is not None) else None
        if key is not None:
            cached = self.cache.get(key)
            if cached is not None:
                self.summary.cache_hits += 1
                return cached
        self.summary.requests += 1
        text = await self.teacher.complete(request)
        if key is not None:
            self.cache.put(key, text)
        return text

    async def teach_row(self, row: ManifestRow) -> ManifestRow:
        label = canonical_label(row.label or "")
        meta: dict = {}
        if self.cues is not None and row.id in self.cues:
            meta["cues"] = self.cues[row.id]
            meta["cue_phrases"] = self.phrases.get(row.id, [])
        if self.style == "label":
            target, source = label_only_target(row, label, self.label_targets)
            if source == "corpus":
                self.summary.corpus_answers += 1
            else:
                self.summary.label_sentences += 1
            meta["teacher"] = {"style": "label", "label_target": source}
            return qa_row(row, target, self.seed, meta)
        transcript = row.transcript or ""
        phrases = tuple(self.phrases.get(row.id, ()))
        name = template_name(self.style, row.task)
        prompt = render(name, transcript, label, list(phrases))
        # the offline teacher is deterministic: asking again would give the same answer
        attempts = 1 if self.teacher.name == "offline" else 1 + self.check_retries
        result: CheckResult | None = None
        for attempt in range(attempts):
            text = await self.ask(TeachRequest(row.id, row.task, self.style, transcript, label, prompt, phrases, attempt))
            result = check_output(text, transcript, label, self.style)
            if result.ok:
                break
            if attempt + 1 < attempts:
                self.summary.rejected_answers += 1
        assert result is not None
        if not result.ok:
            self.summary.failed_checks += 1
            log.debug("%s: check failed: %s", row.id, "; ".join(result.reasons))
        meta["teacher"] = {"backend": self.teacher.name, "model": self.teacher.model, "style": self.style,
                           "prompt": name, "attempts": attempt + 1, "label_prefix": self.label_prefix}
        meta["teacher_check"] = result.to_json()
        return qa_row(row, compose_target(row.task, label, text, self.label_prefix), self.seed, meta)


async def teach_async(
    manifest: str | Path,
    out: str | Path,
    teacher: Teacher,
    style: str = "detailed",
    cues: bool = False,
    concurrency: int = 32,
    check_retries: int = 2,
    limit: int | None = None,
    cache_path: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    label_targets: str = "corpus",
    label_prefix: bool = True,
) -> TeachSummary:
    """Run the pipeline (see module docstring); returns the counts. Raises TeacherUnavailable
    when the teacher cannot serve at all (rows finished before stay in ``out``).

    ``label_targets`` (style ``label``): ``corpus`` = the corpus' answer sentence where the row has
    one (``meta.corpus_answer``), else the label sentence; ``template`` = always the label sentence.
    ``label_prefix`` (styles ``summary`` / ``detailed``): start the target with the label sentence
    (our default: inference scores that sentence) or give the explanation alone (the paper)."""
    from tqdm import tqdm

    if style not in STYLES:
        raise UserError(f"--style {style!r}: expected one of {list(STYLES)}")
    if concurrency < 1:
        raise UserError(f"--concurrency must be >= 1, got {concurrency}")
    if label_targets not in LABEL_TARGETS:
        raise UserError(f"--label-targets {label_targets!r}: expected one of {list(LABEL_TARGETS)}")
    manifest, out = Path(manifest), Path(out)
    if out.exists() and out.resolve() == manifest.resolve():
        raise UserError(f"--out {out} is the input manifest: write the targets to a new file")
    rows = read_manifest(manifest)
    if not rows:
        raise UserError(f"{manifest}: the manifest has no rows to teach")
    if limit is not None:
        rows = rows[:limit]
    seen: set[str] = set()
    dups = {r.id for r in rows if r.id in seen or seen.add(r.id)}
    if dups:
        raise UserError(f"{manifest}: duplicate row ids (resuming needs unique ids): {sorted(dups)[:5]}")
    out_file = _open_output(out)
    done_ids = set(out_file.done)
    summary = TeachSummary(rows=len(rows))
    summary.skipped = sum(r.id in done_ids for r in rows)
    cache = ResponseCache(cache_path or out.with_name(out.name + ".cache.jsonl"))

    teach_rows = [r for r in rows if needs_teaching(r)]
    cue_values, phrases = None, {}
    if cues:
        # every clip, done or not: a speaker's baseline must not depend on what a crash left over
        cue_values = measure_all_cues(teach_rows, manifest, cache, summary, progress)
        phrases = cue_phrases_by_row(teach_rows, cue_values)

    pending = [r for r in teach_rows if r.id not in done_ids]
    start = getattr(teacher, "start", None)
    run = _Run(teacher, style, out_file, cache, summary, check_retries, seed, cue_values, phrases, label_targets, label_prefix)
    rebase = _AudioRebaser(manifest, out.parent)
    pbar = tqdm(total=len(pending), desc=f"teach ({style})", unit="row", disable=not progress)
    try:
        for row in rows:  # pass-through rows first: nothing to wait for
            if row.id not in done_ids and not needs_teaching(row):
                run.write(rebase(row))
                summary.passed_through += 1
        if pending and start is not None and style != "label":
            await start()

        async def teach_one(row: ManifestRow) -> None:
            try:
                taught = await run.teach_row(row)
            except TeacherError as e:  # this row only: counted, the others go on
                summary.errors += 1
                log.warning("%s: %s", row.id, e)
            else:
                run.write(rebase(taught))
                summary.taught += 1
            pbar.update(1)

        if pending:
            await run_bounded(pending, teach_one, min(concurrency, teacher.max_concurrency or concurrency))
    except TeacherUnavailable as e:
        raise TeacherUnavailable(f"{e}; {summary.taught + summary.passed_through + summary.skipped} finished rows are kept in {out}, rerun to continue") from None
    finally:
        pbar.close()
        out_file.close()
        cache.close()
        await teacher.aclose()
    order = [r.id for r in rows]
    if summary.errors == 0 and all(i in out_file.done for i in order):
        out_file.rewrite_in_order(order)  # manifest order, once every row is present
    return summary


def teach(manifest: str | Path, out: str | Path, teacher: Teacher, **kwargs) -> TeachSummary:
    """Synchronous wrapper of :func:`teach_async` (same arguments)."""
    return asyncio.run(teach_async(manifest, out, teacher, **kwargs))
