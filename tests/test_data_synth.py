"""Synthetic emotional speech: determinism, resumability, audible prosody, speaker-disjoint splits."""
from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoreason.data.manifest import read_manifest

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")

EMOTIONS = ("neutral", "happy", "sad", "angry")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """v2: varied voices, prosody ranges, augmentation (the determinism tests run on it)."""
    from emoreason.data.synth import synth_corpus

    out = tmp_path_factory.mktemp("synth") / "a"
    synth_corpus(out, n=32, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v2")
    return out


@pytest.fixture(scope="module")
def corpus_v1(tmp_path_factory) -> Path:
    from emoreason.data.synth import synth_corpus

    out = tmp_path_factory.mktemp("synth") / "v1"
    synth_corpus(out, n=32, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v1")
    return out


@pytest.fixture(scope="module")
def corpus_v4(tmp_path_factory) -> Path:
    """v4 (the default): 6 speakers, spk02 and spk05 spoken by flite (16 of the 48 clips)."""
    from emoreason.data.synth import synth_corpus

    if shutil.which("flite") is None:
        pytest.skip("needs flite (apt-get install flite)")
    out = tmp_path_factory.mktemp("synth") / "v4"
    synth_corpus(out, n=48, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2)
    return out


@pytest.fixture(scope="module")
def corpus_v4_flite(corpus_v4, tmp_path_factory) -> Path:
    """The flite speakers' rows of ``corpus_v4`` alone (their own manifest beside the wavs)."""
    rows = [line for line in (corpus_v4 / "manifest.jsonl").read_text().splitlines()
            if json.loads(line)["meta"]["voice"].startswith("flite:")]
    (corpus_v4 / "flite.jsonl").write_text("\n".join(rows) + "\n")
    return corpus_v4


@pytest.fixture(scope="module")
def corpus_clean(tmp_path_factory) -> Path:
    """v2 without augmentation: the same plan as ``corpus`` minus the augmentation chains."""
    from emoreason.data.synth import synth_corpus

    out = tmp_path_factory.mktemp("synth") / "clean"
    synth_corpus(out, n=32, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v2", augment=False)
    return out


def f0_track(wave: np.ndarray, sr: int) -> np.ndarray:
    """Autocorrelation F0 (Hz) of voiced 40 ms frames, 10 ms hop; octave outliers removed. -> (frames,)"""
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    gate = 0.2 * np.sqrt(np.mean(wave**2))
    lo, hi = int(sr / 400), int(sr / 60)
    out = []
    for s in range(0, len(wave) - frame, hop):
        x = wave[s : s + frame] - wave[s : s + frame].mean()
        if np.sqrt(np.mean(x**2)) < gate:
            continue
        ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * frame)) ** 2)[:frame]
        ac = ac / (ac[0] + 1e-9) / (1 - np.arange(frame) / frame + 1e-3)
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.6:
            out.append(sr / k)
    f = np.array(out)
    m = np.median(f)
    return f[(f > m / 1.6) & (f < m * 1.6)]


def test_rows_tasks_and_speaker_disjoint_splits(corpus):
    rows = read_manifest(corpus / "manifest.jsonl")
    assert len(rows) == 32 * 4
    by_task = defaultdict(list)
    for r in rows:
        by_task[r.task].append(r)
    assert {t: len(v) for t, v in by_task.items()} == {"emotion": 32, "sentiment": 32, "asr": 32, "sqa": 32}
    assert {r.label for r in by_task["emotion"]} == set(EMOTIONS)
    assert {r.label for r in by_task["sentiment"]} == {"neutral", "positive", "negative"}
    assert all(r.target == r.transcript for r in by_task["asr"])
    assert all(r.meta["question"][1:] in r.instruction and r.target for r in by_task["sqa"])  # [1:]: may be lowercased
    speakers = defaultdict(set)
    for r in rows:
        speakers[r.split].add(r.speaker)
    assert set(speakers) == {"train", "dev", "test"}
    assert not (speakers["train"] & speakers["dev"]) and not (speakers["train"] & speakers["test"]) \
        and not (speakers["dev"] & speakers["test"])
    # some emotional utterances use neutral wording, so text alone cannot give the label
    emo = [r for r in by_task["emotion"] if r.label != "neutral"]
    assert any(r.meta["wording"] == "neutral" for r in emo) and any(r.meta["wording"] == r.label for r in emo)
    info = sf.info(str(corpus / rows[0].audio))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert rows[0].duration == pytest.approx(info.frames / 16000, abs=1e-3)


def test_same_seed_same_bytes_and_resume(corpus, tmp_path):
    from emoreason.data.synth import synth_corpus

    b = tmp_path / "b"
    synth_corpus(b, n=8, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v2")
    # utterance j depends on (seed, j) only: the first 8 of the 32-utterance corpus are identical
    for wav in sorted((b / "wavs").glob("*.wav")):
        assert wav.read_bytes() == (corpus / "wavs" / wav.name).read_bytes(), wav.name
    first8 = [line for line in (corpus / "manifest.jsonl").read_text().splitlines()][: 8 * 4]
    assert (b / "manifest.jsonl").read_text().splitlines() == first8
    # rerun: nothing is synthesized again, output unchanged
    mtimes = {p.name: p.stat().st_mtime_ns for p in (b / "wavs").glob("*.wav")}
    s = synth_corpus(b, n=8, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v2")
    assert s.synthesized == 0 and s.reused == 8
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in (b / "wavs").glob("*.wav")}
    assert "ms/utt" in synth_corpus(tmp_path / "c", n=2, seed=1, emotions=EMOTIONS, n_speakers=6).text()
    other = json.loads((tmp_path / "c" / "manifest.jsonl").read_text().splitlines()[0])
    assert other["meta"]["prosody"] != json.loads(first8[0])["meta"]["prosody"]  # another seed, another corpus


@pytest.mark.parametrize("which", ["corpus_v1", "corpus_clean", "corpus_v4_flite"])
def test_prosody_is_audible(which, request):
    """Measured on the audio: angry louder than sad, sad slower and lower and flatter than happy
    (v1, v2 before augmentation, and v4's flite speakers alone)."""
    corpus = request.getfixturevalue(which)
    manifest = "flite.jsonl" if which == "corpus_v4_flite" else "manifest.jsonl"
    stats = defaultdict(list)
    for r in read_manifest(corpus / manifest):
        if r.task != "emotion":
            continue
        wave, sr = sf.read(corpus / r.audio)
        f0 = f0_track(wave, sr)
        stats[r.label].append({
            "rms_db": 20 * np.log10(np.sqrt(np.mean(wave**2))),
            "sec_per_word": len(wave) / sr / len(r.transcript.split()),
            "f0": float(np.median(f0)),
            "range_st": float(np.std(12 * np.log2(f0))),
        })
    m = {e: {k: float(np.mean([s[k] for s in v])) for k in v[0]} for e, v in stats.items()}
    assert m["angry"]["rms_db"] > m["neutral"]["rms_db"] + 3 > m["sad"]["rms_db"] + 6
    assert m["sad"]["sec_per_word"] > 1.2 * m["happy"]["sec_per_word"]
    assert m["angry"]["sec_per_word"] < m["neutral"]["sec_per_word"]
    assert m["happy"]["f0"] > 1.15 * m["neutral"]["f0"] > 1.15 * m["sad"]["f0"]
    assert m["sad"]["range_st"] < 0.6 * m["happy"]["range_st"]


def test_v2_voices_prosody_and_augmentation(corpus, corpus_clean, corpus_v1):
    """v2 draws more voices, wider prosody and a recorded augmentation chain per clip; the
    augmentation is the only difference from the clean corpus; v1 rows carry none of it."""
    from emoreason.data.synth import PROSODY_RANGES, VARIANTS_V2, make_speakers

    rows = {r.id: r for r in read_manifest(corpus / "manifest.jsonl") if r.task == "emotion"}
    clean = {r.id: r for r in read_manifest(corpus_clean / "manifest.jsonl") if r.task == "emotion"}
    assert rows.keys() == clean.keys()
    augmented = 0
    for rid, r in rows.items():
        c = clean[rid]
        assert r.meta["style"] == "v2" and c.meta["augment"] is None
        assert r.meta["prosody"] == c.meta["prosody"] and r.transcript == c.transcript and r.meta["voice"] == c.meta["voice"]
        lo_hi = PROSODY_RANGES[r.label]
        p = r.meta["prosody"]
        assert lo_hi["pitch"][0] - 0.1 <= p["pitch"] <= lo_hi["pitch"][1] + 0.1
        assert lo_hi["rate"][0] - 0.1 <= p["rate"] <= lo_hi["rate"][1] + 0.1
        same = (corpus / r.audio).read_bytes() == (corpus_clean / c.audio).read_bytes()
        assert same == (r.meta["augment"] is None), rid
        augmented += r.meta["augment"] is not None
    assert 0.5 * len(rows) < augmented < len(rows)  # AUGMENT_SHARE = 0.8 of 32, some clean
    assert all("style" not in r.meta and "augment" not in r.meta for r in read_manifest(corpus_v1 / "manifest.jsonl"))
    # speakers: v1 keeps its fixed voices, v2 spreads over more voice+variant pairs, pitches, speeds
    v1, v2 = make_speakers(24, 0, "v1"), make_speakers(24, 0, "v2")
    assert [(s.voice, s.variant) for s in v1[:2]] == [("en-us", "m1"), ("en-gb", "f1")]
    assert len({(s.voice, s.variant) for s in v2}) > 20
    assert max(s.pitch for s in v2) - min(s.pitch for s in v2) > max(s.pitch for s in v1) - min(s.pitch for s in v1)
    assert len({s.tilt_db for s in v2}) > 12 and all(s.tilt_db == 0 for s in v1)
    # every v2 variant is one espeak-ng knows (a typo would fail at synthesis time only)
    import subprocess

    listed = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True).stdout
    files = {w.split("/", 1)[1] for line in listed.splitlines()[1:] for w in line.split() if w.startswith("!v/")}
    assert set(VARIANTS_V2) <= files, sorted(set(VARIANTS_V2) - files)  # -v VOICE+NAME looks up !v/NAME


def test_v3_is_v1_prosody_on_v2_voices(corpus_v1, tmp_path):
    from emoreason.data.synth import synth_corpus

    synth_corpus(tmp_path / "v3", n=8, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v3", tasks="emotion")
    v3 = read_manifest(tmp_path / "v3" / "manifest.jsonl")
    v1 = {r.id: r for r in read_manifest(corpus_v1 / "manifest.jsonl")}
    keys = ("pitch", "range", "rate", "gain_db", "pause_ms")
    for r in v3:
        old = v1[r.id]
        assert r.transcript == old.transcript and r.meta["style"] == "v3"
        assert {k: r.meta["prosody"][k] for k in keys} == {k: old.meta["prosody"][k] for k in keys}
    assert {r.meta["voice"] for r in v3} != {v1[r.id].meta["voice"] for r in v3}
    assert any(r.meta["augment"] for r in v3)


def test_v4_is_v1_with_every_third_speaker_spoken_by_flite(corpus_v4, corpus_v1):
    """v4's espeak-ng speakers are v1's (same voices, same prosody, the same wav bytes); speakers 2 and
    5 are flite voices with v1's prosody values."""
    from emoreason.data.synth import FLITE_VOICES, make_speakers

    v4 = make_speakers(12, 0, "v4")
    v1 = make_speakers(12, 0, "v1")
    assert [s.voice for s in v4 if s.voice.startswith("flite:")] == [f"flite:{n}" for n in sorted(FLITE_VOICES)]
    assert all(a == b for i, (a, b) in enumerate(zip(v4, v1)) if i % 3 != 2)
    old = {r.id: r for r in read_manifest(corpus_v1 / "manifest.jsonl")}
    flite = 0
    for r in read_manifest(corpus_v4 / "manifest.jsonl"):
        assert r.meta["style"] == "v4" and r.meta["augment"] is None
        if r.id not in old:
            continue
        keys = ("pitch", "range", "rate", "gain_db", "pause_ms")
        assert {k: r.meta["prosody"][k] for k in keys} == {k: old[r.id].meta["prosody"][k] for k in keys}
        if r.meta["voice"].startswith("flite:"):
            flite += 1
            assert r.speaker in ("synth/spk02", "synth/spk05")
        else:
            assert r.meta["voice"] == old[r.id].meta["voice"]
            assert (corpus_v4 / r.audio).read_bytes() == (corpus_v1 / old[r.id].audio).read_bytes()
    assert flite == 8 * 4  # 8 of the first 32 clips (spk02: 8-11, spk05: 20-23), 4 tasks each


def test_reuse_only_wavs_of_the_same_plan(corpus_v1, tmp_path):
    """A folder first written with v1 and then asked for v2 gets new audio, not stale v1 wavs;
    the v2 rerun reuses all; a lost plan stamp means redo (cheap), never keep unknown audio."""
    from emoreason.data.synth import PLAN_STAMP, synth_corpus

    d = tmp_path / "d"
    shutil.copytree(corpus_v1, d)
    first = synth_corpus(d, n=8, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v1")
    assert first.reused == 8  # the v1 fixture's wavs and stamps
    second = synth_corpus(d, n=8, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v2")
    assert second.synthesized == 8
    assert (d / "wavs" / "syn00000.wav").read_bytes() != (corpus_v1 / "wavs" / "syn00000.wav").read_bytes()
    assert synth_corpus(d, n=8, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v2").reused == 8
    (d / "wavs" / PLAN_STAMP).unlink()
    assert synth_corpus(d, n=8, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2, style="v2").synthesized == 8


def test_bad_arguments(tmp_path):
    from emoreason.data.synth import synth_corpus
    from emoreason.errors import UserError

    with pytest.raises(UserError, match="unknown emotion"):
        synth_corpus(tmp_path, n=2, emotions=("bored",))
    with pytest.raises(UserError, match="at least 3 speakers"):
        synth_corpus(tmp_path, n=2, n_speakers=2)
    with pytest.raises(UserError, match="not available"):
        synth_corpus(tmp_path, n=2, tasks="emotion,translation")
    with pytest.raises(UserError, match="unknown synth style"):
        synth_corpus(tmp_path, n=2, style="v9")


def test_v4_without_flite_is_one_line_naming_the_way_out(monkeypatch, tmp_path):
    from emoreason.data import synth
    from emoreason.errors import UserError

    real = shutil.which
    monkeypatch.setattr(synth.shutil, "which", lambda tool: None if tool == "flite" else real(tool))
    with pytest.raises(UserError, match=r"flite is not installed \(apt-get install flite\); or --style v1") as err:
        synth.synth_corpus(tmp_path / "c", n=4, n_speakers=3)
    assert "\n" not in str(err.value) and not (tmp_path / "c").exists()
    synth.synth_corpus(tmp_path / "v1", n=4, n_speakers=3, style="v1", tasks="emotion")  # v1 needs no flite
