"""Synthetic emotional speech with espeak-ng (and CMU flite, style v4) + sox: an offline corpus for
the embedded default.

Each utterance is one sentence from the bank (``resources/sentences.yaml``) spoken by one of
several synthetic speakers (espeak-ng voice + variant + base pitch / speed) with the prosody of
one emotion (:data:`PROSODY`: pitch level and range, rate, loudness, pauses, tremolo). A share of
neutral-worded sentences is spoken with every emotion's prosody, so the label is not always in
the words. Rows: emotion, sentiment (derived), asr (the sentence) and sqa (a content question).

Determinism: utterance ``j`` is planned from ``Random(f"{seed}:{j}")`` alone (not from ``n``), sox
runs without dither, so the same seed gives byte-identical wavs and manifest, and ``--n 300``
after ``--n 100`` reuses the first 100 files (reruns skip audio whose plan digest is unchanged,
``wavs/plan.json``). Splits are speaker-disjoint: whole speakers are held out for dev and test.

Styles (:data:`STYLES`): v1 as above; v2 / v3 add voice variety, prosody ranges and seeded
augmentation (:mod:`emoreason.data.augment`); v4 (default) speaks a third of the speakers with a
second engine, CMU flite (:data:`FLITE_VOICES`), with v1's prosody. Their transfer to held-out
synthesisers is measured by ``benchmarks/synth_transfer.py`` (docs/data.md).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from emoreason.data.importers.common import MANIFEST_NAME, WAV_DIR, parse_tasks, run_parallel, wav_duration
from emoreason.data.importers.splits import assign_groups
from emoreason.data.manifest import ManifestRow, validate_row, write_manifest
from emoreason.data.questions import POOLS_VERSION, instruction_for, label_target
from emoreason.errors import UserError
from emoreason.jsonl import atomic_write
from emoreason.labels import sentiment_of

log = logging.getLogger(__name__)

SOURCE = "synth"
DEFAULT_EMOTIONS = ("neutral", "happy", "sad", "angry")
SUPPORTED_TASKS = ("emotion", "sentiment", "asr", "sqa")


@dataclass(frozen=True)
class Prosody:
    """How one emotion is spoken, relative to the speaker's own voice.

    pitch: % change of the pitch level; range: pitch range in % of normal (100 = normal,
    0 = monotone); rate: % of the speaker's speed; gain_db: loudness change applied by sox;
    pause_ms: silence between clauses; tremolo: (Hz, depth %) amplitude tremolo or None.
    """

    pitch: float
    range: float
    rate: float
    gain_db: float
    pause_ms: int
    tremolo: tuple[float, float] | None = None


# Chosen after the emotional-speech literature's usual cue directions (e.g. Scherer 2003):
# anger loud, fast, wide range; sadness low, slow, quiet, flat; happiness high with a wide range;
# fear high, fast, trembling; surprise highest with the widest range; neutral the speaker's own.
PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(pitch=0, range=100, rate=100, gain_db=0, pause_ms=150),
    "happy": Prosody(pitch=25, range=180, rate=110, gain_db=2, pause_ms=100),
    "sad": Prosody(pitch=-20, range=30, rate=70, gain_db=-8, pause_ms=450),
    "angry": Prosody(pitch=8, range=170, rate=122, gain_db=6, pause_ms=60),
    "fearful": Prosody(pitch=35, range=120, rate=125, gain_db=-2, pause_ms=250, tremolo=(8.0, 40.0)),
    "surprised": Prosody(pitch=40, range=220, rate=105, gain_db=3, pause_ms=120),
}

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan")
VARIANTS = ("m1", "f1", "m3", "f2", "m2", "f3", "m4", "f4", "m5", "f5", "m6", "m7")
BASE_GAIN_DB = -9.0
"""Headroom so the loudest emotion (angry, +6 dB) stays below full scale."""

STYLES = ("v1", "v2", "v3", "v4")
DEFAULT_STYLE = "v4"
"""v4 (the default): v1 with every third speaker spoken by a second engine, CMU flite
(:data:`FLITE_VOICES`; Debian package ``flite``): a probe trained on two engines transfers better
to a third it never heard than one trained on espeak-ng alone (docs/data.md). v1: the first corpus
(fixed prosody per emotion with a small jitter, 12 voice+variant pairs, clean audio), byte-identical
to before. v2: wider voice variety, prosody drawn from ranges (:data:`PROSODY_RANGES`), spectral
tilt, augmentation (:mod:`emoreason.data.augment`). v3: v1's prosody table and jitter on v2's
speakers, with v2's augmentation (no per-emotion tilt). v2 / v3 did not transfer better than v1."""

FLITE_VOICES: dict[str, tuple[float, float]] = {"slt": (170.0, 25.0), "rms": (105.0, 15.0), "awb": (110.0, 15.0),
                                               "kal16": (105.0, 15.0)}
"""v4's flite voices: name -> (F0 mean Hz, F0 s.d. Hz) the voice is spoken around (its own
defaults, as flite sets ``int_f0_target_mean`` / ``int_f0_target_stddev``). slt is a US female
voice, rms a US male, awb a Scottish male (statistical parametric, clustergen), kal16 a US male
diphone voice."""
FLITE_PREFIX = "flite:"
"""A :class:`Speaker` whose ``voice`` starts with this is spoken by flite (``flite:slt``)."""
FLITE_EVERY = 3
"""v4: speaker ``i`` is a flite speaker when ``i % FLITE_EVERY == FLITE_EVERY - 1`` (a third)."""

VOICES_V2 = VOICES + ("en-us-nyc", "en-gb-x-gbcwmd")
VARIANTS_V2 = VARIANTS + ("m8", "klatt", "klatt2", "klatt3", "klatt4", "Andy", "Annie", "belinda", "david", "edward",
                          "grandma", "grandpa", "linda", "Michael", "steph", "travis", "zac", "john", "paul", "rob",
                          "max", "quincy", "shelby", "Alex", "Alicia", "adam", "anika", "aunty", "benjamin", "caleb",
                          "iven", "norbert", "victor")
BASE_GAIN_DB_V2 = -12.0
"""v2 headroom: the loudest draw (angry +9 dB) on a +4 dB tilt stays below full scale."""

# v2: uniform ranges per emotion, relative to the speaker's own voice (units as :class:`Prosody`;
# tilt_db is the sox treble shelf at 3 kHz, a stand-in for high-frequency energy / vocal effort).
# Directions from the acoustic-correlates literature (Murray & Arnott 1993; Banse & Scherer 1996;
# Juslin & Laukka 2003): anger raised F0, wide range, fast, loud, more high-frequency energy, short
# pauses; happiness raised F0, wide range, slightly fast, slightly loud; sadness lowered F0, narrow
# range, slow, quiet, less high-frequency energy, long pauses; fear high F0, fast, irregular; surprise
# highest F0 and widest range. Ranges overlap on purpose: real speakers overlap.
PROSODY_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "neutral": dict(pitch=(-6, 6), range=(70, 125), rate=(90, 110), gain_db=(-1.5, 1.5), pause_ms=(100, 300), tilt_db=(-1, 1)),
    "happy": dict(pitch=(8, 35), range=(130, 230), rate=(98, 120), gain_db=(0.5, 4), pause_ms=(60, 200), tilt_db=(0, 3)),
    "sad": dict(pitch=(-25, -5), range=(15, 65), rate=(62, 90), gain_db=(-10, -3), pause_ms=(250, 700), tilt_db=(-6, -2)),
    "angry": dict(pitch=(0, 20), range=(130, 230), rate=(104, 132), gain_db=(3, 9), pause_ms=(20, 150), tilt_db=(2, 6)),
    "fearful": dict(pitch=(15, 45), range=(90, 160), rate=(110, 140), gain_db=(-4, 1), pause_ms=(150, 400), tilt_db=(-1, 2)),
    "surprised": dict(pitch=(25, 50), range=(180, 260), rate=(95, 115), gain_db=(0, 4), pause_ms=(80, 200), tilt_db=(0, 3)),
}
AUGMENT_SHARE = 0.8
"""v2 / v3: share of clips that get an augmentation chain (the rest stay clean studio audio)."""


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: espeak-ng voice + variant, base pitch (0-99), speed (words/min), tilt.

    A flite speaker (v4) has ``voice`` ``flite:NAME``, no variant, ``pitch`` its F0 mean in Hz and
    ``speed`` a rate in espeak's words/min scale (165 is the voice's own)."""

    id: str
    voice: str
    variant: str
    pitch: int
    speed: int
    tilt_db: float = 0.0
    """v2 / v3: the speaker's own spectral tilt (sox treble shelf at 3 kHz, dB): voice quality and microphone."""


def make_speakers(n: int, seed: int, style: str = "v1") -> list[Speaker]:
    """``n`` distinct speakers; speaker ``i`` depends only on (seed, i, style).

    v1: voices and variants in turn, pitch 35-65, speed 150-185. v2: voice and variant drawn from
    the larger :data:`VOICES_V2` x :data:`VARIANTS_V2` (the Klatt variants use another voice source),
    pitch 15-85, speed 125-200 words/min and a spectral tilt of -4..+4 dB. v4: v1's speakers, but
    every :data:`FLITE_EVERY`-th is a flite voice (in turn) at 0.85-1.15 of its own F0, speed 150-185.
    """
    out = []
    for i in range(n):
        rng = random.Random(f"{seed}:speaker:{i}")
        if style == "v4" and i % FLITE_EVERY == FLITE_EVERY - 1:
            names = sorted(FLITE_VOICES)
            name = names[(i // FLITE_EVERY) % len(names)]
            f0 = round(FLITE_VOICES[name][0] * rng.uniform(0.85, 1.15))
            out.append(Speaker(id=f"spk{i:02d}", voice=FLITE_PREFIX + name, variant="", pitch=f0,
                               speed=rng.randint(150, 185)))
        elif style in ("v1", "v4"):
            out.append(Speaker(id=f"spk{i:02d}", voice=VOICES[i % len(VOICES)], variant=VARIANTS[i % len(VARIANTS)],
                               pitch=rng.randint(35, 65), speed=rng.randint(150, 185)))
        else:
            out.append(Speaker(id=f"spk{i:02d}", voice=VOICES_V2[i % len(VOICES_V2)], variant=rng.choice(VARIANTS_V2),
                               pitch=rng.randint(15, 85), speed=rng.randint(125, 200),
                               tilt_db=round(rng.uniform(-4, 4), 1)))
    return out


@lru_cache(maxsize=1)
def load_bank() -> dict[str, Any]:
    """The sentence bank: {"version": int, emotion: [{"text", "q", "a"}, ...]}."""
    import yaml

    text = resources.files("emoreason.data.resources").joinpath("sentences.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Utterance:
    """Everything needed to synthesize utterance ``key`` (picklable, no randomness left)."""

    key: str
    emotion: str
    wording: str  # "neutral" or the emotion whose bank the sentence came from
    text: str
    question: str
    answer: str
    speaker: Speaker
    pitch: float
    range: float
    rate: float
    gain_db: float
    pause_ms: int
    tremolo: tuple[float, float] | None
    tilt_db: float = 0.0
    """v2 / v3: spectral tilt (speaker's, + emotion's in v2), sox treble shelf at 3 kHz, dB."""
    augment: dict[str, Any] | None = None
    """v2 / v3: an :func:`emoreason.data.augment.draw_chain` chain applied after sox, or None (clean)."""
    style: str = "v1"


def plan_utterance(j: int, seed: int, emotions: tuple[str, ...], speakers: list[Speaker],
                   neutral_text_share: float, style: str = "v1", augment: bool = True) -> Utterance:
    """Utterance ``j``: emotion cycles (balanced), each speaker gets every emotion in turn, the
    sentence and the prosody come from ``Random(f"{seed}:{j}")``.

    v1: the emotion's :data:`PROSODY` with a small jitter. v2: each prosody value drawn from the
    emotion's :data:`PROSODY_RANGES`, plus a tilt and (for :data:`AUGMENT_SHARE` of the clips) an
    augmentation chain (none with ``augment=False``, which changes nothing else). v3: v1's values,
    then v2's augmentation draw. Extra draws come after v1's, so the sentence choice is the same.
    """
    rng = random.Random(f"{seed}:{j}")
    bank = load_bank()
    emotion = emotions[j % len(emotions)]
    speaker = speakers[(j // len(emotions)) % len(speakers)]
    own = bank.get(emotion) or []
    wording = "neutral" if emotion == "neutral" or not own or rng.random() < neutral_text_share else emotion
    entry = rng.choice(bank[wording])
    p = PROSODY[emotion]
    common = dict(key=f"syn{j:05d}", emotion=emotion, wording=wording, text=entry["text"], question=entry["q"],
                  answer=entry["a"], speaker=speaker, tremolo=p.tremolo)
    if style in ("v1", "v3", "v4"):
        # jitter: classes overlap a little, like real speakers do
        u = Utterance(
            **common, pitch=round(p.pitch + rng.uniform(-5, 5), 1), range=round(p.range * rng.uniform(0.9, 1.1), 1),
            rate=round(p.rate * rng.uniform(0.95, 1.05), 1), gain_db=round(p.gain_db + rng.uniform(-1, 1), 2),
            pause_ms=int(p.pause_ms * rng.uniform(0.8, 1.2)),
        )
        if style == "v1":
            return u
        if style == "v4":
            return dataclasses.replace(u, style=style)
        # v3: v1's prosody on v2's speakers (their own tilt), plus the augmentation
        return dataclasses.replace(u, tilt_db=speaker.tilt_db, augment=_draw_augment(rng, seed, j, augment), style=style)

    r = PROSODY_RANGES[emotion]
    draw = {k: rng.uniform(*v) for k, v in r.items()}
    chain = _draw_augment(rng, seed, j, augment)
    return Utterance(
        **common, pitch=round(draw["pitch"], 1), range=round(draw["range"], 1), rate=round(draw["rate"], 1),
        gain_db=round(draw["gain_db"], 2), pause_ms=int(draw["pause_ms"]),
        tilt_db=round(speaker.tilt_db + draw["tilt_db"], 1), augment=chain, style=style,
    )


def _draw_augment(rng: random.Random, seed: int, j: int, augment: bool) -> dict[str, Any] | None:
    """Utterance ``j``'s augmentation chain, or None for :data:`AUGMENT_SHARE`'s clean share. The coin
    is drawn from ``rng`` either way, so ``augment=False`` changes nothing but the chain."""
    from emoreason.data.augment import draw_chain, rng_for

    coin = rng.random()
    if not augment or coin >= AUGMENT_SHARE:
        return None
    chain = draw_chain(rng_for(seed, j, "augment"))
    return None if set(chain) == {"seed"} else chain  # every step's coin said no: a clean clip, say so


def _with_breaks(u: Utterance) -> str:
    """The utterance's text, XML-escaped, with an SSML break of its pause after each clause (commas, stops)."""
    from xml.sax.saxutils import escape

    brk = f'<break time="{u.pause_ms}ms"/>'
    body = escape(u.text)
    for mark in (", ", ". ", "? ", "! "):
        body = body.replace(mark, mark.strip() + brk + " ")
    return body


def ssml(u: Utterance) -> str:
    """SSML for espeak-ng: prosody around the text; a break after each clause (commas, stops)."""
    return (f'<speak><prosody pitch="{u.pitch:+.1f}%" range="{u.range:.1f}%" rate="{u.rate:.1f}%">'
            f"{_with_breaks(u)}</prosody></speak>")


def flite_command(u: Utterance, raw: Path) -> list[str]:
    """The flite command for a flite speaker's utterance: the emotion's pitch level, range and rate
    as flite's F0 target mean / s.d. and duration stretch around the speaker's own; pauses as SSML
    breaks (flite reads ``<break>``, not ``<prosody>``)."""
    name = u.speaker.voice[len(FLITE_PREFIX):]
    f0 = u.speaker.pitch * (1 + u.pitch / 100)
    sd = FLITE_VOICES[name][1] * u.speaker.pitch / FLITE_VOICES[name][0] * u.range / 100
    stretch = (165 / u.speaker.speed) * (100 / u.rate)
    return ["flite", "-voice", name, "-ssml", "-t", f"<speak>{_with_breaks(u)}</speak>", "-o", str(raw),
            "--setf", f"int_f0_target_mean={f0:.1f}", "--setf", f"int_f0_target_stddev={sd:.1f}",
            "--setf", f"duration_stretch={stretch:.3f}"]


def synthesize(u: Utterance, out_path: Path, timeout: float = 60.0) -> None:
    """espeak-ng (22.05 kHz) or flite (16 kHz; ``flite:`` speakers) -> sox (gain, tremolo, 16 kHz mono
    16-bit, no dither) -> out_path (atomic)."""
    raw = out_path.with_name(out_path.stem + ".raw.wav")
    part = out_path.with_name(out_path.stem + ".part.wav")
    if u.speaker.voice.startswith(FLITE_PREFIX):
        cmd_tts = flite_command(u, raw)
    else:
        cmd_tts = ["espeak-ng", "-m", "-v", voice_name(u.speaker), "-p", str(u.speaker.pitch), "-s", str(u.speaker.speed),
                   "-w", str(raw), ssml(u)]
    base = BASE_GAIN_DB if u.style in ("v1", "v4") else BASE_GAIN_DB_V2
    effects = ["gain", f"{base + u.gain_db:.2f}"]
    if u.tilt_db:
        effects += ["treble", f"{u.tilt_db:+.1f}"]
    if u.tremolo:
        effects += ["tremolo", f"{u.tremolo[0]}", f"{u.tremolo[1]}"]
    effects += ["pad", "0.1", "0.1", "rate", "-h", "16000"]
    cmd_sox = ["sox", "-D", "-V1", str(raw), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer",
               str(part), *effects]
    try:
        for cmd in (cmd_tts, cmd_sox):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                raise UserError(f"{cmd[0]} failed for {u.key}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        if u.augment:
            _augment_file(part, u.augment)
        os.replace(part, out_path)
    finally:
        raw.unlink(missing_ok=True)
        part.unlink(missing_ok=True)


def _augment_file(path: Path, chain: dict[str, Any]) -> None:
    """Apply an augmentation chain to a 16 kHz 16-bit wav in place (still 16-bit PCM, no dither)."""
    import soundfile as sf

    from emoreason.data.augment import apply_chain

    wave, sr = sf.read(str(path), dtype="float32")
    sf.write(str(path), apply_chain(wave, chain, sr), sr, subtype="PCM_16", format="WAV")


def voice_name(speaker: Speaker) -> str:
    """``meta.voice``: ``VOICE+VARIANT`` for espeak-ng, ``flite:NAME`` for flite."""
    return speaker.voice if speaker.voice.startswith(FLITE_PREFIX) else f"{speaker.voice}+{speaker.variant}"


def utterance_rows(u: Utterance, audio: str, duration: float, split: str, tasks: tuple[str, ...], seed: int) -> list[ManifestRow]:
    """Manifest rows for one synthesized utterance (one per task)."""
    sentiment = sentiment_of(u.emotion)
    meta = {"pools_version": POOLS_VERSION, "bank_version": load_bank().get("version", 0), "wording": u.wording,
            "voice": voice_name(u.speaker),
            "prosody": {"pitch": u.pitch, "range": u.range, "rate": u.rate, "gain_db": u.gain_db, "pause_ms": u.pause_ms,
                        "tremolo": list(u.tremolo) if u.tremolo else None}}
    if u.style != "v1":  # v1 rows keep their exact bytes
        meta["style"] = u.style
        meta["prosody"]["tilt_db"] = u.tilt_db
        meta["augment"] = u.augment
    rows = []
    for task in tasks:
        row_id = f"{SOURCE}/{u.key}/{task}"
        label = {"emotion": u.emotion, "sentiment": sentiment}.get(task)
        target = label_target(task, label) if label else (u.text if task == "asr" else u.answer)
        row_meta = dict(meta, question=u.question) if task == "sqa" else meta
        rows.append(validate_row({
            "id": row_id, "audio": audio, "task": task, "duration": duration, "transcript": u.text, "label": label,
            "instruction": instruction_for(row_id, task, seed, question=u.question if task == "sqa" else None),
            "target": target, "split": split, "speaker": f"{SOURCE}/{u.speaker.id}", "source": SOURCE, "meta": row_meta,
        }))
    return rows


PLAN_STAMP = "plan.json"
"""In ``wavs/``: {utterance key: :func:`plan_digest`} of every wav written, so a rerun reuses a wav
only when its plan is unchanged."""


def plan_digest(u: Utterance) -> str:
    """SHA-256 (16 hex) of everything that decides an utterance's audio."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(u), sort_keys=True).encode()).hexdigest()[:16]


def _read_stamps(path: Path) -> dict[str, str]:
    """The plan stamps of a wav folder; {} when absent or unreadable (then every wav is redone)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_tools(style: str = "v1") -> None:
    """Raise UserError naming the missing tool (espeak-ng / sox; flite for v4)."""
    for tool in ("espeak-ng", "sox", *(("flite",) if style == "v4" else ())):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} is not installed (apt-get install {tool}); "
                            + ("or --style v1 for espeak-ng alone" if tool == "flite" else "it speaks the corpus"))


@dataclass
class SynthSummary:
    """What a synth run did; :meth:`text` is printed by the CLI."""

    manifest: Path
    utterances: int
    rows: int
    synthesized: int
    reused: int
    seconds: float
    audio_seconds: float
    workers: int
    splits: dict[str, int]
    speakers: dict[str, list[str]]
    labels: dict[str, int]

    def text(self) -> str:
        per = f"{1000 * self.seconds / self.synthesized:.1f} ms/utt wall, {1000 * self.seconds * self.workers / self.synthesized:.1f} ms/utt per worker" \
            if self.synthesized else "nothing new to synthesize"
        lines = [
            f"wrote {self.rows} rows for {self.utterances} utterances to {self.manifest}",
            f"  audio: {self.synthesized} synthesized, {self.reused} reused; {self.audio_seconds / 60:.1f} min of speech",
            f"  cost: {self.seconds:.1f} s with {self.workers} workers ({per})",
            "  emotions: " + ", ".join(f"{k}={v}" for k, v in self.labels.items()),
            "  splits (utterances): " + ", ".join(f"{k}={v}" for k, v in sorted(self.splits.items())),
        ]
        for split, spk in sorted(self.speakers.items()):
            lines.append(f"  {split} speakers: {', '.join(spk)}")
        return "\n".join(lines)


def synth_corpus(
    out_dir: str | Path,
    n: int = 300,
    seed: int = 0,
    *,
    emotions: tuple[str, ...] = DEFAULT_EMOTIONS,
    n_speakers: int = 12,
    neutral_text_share: float = 0.4,
    test_fraction: float = 0.15,
    dev_fraction: float = 0.15,
    tasks: str | None = None,
    workers: int | None = None,
    style: str = DEFAULT_STYLE,
    augment: bool = True,
) -> SynthSummary:
    """Synthesize ``n`` utterances into ``out_dir/wavs`` and write ``out_dir/manifest.jsonl``.

    Args:
        emotions: labels to speak (subset of :data:`PROSODY`).
        n_speakers: synthetic speakers; whole speakers go to dev / test (speaker-disjoint).
        neutral_text_share: share of emotional utterances that use a neutral-worded sentence.
        tasks: comma list among emotion, sentiment, asr, sqa (default all).
        workers: concurrent synthesis jobs (default: CPU count).
        style: ``v4`` (default: v1 with a third of the speakers spoken by flite), ``v1`` (the
            first corpus, byte-identical to what it always wrote), ``v2`` (varied voices, prosody
            ranges, tilt, augmentation) or ``v3`` (v1's prosody on v2's voices, augmented). See
            :data:`STYLES` and docs/data.md for the measured transfer.
        augment: v2 / v3 only: False leaves every clip clean (same voices and prosody). Reusing an
            output folder across styles or this flag reuses its wavs: use another folder.
    """
    if n < 1:
        raise UserError("--n must be at least 1")
    if style not in STYLES:
        raise UserError(f"unknown synth style {style!r} (available: {', '.join(STYLES)})")
    unknown = [e for e in emotions if e not in PROSODY]
    if unknown or not emotions:
        raise UserError(f"unknown emotion(s) {unknown} (available: {sorted(PROSODY)})")
    if not 0 <= neutral_text_share <= 1:
        raise UserError("--neutral-text-share must be in [0, 1]")
    if n_speakers < 3 and (test_fraction > 0 or dev_fraction > 0):
        raise UserError("speaker-disjoint train/dev/test needs at least 3 speakers (--speakers)")
    chosen = parse_tasks(tasks, SUPPORTED_TASKS)
    check_tools(style)
    out_dir = Path(out_dir)
    wav_dir = out_dir / WAV_DIR
    wav_dir.mkdir(parents=True, exist_ok=True)
    speakers = make_speakers(n_speakers, seed, style)
    split_of = assign_groups([s.id for s in speakers], test_fraction, dev_fraction, seed)
    plan = [plan_utterance(j, seed, tuple(emotions), speakers, neutral_text_share, style, augment) for j in range(n)]
    # Reuse a wav only when it was made from the same plan (a folder first made with another
    # style, seed or speaker count must not keep stale audio under new rows).
    stamp_path = wav_dir / PLAN_STAMP
    stamps = _read_stamps(stamp_path)
    todo = [u for u in plan if not (wav_dir / f"{u.key}.wav").is_file() or stamps.get(u.key) != plan_digest(u)]
    workers = workers or os.cpu_count() or 1
    if any(u.augment for u in todo):
        import scipy.signal  # noqa: F401 - once here, not under the import lock in every worker thread
    t0 = time.perf_counter()
    results = run_parallel([lambda u=u: synthesize(u, wav_dir / f"{u.key}.wav") for u in todo], workers, "synthesize")
    seconds = time.perf_counter() - t0
    failures = [(u.key, r) for u, r in zip(todo, results) if isinstance(r, Exception)]
    stamps.update({u.key: plan_digest(u) for u, r in zip(todo, results) if not isinstance(r, Exception)})
    if todo:
        atomic_write(stamp_path, json.dumps(stamps, sort_keys=True, indent=0))
    if failures:
        key, err = failures[0]
        raise UserError(f"{len(failures)} utterance(s) failed to synthesize (first: {key}: {err}); rerun to retry")
    rows: list[ManifestRow] = []
    audio_seconds = 0.0
    for u in plan:
        duration = round(wav_duration(wav_dir / f"{u.key}.wav"), 4)
        audio_seconds += duration
        rows.extend(utterance_rows(u, f"{WAV_DIR}/{u.key}.wav", duration, split_of[u.speaker.id], chosen, seed))
    manifest = out_dir / MANIFEST_NAME
    count = write_manifest(manifest, rows)
    by_split: dict[str, list[str]] = {}
    for s in speakers:
        by_split.setdefault(split_of[s.id], []).append(s.id)
    utt_splits: dict[str, int] = {}
    labels: dict[str, int] = {}
    for u in plan:
        utt_splits[split_of[u.speaker.id]] = utt_splits.get(split_of[u.speaker.id], 0) + 1
        labels[u.emotion] = labels.get(u.emotion, 0) + 1
    return SynthSummary(manifest=manifest, utterances=n, rows=count, synthesized=len(todo), reused=n - len(todo),
                        seconds=seconds, audio_seconds=audio_seconds, workers=workers, splits=utt_splits,
                        speakers=by_split, labels=labels)


__all__ = ["DEFAULT_STYLE", "FLITE_VOICES", "PROSODY", "PROSODY_RANGES", "STYLES", "Prosody", "Speaker", "Utterance", "make_speakers", "plan_utterance", "ssml", "synth_corpus",
           "synthesize", "load_bank"]
