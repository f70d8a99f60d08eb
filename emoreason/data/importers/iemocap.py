"""IEMOCAP's release layout -> manifest (emotion rows; sentiment and asr rows on request).

Layout (per session ``Session1`` .. ``Session5``)::

    SessionN/dialog/EmoEvaluation/<dialog>.txt     "[start - end]\\tTURN\\tlabel\\t[V, A, D]" + annotator lines
    SessionN/dialog/transcriptions/<dialog>.txt    "TURN [start-end]: text"
    SessionN/sentences/wav/<dialog>/<TURN>.wav

Labels are the 3-letter codes (neu, hap, sad, ang, fru, exc, fea, sur, dis, oth) mapped to the 10
IEMOCAP classes. ``xxx`` (no majority among annotators) is resolved by ``xxx``: ``vote`` takes the
most frequent category among the annotator lines (``C-E2:\\tFrustration; Anger;\\t()``; ties go to
the one named first), which reproduces AudioBench's label counts having no xxx class; ``drop``
skips those turns; ``other`` labels them other.

Splits: ``random`` = AudioBench-like seeded 90/10 over utterances; ``speaker`` = whole speakers
(the speaker is session + the gender letter of the turn's last field: Ses01F_impro01_M003 -> Ses01M)
held out; ``session`` = whole sessions (``--test-sessions 5``).

Tasks: ``emotion`` by default, as the paper (it trains IEMOCAP emotion recognition only; its
sentiment task is MELD's). ``sentiment`` rows are our extra: IEMOCAP has no sentiment annotation,
so they are derived from the emotion label (``labels.sentiment_of``).

``exclude_manifest``: utterances that are in another manifest (AudioBench's IEMOCAP test set as
imported by our audiobench importer) are left out, by utterance id or audio content hash
(:mod:`emoreason.data.importers.exclude`), before the split is drawn; the summary counts them.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from emoreason.audio import AudioError
from emoreason.data.importers.common import ImportSummary, ManifestBuilder, parse_tasks
from emoreason.data.importers.exclude import ExcludeList
from emoreason.data.importers.splits import assign_groups
from emoreason.errors import UserError
from emoreason.labels import IEMOCAP, normalize_label, sentiment_of

log = logging.getLogger(__name__)

SUPPORTED_TASKS = ("emotion", "sentiment", "asr")
DEFAULT_TASKS = "emotion"
"""The paper's IEMOCAP task; sentiment (derived from emotion) and asr are extras."""
TURN_ID = re.compile(r"Ses\d\d[FM]_[A-Za-z0-9_]+?_[FM]\d{3}(?!\d)")
"""An IEMOCAP utterance id (``Ses01F_impro01_F000``, ``Ses05M_script02_2_M045``) inside any text."""
_TURN_LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[([^\]]*)\]\s*$")
_ANNOT_LINE = re.compile(r"^C-\S+:\s*(.*)$")
_TRANS_LINE = re.compile(r"^(\S+)\s+\[[\d.]+-[\d.]+\]:\s*(.*)$")


def speaker_of(turn: str) -> str:
    """``Ses01F_impro01_M003`` -> ``Ses01M`` (session + gender of the speaking actor)."""
    parts = turn.split("_")
    return f"{parts[0][:5]}{parts[-1][0]}"


def parse_evaluation(path: Path) -> list[dict]:
    """One EmoEvaluation file -> [{turn, start, end, code, vad, votes, line}] (votes: category list)."""
    turns: list[dict] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            m = _TURN_LINE.match(line)
            if m:
                start, end, turn, code, vad = m.groups()
                turns.append({"turn": turn, "start": float(start), "end": float(end), "code": code,
                              "vad": vad, "votes": [], "line": lineno})
                continue
            m = _ANNOT_LINE.match(line)
            if m and turns:
                for name in m.group(1).split(";"):
                    name = name.strip()
                    if name and not name.startswith("("):
                        turns[-1]["votes"].append(name)
            elif line.startswith("[") and not line.startswith("[START"):
                turns.append({"turn": None, "line": lineno, "bad": line[:80]})
    return turns


def parse_transcriptions(path: Path) -> dict[str, str]:
    """Transcription file -> {turn: text}."""
    out = {}
    if path.is_file():
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            m = _TRANS_LINE.match(raw.strip())
            if m:
                out[m.group(1)] = m.group(2).strip()
    return out


def resolve_label(code: str, votes: list[str], xxx: str) -> str | None:
    """Turn label code -> canonical IEMOCAP label; None = drop. Raises UserError on unknown codes."""
    if code.lower() != "xxx":
        return normalize_label(code, IEMOCAP)
    if xxx == "drop":
        return None
    if xxx == "other":
        return "other"
    counts: Counter = Counter()
    first_seen: dict[str, int] = {}
    for i, name in enumerate(votes):
        try:
            canon = normalize_label(name.split()[0], IEMOCAP)  # "Neutral state" -> neutral
        except UserError:
            continue
        counts[canon] += 1
        first_seen.setdefault(canon, i)
    if not counts:
        return None
    return max(counts, key=lambda k: (counts[k], -first_seen[k]))


def import_iemocap(
    root: str | Path,
    out_dir: str | Path,
    *,
    tasks: str | None = DEFAULT_TASKS,
    split_by: str = "random",
    test_fraction: float = 0.1,
    dev_fraction: float = 0.0,
    test_sessions: list[int] | None = None,
    xxx: str = "vote",
    seed: int = 0,
    exclude_manifest: str | Path | None = None,
) -> ImportSummary:
    """Import an IEMOCAP release tree into ``out_dir``; see the module docstring.

    Args:
        split_by: ``random`` (per utterance), ``speaker`` or ``session`` (disjoint groups).
        test_fraction / dev_fraction: held-out shares (of utterances or of groups).
        test_sessions: for ``session``: which sessions are test (default [5]); with a dev
            fraction the dev sessions are drawn from the rest.
        xxx: ``vote`` | ``drop`` | ``other`` for turns without a majority label.
        exclude_manifest: leave out the utterances of this manifest (by utterance id, or by audio
            content hash); see the module docstring.
    """
    root = Path(root)
    sessions = sorted(p for p in root.glob("Session*") if p.is_dir())
    if not sessions:
        raise UserError(f"{root}: no Session* folders (expected the IEMOCAP release layout)")
    if xxx not in ("vote", "drop", "other"):
        raise UserError(f"--xxx must be vote, drop or other (got {xxx!r})")
    builder = ManifestBuilder(out_dir, source="iemocap", tasks=parse_tasks(tasks, SUPPORTED_TASKS), seed=seed)
    exclude = ExcludeList.load(exclude_manifest, TURN_ID) if exclude_manifest else None
    items: list[dict] = []
    for session in sessions:
        evals = sorted((session / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not evals:
            builder.skip(str(session), "no dialog/EmoEvaluation/*.txt files")
        for ev in evals:
            transcripts = parse_transcriptions(session / "dialog" / "transcriptions" / ev.name)
            for t in parse_evaluation(ev):
                where = f"{ev}:{t['line']}"
                if t["turn"] is None:
                    builder.skip(where, f"unparsable evaluation line {t['bad']!r}")
                    continue
                try:
                    label = resolve_label(t["code"], t["votes"], xxx)
                except UserError as e:
                    builder.skip(where, str(e))
                    continue
                if label is None:
                    builder.skip(where, f"{t['turn']}: no majority label (xxx) and --xxx {xxx}")
                    continue
                if exclude is not None and exclude.match_id(t["turn"]):
                    builder.summary.excluded["utterance id"] += 1
                    continue
                wav = session / "sentences" / "wav" / ev.stem / f"{t['turn']}.wav"
                if not wav.is_file() and not builder.has_audio(t["turn"]):
                    builder.skip(where, f"{t['turn']}: audio {wav} not found")
                    continue
                items.append({**t, "where": where, "label": label, "wav": wav, "session": session.name,
                              "transcript": transcripts.get(t["turn"])})
    items = _write_audio(builder, items, exclude)
    if split_by == "random":
        splits = assign_groups([it["turn"] for it in items], test_fraction, dev_fraction, seed, at_least_one=False)
        split_of = lambda it: splits[it["turn"]]  # noqa: E731
    elif split_by == "speaker":
        splits = assign_groups([speaker_of(it["turn"]) for it in items], test_fraction, dev_fraction, seed)
        split_of = lambda it: splits[speaker_of(it["turn"])]  # noqa: E731
    elif split_by == "session":
        test_names = {f"Session{n}" for n in (test_sessions or [5])}
        rest = sorted({it["session"] for it in items} - test_names)
        dev_names: set[str] = set()
        if dev_fraction > 0:  # dev sessions: the ones a group split of the rest would hold out
            dev_names = {s for s, v in assign_groups(rest, dev_fraction, 0.0, seed).items() if v == "test"}
        split_of = lambda it: "test" if it["session"] in test_names else "dev" if it["session"] in dev_names else "train"  # noqa: E731
    else:
        raise UserError(f"--split-by must be random, speaker or session (got {split_by!r})")

    for it in items:
        meta = {"start": it["start"], "end": it["end"], "vad": it["vad"], "code": it["code"], "session": it["session"]}
        builder.add_utterance(it["turn"], it["audio"], it["duration"], transcript=it["transcript"], emotion=it["label"],
                              sentiment=sentiment_of(it["label"]), split=split_of(it),
                              speaker=f"iemocap/{speaker_of(it['turn'])}", meta=meta)
    if exclude is not None:
        builder.summary.notes.append(exclude.report())
    return builder.finish()


def _write_audio(builder: ManifestBuilder, items: list[dict], exclude: ExcludeList | None) -> list[dict]:
    """Write every item's wav (adding ``audio`` and ``duration``); the items whose audio is in
    ``exclude`` lose their wav and are dropped. Returns the items kept, in order.

    Runs before the split is drawn, so excluded and unreadable clips take no split places."""
    from tqdm import tqdm

    written = []
    for it in tqdm(items, desc="import iemocap", unit="utt"):
        try:
            it["audio"], it["duration"] = builder.write_audio(it["turn"], it["wav"])
        except AudioError as e:
            builder.skip(it["where"], str(e))
            continue
        written.append(it)
    if exclude is None:
        return written
    from emoreason.data.clip_hashes import hash_clips

    # the wav we wrote, not the release's file: the exclude manifest's audio went through the same
    # decode -> 16-bit wav step, so the hashes compare like with like
    digests = hash_clips([builder.out_dir / it["audio"] for it in written])
    kept = []
    for it, hit in zip(written, exclude.match_hashes(digests)):
        if hit:
            (builder.out_dir / it["audio"]).unlink(missing_ok=True)  # no test clip left in the training folder
            builder.summary.excluded["audio hash"] += 1
        else:
            kept.append(it)
    return kept
