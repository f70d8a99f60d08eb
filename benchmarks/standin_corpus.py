"""A stand-in for a real acted-emotion corpus: synthetic speech *we* make with CMU flite (a
synthesiser our training corpus never uses), written as a RAVDESS release tree so that it goes
through the real importer and ``emoreason demo --corpus ravdess:TREE``; or, with ``--layout emodb``,
German speech by espeak-ng written as an EmoDB (Berlin) tree for ``--corpus emodb:TREE``.

    PYTHONPATH=. .venv/bin/python benchmarks/standin_corpus.py --out /tmp/standin --actors 10 --per-emotion 6
    .venv/bin/emoreason demo --quick --corpus ravdess:/tmp/standin --variants label-dual --out /tmp/demo-standin
    PYTHONPATH=. .venv/bin/python benchmarks/standin_corpus.py --layout emodb --out /tmp/standin-de
    .venv/bin/emoreason demo --quick --corpus emodb:/tmp/standin-de --test-emotion-rows 0 --out /tmp/demo-de

This is not human speech and not RAVDESS: it is our own flite (optionally espeak-ng) speech with
emotion put in by the engine's prosody controls. It only follows RAVDESS's layout and naming, so a
real user's path (importer, speaker folds, transcripts, the demo's corpus branch) is exercised end
to end on a corpus that, like a real one, has few speakers, two fixed sentences and no labels in
the words.

Layout (RAVDESS speech part, ``emoreason/data/importers/ravdess.py``)::

    TREE/Actor_NN/03-01-EE-II-SS-RR-NN.wav     (16 kHz mono 16-bit)
    TREE/PROVENANCE.txt                         what made the tree (engine, voices, settings)

- ``EE`` emotion: 01 neutral, 03 happy, 04 sad, 05 angry (the demo's four).
- ``II`` intensity: 01 normal, 02 strong (the emotion's prosody pushed 1.5x further from neutral).
  Unlike the real release, neutral is also written at intensity 02 (the same neutral prosody with
  another random draw), so every actor has as many clips of each emotion.
- ``SS`` statement: 01 "Kids are talking by the door." / 02 "Dogs are sitting by the door."
- ``RR`` repetition 01 / 02: another seeded draw of the small random jitter.
- ``NN`` actor: odd male, even female (as in RAVDESS); an actor is one voice with its own pitch
  and rate offsets (``ACTOR_STYLES``), so one flite voice gives up to two actors.

``--per-emotion`` (1-8) clips of each emotion per actor are taken from the 8 (intensity, statement,
repetition) combinations in a seeded order. Emotion settings: ``FLITE_EMOTION`` of
``benchmarks/synth_transfer.py`` (published cue directions: F0 level and spread, duration, gain),
set once there and not tuned on any result here. Reruns reuse the wavs already written.

Layout ``emodb`` (``emoreason/data/importers/emodb.py``)::

    TREE/wav/SSTTTEV.wav    speaker SS (EmoDB's ten codes), text TTT (a01 ... b10, EmoDB's German
                            sentences), emotion E (N neutral, F happy, T sad, W angry), version V

Ten speakers, each an espeak-ng German voice (``de`` with a male or female variant as EmoDB's
speaker is male or female) with its own pitch and rate offsets; emotion by the same factors
(pitch, rate, gain; espeak-ng's command line has no F0-spread control). Clips per speaker follow
EmoDB's own imbalance among these four emotions (127 angry, 79 neutral, 71 happy, 62 sad of 339):
``EMODB_PER_SPEAKER`` (``--per-emotion`` is not used). Not human speech and not EmoDB; espeak-ng is
the engine of our synthetic training corpus, so this checks the German path, not transfer.
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_transfer import FLITE_EMOTION, FLITE_VOICES, sox_finish  # noqa: E402  (a sibling benchmark script)

EMOTION_CODES = {"neutral": "01", "happy": "03", "sad": "04", "angry": "05"}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
STRONG = 1.5
"""Intensity 02: how much further from neutral each prosody setting goes."""
ACTOR_STYLES = ((1.0, 1.0), (0.88, 1.08), (1.12, 0.93))
"""(F0 factor, duration factor) per actor made from one voice: the voice as it is, lower and
slower, higher and faster."""
FEMALE = {"slt"}
FLITE_ORDER = ("slt", "rms", "awb", "kal16")
"""flite voices in the order actors are made (kal, the 8 kHz diphone voice, is left out: it is
band-limited, a give-away the others do not have)."""
ESPEAK_VOICES = ("en-us+f2", "en-gb+m4", "en-us+m7", "en-gb+f4")
"""espeak-ng voices used after the flite ones run out (``--espeak``)."""
EMODB_CODES = {"neutral": "N", "happy": "F", "sad": "T", "angry": "W"}
EMODB_PER_SPEAKER = {"neutral": 8, "happy": 7, "sad": 6, "angry": 13}
"""Clips per speaker and emotion in the ``emodb`` layout: EmoDB's 79 / 71 / 62 / 127 of 339 over
ten speakers, rounded (340 clips)."""
GERMAN_MALE = ("de+m1", "de+m3", "de+m7", "de+m2", "de+m4", "de+m6")
GERMAN_FEMALE = ("de+f1", "de+f2", "de+f4", "de+f3", "de+f5")


@dataclass(frozen=True)
class Actor:
    """One stand-in actor: an engine voice with its own pitch and rate offsets."""

    number: int
    engine: str
    """``flite`` | ``espeak``"""
    voice: str
    f0: float
    stretch: float


def make_actors(n: int, espeak: bool) -> list[Actor]:
    """``n`` actors: each flite voice as it is, then in its other styles; espeak-ng voices after
    them when ``espeak``. Numbers follow RAVDESS's odd male / even female convention."""
    voices = [("flite", v) for v in FLITE_ORDER] + ([("espeak", v) for v in ESPEAK_VOICES] if espeak else [])
    pairs = [(engine, v, style) for style in ACTOR_STYLES for engine, v in voices]
    if n > len(pairs):
        raise SystemExit(f"--actors {n}: at most {len(pairs)} with these voices"
                         + ("" if espeak else " (add --espeak for more)"))
    male, female = iter(range(1, 25, 2)), iter(range(2, 25, 2))
    out = []
    for engine, voice, (f0, stretch) in pairs[:n]:
        is_female = voice in FEMALE or (engine == "espeak" and "+f" in voice)
        out.append(Actor(next(female) if is_female else next(male), engine, voice, f0, stretch))
    return sorted(out, key=lambda a: a.number)


def shaped(emotion: str, strong: bool) -> dict[str, float]:
    """``FLITE_EMOTION[emotion]``, each factor pushed ``STRONG`` times further from neutral when strong."""
    e, base = FLITE_EMOTION[emotion], FLITE_EMOTION["neutral"]
    if not strong:
        return dict(e)
    return {k: base[k] + STRONG * (e[k] - base[k]) for k in e}


def render_flite(actor: Actor, text: str, e: dict[str, float], rng: random.Random, wav: Path, raw: Path) -> None:
    """One clip by flite into ``raw``, finished (gain, 16 kHz) into ``wav``."""
    base_f0, base_sd = FLITE_VOICES[actor.voice]
    subprocess.run(["flite", "-voice", actor.voice, "-t", text, "-o", str(raw),
                    "--setf", f"int_f0_target_mean={base_f0 * actor.f0 * e['f0'] * rng.uniform(0.95, 1.05):.1f}",
                    "--setf", f"int_f0_target_stddev={base_sd * e['sd'] * rng.uniform(0.9, 1.1):.1f}",
                    "--setf", f"duration_stretch={actor.stretch * e['stretch'] * rng.uniform(0.95, 1.05):.3f}"],
                   check=True, capture_output=True)
    sox_finish(raw, wav, e["gain"] + rng.uniform(-1, 1))


def render_espeak(actor: Actor, text: str, e: dict[str, float], rng: random.Random, wav: Path, raw: Path) -> None:
    """espeak-ng with the same factors: pitch (0-99, 50 = the voice's own) from the F0 one, words
    per minute from the duration one (espeak-ng's command line has no F0-spread control)."""
    pitch = max(0, min(99, round(50 * actor.f0 * e["f0"] * rng.uniform(0.95, 1.05))))
    wpm = round(165 / (actor.stretch * e["stretch"] * rng.uniform(0.95, 1.05)))
    subprocess.run(["espeak-ng", "-v", actor.voice, "-p", str(pitch), "-s", str(wpm),
                    "-w", str(raw), text], check=True, capture_output=True)
    sox_finish(raw, wav, e["gain"] + rng.uniform(-1, 1))


def build(out: Path, actors: list[Actor], per_emotion: int, seed: int) -> int:
    """Write every actor's clips under ``out``; returns how many wavs were written now."""
    combos = [(i, s, r) for i in ("01", "02") for s in STATEMENTS for r in ("01", "02")]
    written = 0
    for actor in actors:
        folder = out / f"Actor_{actor.number:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for emotion, code in EMOTION_CODES.items():
            picks = random.Random(f"{seed}:{actor.number}:{emotion}").sample(combos, per_emotion)
            for intensity, statement, rep in sorted(picks):
                wav = folder / f"03-01-{code}-{intensity}-{statement}-{rep}-{actor.number:02d}.wav"
                if wav.is_file():
                    continue
                rng = random.Random(f"{seed}:{wav.stem}")
                render = render_flite if actor.engine == "flite" else render_espeak
                with tempfile.TemporaryDirectory() as tmp:  # the engine's raw wav never lands in the tree
                    render(actor, STATEMENTS[statement], shaped(emotion, intensity == "02"), rng, wav, Path(tmp) / "raw.wav")
                written += 1
    return written


def emodb_speakers() -> list[Actor]:
    """EmoDB's ten speakers (``Actor.number`` = the speaker code), each a German espeak-ng voice of
    the speaker's gender, the voices and pitch / rate styles dealt in turn."""
    from emoreason.data.importers.emodb import SPEAKERS

    male, female = iter(GERMAN_MALE), iter(GERMAN_FEMALE)
    out = []
    for i, (code, gender) in enumerate(sorted(SPEAKERS.items())):
        f0, stretch = ACTOR_STYLES[i % len(ACTOR_STYLES)]
        out.append(Actor(int(code), "espeak", next(female if gender == "female" else male), f0, stretch))
    return out


def build_emodb(out: Path, speakers: list[Actor], seed: int) -> int:
    """Write every speaker's clips under ``out/wav`` in EmoDB's naming; returns how many were written now."""
    from emoreason.data.importers.emodb import TEXTS

    combos = [(text, version) for text in sorted(TEXTS) for version in "ab"]
    folder = out / "wav"
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for speaker in speakers:
        for emotion, count in EMODB_PER_SPEAKER.items():
            picks = random.Random(f"{seed}:{speaker.number}:{emotion}").sample(combos, count)
            for text, version in sorted(picks):
                wav = folder / f"{speaker.number:02d}{text}{EMODB_CODES[emotion]}{version}.wav"
                if wav.is_file():
                    continue
                rng = random.Random(f"{seed}:{wav.stem}")
                with tempfile.TemporaryDirectory() as tmp:
                    render_espeak(speaker, TEXTS[text], shaped(emotion, version == "b"), rng, wav, Path(tmp) / "raw.wav")
                written += 1
    return written


def provenance(actors: list[Actor], per_emotion: int, seed: int, layout: str = "ravdess") -> str:
    engines = sorted({{"flite": "CMU flite", "espeak": "espeak-ng"}[a.engine] for a in actors})
    if layout == "emodb":
        head = ["Stand-in corpus in the EmoDB layout, written by emoreason's benchmarks/standin_corpus.py.",
                f"NOT human speech and NOT EmoDB: German synthetic speech ({', '.join(engines)}) made by us,",
                "emotion by the engine's prosody controls (benchmarks/synth_transfer.py FLITE_EMOTION;",
                "version b pushes them further from neutral).",
                f"seed {seed}, clips per speaker {EMODB_PER_SPEAKER}.", "speakers:"]
        rows = [f"  {a.number:02d}: {a.engine} {a.voice}, F0 x{a.f0:g}, duration x{a.stretch:g}" for a in actors]
        return "\n".join(head + rows) + "\n"
    lines = ["Stand-in corpus in the RAVDESS layout, written by emoreason's benchmarks/standin_corpus.py.",
             f"NOT human speech and NOT RAVDESS: synthetic speech ({', '.join(engines)}) made by us,",
             "emotion by the engine's prosody controls (benchmarks/synth_transfer.py FLITE_EMOTION).",
             f"seed {seed}, {per_emotion} clips per emotion per actor, emotions {', '.join(EMOTION_CODES)}.", "actors:"]
    lines += [f"  Actor_{a.number:02d}: {a.engine} {a.voice}, F0 x{a.f0:g}, duration x{a.stretch:g}" for a in actors]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the tree to write")
    ap.add_argument("--layout", choices=("ravdess", "emodb"), default="ravdess",
                    help="ravdess: English flite speech as RAVDESS (default); emodb: German espeak-ng speech as EmoDB")
    ap.add_argument("--actors", type=int, default=10, help="number of actors (default 10; ravdess only)")
    ap.add_argument("--per-emotion", type=int, default=6, help="clips per emotion per actor, 1-8 (default 6; ravdess only)")
    ap.add_argument("--espeak", action="store_true", help="espeak-ng voices after the flite ones (more actors; ravdess only)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.layout == "emodb":
        for tool in ("espeak-ng", "sox"):
            if shutil.which(tool) is None:
                raise SystemExit(f"{tool} is not installed (apt-get install {tool})")
        speakers = emodb_speakers()
        n = build_emodb(args.out, speakers, args.seed)
        (args.out / "PROVENANCE.txt").write_text(provenance(speakers, 0, args.seed, layout="emodb"))
        total = len(speakers) * sum(EMODB_PER_SPEAKER.values())
        print(f"{args.out}: {len(speakers)} speakers, {total} clips ({n} written now) in the EmoDB layout; "
              "NOT human speech (see PROVENANCE.txt)")
        return args.out
    if not 1 <= args.per_emotion <= 8:
        raise SystemExit("--per-emotion must be 1-8 (2 intensities x 2 statements x 2 repetitions)")
    for tool in ("flite", "sox") + (("espeak-ng",) if args.espeak else ()):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install {tool})")
    actors = make_actors(args.actors, args.espeak)
    n = build(args.out, actors, args.per_emotion, args.seed)
    (args.out / "PROVENANCE.txt").write_text(provenance(actors, args.per_emotion, args.seed))
    total = len(actors) * len(EMOTION_CODES) * args.per_emotion
    print(f"{args.out}: {len(actors)} actors x {len(EMOTION_CODES)} emotions x {args.per_emotion} = {total} clips "
          f"({n} written now); NOT human speech (see PROVENANCE.txt)")
    return args.out


if __name__ == "__main__":
    main()
