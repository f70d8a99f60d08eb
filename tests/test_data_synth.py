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
    from emoreason.data.synth import synth_corpus

    out = tmp_path_factory.mktemp("synth") / "a"
    synth_corpus(out, n=32, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2)
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
    synth_corpus(b, n=8, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2)
    # utterance j depends on (seed, j) only: the first 8 of the 32-utterance corpus are identical
    for wav in sorted((b / "wavs").glob("*.wav")):
        assert wav.read_bytes() == (corpus / "wavs" / wav.name).read_bytes(), wav.name
    first8 = [line for line in (corpus / "manifest.jsonl").read_text().splitlines()][: 8 * 4]
    assert (b / "manifest.jsonl").read_text().splitlines() == first8
    # rerun: nothing is synthesized again, output unchanged
    mtimes = {p.name: p.stat().st_mtime_ns for p in (b / "wavs").glob("*.wav")}
    s = synth_corpus(b, n=8, seed=0, emotions=EMOTIONS, n_speakers=6, workers=2)
    assert s.synthesized == 0 and s.reused == 8
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in (b / "wavs").glob("*.wav")}
    assert "ms/utt" in synth_corpus(tmp_path / "c", n=2, seed=1, emotions=EMOTIONS, n_speakers=6).text()
    other = json.loads((tmp_path / "c" / "manifest.jsonl").read_text().splitlines()[0])
    assert other["meta"]["prosody"] != json.loads(first8[0])["meta"]["prosody"]  # another seed, another corpus


def test_prosody_is_audible(corpus):
    """Measured on the audio: angry louder than sad, sad slower and lower and flatter than happy."""
    stats = defaultdict(list)
    for r in read_manifest(corpus / "manifest.jsonl"):
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


def test_bad_arguments(tmp_path):
    from emoreason.data.synth import synth_corpus
    from emoreason.errors import UserError

    with pytest.raises(UserError, match="unknown emotion"):
        synth_corpus(tmp_path, n=2, emotions=("bored",))
    with pytest.raises(UserError, match="at least 3 speakers"):
        synth_corpus(tmp_path, n=2, n_speakers=2)
    with pytest.raises(UserError, match="not available"):
        synth_corpus(tmp_path, n=2, tasks="emotion,translation")
