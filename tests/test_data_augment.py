"""Waveform augmentation: shapes, determinism by seed, exact SNR, filters that filter, codecs that quantise."""
from __future__ import annotations

import json

import numpy as np
import pytest

from emoreason.data import augment as A

SR = 16000


def tone(freq: float, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speechlike(seed: int = 0) -> np.ndarray:
    """Two tones with a syllable-rate envelope and a silent gap: (24000,) float32."""
    w = tone(180, 1.5) + tone(900, 1.5, 0.1)
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * np.arange(w.size) / SR))
    w = w * env
    w[8000:10000] = 0
    return (w + 1e-3 * np.random.default_rng(seed).standard_normal(w.size)).astype(np.float32)


def level_db(wave: np.ndarray, freq: float) -> float:
    """Magnitude (dB) of the FFT bin nearest ``freq``."""
    spec = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(20 * np.log10(spec[int(round(freq * wave.size / SR))] + 1e-12))


@pytest.mark.parametrize("snr", [0.0, 10.0, 27.5])
@pytest.mark.parametrize("color", ["white", "pink"])
def test_noise_has_the_asked_snr(snr, color):
    w = speechlike()
    out = A.add_noise(w, snr, np.random.default_rng(1), color)
    assert out.shape == w.shape and out.dtype == np.float32
    noise = out.astype(np.float64) - w
    measured = 10 * np.log10(A.power(w) / A.power(noise))
    assert measured == pytest.approx(snr, abs=0.05)  # float32 rounding of the sum only
    assert np.array_equal(out, A.add_noise(w, snr, np.random.default_rng(1), color))
    assert not np.array_equal(out, A.add_noise(w, snr, np.random.default_rng(2), color))


def test_pink_noise_falls_with_frequency():
    n = A.pink_noise(SR * 4, np.random.default_rng(0))
    spec = np.abs(np.fft.rfft(n)) ** 2
    f = np.fft.rfftfreq(n.size, 1 / SR)
    low, high = spec[(f > 100) & (f < 200)].mean(), spec[(f > 3200) & (f < 6400)].mean()
    assert 10 * np.log10(low / high) > 10  # ~3 dB per octave over 4.5 octaves
    assert A.power(n) == pytest.approx(1.0, rel=1e-6)


def test_silence_stays_silent():
    z = np.zeros(1600, dtype=np.float32)
    assert np.array_equal(A.add_noise(z, 10, np.random.default_rng(0)), z)


def test_band_limit_passes_the_band_and_cuts_outside():
    w = tone(100, amp=0.2) + tone(1000, amp=0.2) + tone(6000, amp=0.2)
    out = A.band_limit(w, 300, 3400)
    assert out.shape == w.shape and out.dtype == np.float32
    assert abs(level_db(out, 1000) - level_db(w, 1000)) < 0.5
    assert level_db(w, 100) - level_db(out, 100) > 30
    assert level_db(w, 6000) - level_db(out, 6000) > 30
    low_only = A.band_limit(w, None, 3400)
    assert level_db(w, 6000) - level_db(low_only, 6000) > 30 and abs(level_db(low_only, 100) - level_db(w, 100)) < 0.5


def test_reverb_keeps_length_and_level_and_adds_a_tail():
    w = np.zeros(SR, dtype=np.float32)
    w[1000:1400] = tone(500, 400 / SR)
    out = A.reverb(w, 0.5, np.random.default_rng(0))
    assert out.shape == w.shape and out.dtype == np.float32
    assert A.power(out) == pytest.approx(A.power(w), rel=1e-4)
    assert A.power(out[3000:6000]) > 1e-4 * A.power(w[1000:1400])  # energy after the burst ended
    assert np.array_equal(out, A.reverb(w, 0.5, np.random.default_rng(0)))
    rir = A.room_impulse(0.3, SR, np.random.default_rng(0))
    tail = rir[int(0.0025 * SR):]
    # exponential decay: the last 10 % of the tail is ~50 dB below the first 10 %
    k = tail.size // 10
    assert 10 * np.log10(A.power(tail[:k]) / A.power(tail[-k:])) > 40


def test_mu_law_quantises_to_the_asked_levels():
    w = np.linspace(-1, 1, 20001, dtype=np.float32)
    out = A.mu_law(w, bits=8)
    assert len(np.unique(out)) <= 2**8 - 1  # symmetric codebook: 2 * 127 + 1 levels
    assert len(np.unique(A.mu_law(w, bits=4))) <= 2**4 - 1
    speech = speechlike()
    err = A.mu_law(speech) - speech
    assert 10 * np.log10(A.power(speech) / A.power(err)) > 25  # G.711-like quality on speech levels
    phone = A.phone_channel(speech)
    assert phone.shape == speech.shape and level_db(tone(6000), 6000) - level_db(A.phone_channel(tone(6000)), 6000) > 30


def test_gain_and_clipping():
    w = tone(440, amp=0.1)
    assert np.max(np.abs(A.gain(w, 6.0))) == pytest.approx(0.1 * 10 ** (6 / 20), rel=1e-3)
    assert np.max(np.abs(A.gain(w, 40.0))) == pytest.approx(1.0)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_length_and_pitch_together(factor):
    w = tone(440, 1.0)
    out = A.speed(w, factor)
    assert abs(out.size - round(w.size / factor)) <= 1
    spec = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    peak = np.argmax(spec) * SR / out.size
    assert peak == pytest.approx(440 * factor, rel=0.01)
    with pytest.raises(ValueError):
        A.speed(w, 0)


def test_chains_are_deterministic_by_seed_and_json():
    w = speechlike()
    chains = [A.draw_chain(A.rng_for(0, j, "augment")) for j in range(200)]
    assert chains == [A.draw_chain(A.rng_for(0, j, "augment")) for j in range(200)]
    assert chains != [A.draw_chain(A.rng_for(1, j, "augment")) for j in range(200)]
    json.dumps(chains)
    # every step occurs, and its share is near its probability (binomial, n=200)
    spec = A.AugmentSpec()
    share = {k: sum(k in c for c in chains) / len(chains) for k in ("speed", "reverb", "phone", "band", "noise", "gain")}
    assert abs(share["noise"] - spec.p_noise) < 0.15 and abs(share["reverb"] - spec.p_reverb) < 0.15
    assert all(v > 0 for v in share.values())
    full = {"seed": 3, "speed": 1.05, "reverb": [0.3, 5.0], "band": [200, 5000], "noise": [20.0, "pink"], "gain": -3.0}
    a, b = A.apply_chain(w, full), A.apply_chain(w, full)
    assert np.array_equal(a, b) and a.dtype == np.float32 and abs(a.size - round(w.size / 1.05)) <= 1
    assert np.max(np.abs(a)) <= 1.0
    assert np.array_equal(A.apply_chain(w, {"seed": 0}), w)  # an empty chain is the identity
    out, chain = A.augment(w, A.rng_for("x"))
    assert np.array_equal(out, A.apply_chain(w, chain))
    assert np.array_equal(A.apply_chain(w, A.draw_chain(A.rng_for(0), A.NO_AUGMENT)), w)
