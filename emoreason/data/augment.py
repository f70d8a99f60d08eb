"""Waveform augmentation for synthetic speech: noise, reverberation, band-limiting, codec-like
quantisation, gain and speed, with numpy / scipy only (no torchaudio).

Every function takes a mono float waveform ``wave`` (S,) at ``sr`` Hz and returns a new float32
array; none of them modifies its input. Randomness comes only from the ``numpy.random.Generator``
passed in, so :func:`augment` with :func:`rng_for` (a generator seeded from a string such as
``"seed:key"``) gives the same samples in every process.

Why these: a clean synthesiser is one recording condition; a probe trained on it learns the
condition as much as the emotion. Real corpora differ in room, microphone, channel, level and
speaking rate, so the synthetic training clips are spread over those axes instead.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE_RATE = 16000


def rng_for(*parts: object) -> np.random.Generator:
    """A generator seeded from the SHA-256 of ``parts`` joined by ':' (never Python's salted hash)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def power(wave: np.ndarray) -> float:
    """Mean square of ``wave`` (float64 accumulation)."""
    return float(np.mean(np.square(wave, dtype=np.float64))) if wave.size else 0.0


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) noise with a 1/f power spectrum (white noise shaped in the frequency domain), unit power."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spec / np.sqrt(f), n)
    return noise / np.sqrt(power(noise) + 1e-20)


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator, color: str = "white") -> np.ndarray:
    """``wave`` plus noise scaled so that 10 log10(P_signal / P_noise) = ``snr_db`` exactly.

    P is the mean square over the whole clip (silence included), so the SNR is a clip-level one.
    color: ``white`` or ``pink``. A silent clip is returned unchanged.
    """
    p = power(wave)
    if p == 0.0:
        return wave.astype(np.float32, copy=True)
    if color == "white":
        noise = rng.standard_normal(wave.size)
        noise /= np.sqrt(power(noise) + 1e-20)
    elif color == "pink":
        noise = pink_noise(wave.size, rng)
    else:
        raise ValueError(f"unknown noise color {color!r} (white, pink)")
    scale = np.sqrt(p / 10 ** (snr_db / 10))
    return (wave + scale * noise).astype(np.float32)


def room_impulse(rt60: float, sr: int, rng: np.random.Generator, direct_ratio_db: float = 0.0) -> np.ndarray:
    """A synthetic room impulse response: a unit direct path, then exponentially decaying noise.

    The tail decays by 60 dB in ``rt60`` seconds (amplitude exp(-6.91 t / rt60)) and starts 2.5 ms
    after the direct path (early reflections); its energy is ``direct_ratio_db`` below the direct
    path's. Returns (L,) with L = 2.5 ms + rt60 worth of samples.
    """
    delay = max(1, int(0.0025 * sr))
    n = max(1, int(rt60 * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / max(rt60, 1e-3))
    tail *= np.sqrt(10 ** (-direct_ratio_db / 10) / (power(tail) * n + 1e-20))
    rir = np.zeros(delay + n)
    rir[0] = 1.0
    rir[delay:] += tail
    return rir


def reverb(wave: np.ndarray, rt60: float, rng: np.random.Generator, sr: int = SAMPLE_RATE,
           direct_ratio_db: float = 0.0) -> np.ndarray:
    """``wave`` convolved with :func:`room_impulse`, cut to the input length, same RMS as the input."""
    from scipy.signal import fftconvolve

    wet = fftconvolve(wave.astype(np.float64), room_impulse(rt60, sr, rng, direct_ratio_db))[: wave.size]
    p_in, p_out = power(wave), power(wet)
    if p_out > 0:
        wet *= np.sqrt(p_in / p_out)
    return wet.astype(np.float32)


def band_limit(wave: np.ndarray, low_hz: float | None, high_hz: float | None, sr: int = SAMPLE_RATE,
               order: int = 6) -> np.ndarray:
    """Butterworth band-pass (or high- / low-pass when one edge is None), zero phase.

    E.g. (300, 3400) is the telephone band. Both None returns a copy.
    """
    from scipy.signal import butter, sosfiltfilt

    nyq = sr / 2
    if low_hz and high_hz:
        sos = butter(order, [low_hz / nyq, min(high_hz, 0.99 * nyq) / nyq], btype="bandpass", output="sos")
    elif high_hz:
        sos = butter(order, min(high_hz, 0.99 * nyq) / nyq, btype="lowpass", output="sos")
    elif low_hz:
        sos = butter(order, low_hz / nyq, btype="highpass", output="sos")
    else:
        return wave.astype(np.float32, copy=True)
    if wave.size <= 3 * 2 * sos.shape[0]:  # too short for filtfilt's edge padding
        return wave.astype(np.float32, copy=True)
    return sosfiltfilt(sos, wave.astype(np.float64)).astype(np.float32)


def mu_law(wave: np.ndarray, bits: int = 8, mu: float = 255.0) -> np.ndarray:
    """Codec-like quantisation: mu-law compress, round to ``bits`` bits, expand (G.711-like at 8 bits).

    Input is clipped to [-1, 1] first, as a codec would.
    """
    x = np.clip(wave.astype(np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    levels = 2 ** (bits - 1) - 1
    y = np.round(y * levels) / levels
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


def phone_channel(wave: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A narrow-band telephone channel: 8 kHz resampling, 300-3400 Hz, 8-bit mu-law, back to ``sr``."""
    from scipy.signal import resample_poly

    nb = resample_poly(wave.astype(np.float64), 8000, sr)
    nb = mu_law(band_limit(nb, 300, 3400, 8000), bits=8)
    return resample_poly(nb.astype(np.float64), sr, 8000)[: wave.size].astype(np.float32)


def gain(wave: np.ndarray, db: float) -> np.ndarray:
    """``wave`` times 10^(db / 20), clipped to [-1, 1] (a louder recording saturates, it does not wrap)."""
    return np.clip(wave * 10 ** (db / 20), -1.0, 1.0).astype(np.float32)


def speed(wave: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch together, like tape or sox ``speed``).

    Output length is round(S / factor). Uses polyphase resampling with a rational approximation of
    ``factor`` (denominator <= 100).
    """
    from fractions import Fraction

    from scipy.signal import resample_poly

    if factor <= 0:
        raise ValueError("speed factor must be positive")
    frac = Fraction(factor).limit_denominator(100)
    out = resample_poly(wave.astype(np.float64), frac.denominator, frac.numerator)
    return out.astype(np.float32)


@dataclass(frozen=True)
class AugmentSpec:
    """How likely each augmentation is and over which range its parameter is drawn (uniform).

    The defaults spread clips over the recording conditions of acted-emotion corpora (studio to
    phone, dry to a small reverberant room), never so hard that the prosody is masked.
    """

    p_noise: float = 0.5
    snr_db: tuple[float, float] = (10.0, 35.0)
    p_reverb: float = 0.4
    rt60: tuple[float, float] = (0.15, 0.6)
    drr_db: tuple[float, float] = (0.0, 10.0)
    p_band: float = 0.3
    low_hz: tuple[float, float] = (60.0, 300.0)
    high_hz: tuple[float, float] = (3400.0, 7500.0)
    p_phone: float = 0.1
    p_gain: float = 0.5
    gain_db: tuple[float, float] = (-6.0, 6.0)
    p_speed: float = 0.3
    speed: tuple[float, float] = (0.92, 1.08)


NO_AUGMENT = AugmentSpec(p_noise=0, p_reverb=0, p_band=0, p_phone=0, p_gain=0, p_speed=0)


def draw_chain(rng: np.random.Generator, spec: AugmentSpec = AugmentSpec()) -> dict[str, Any]:
    """Draw one augmentation chain: {step: parameter} of the steps that will run, plus ``seed`` for
    the noise and room samples. Every draw is made whether or not its step runs, so one step's coin
    never changes another step's parameters. JSON-serialisable (it goes into the manifest)."""
    u = rng.uniform(size=6)
    speed_f = rng.uniform(*spec.speed)
    rt60, drr = rng.uniform(*spec.rt60), rng.uniform(*spec.drr_db)
    low, high = rng.uniform(*spec.low_hz), rng.uniform(*spec.high_hz)
    snr = rng.uniform(*spec.snr_db)
    color = "pink" if rng.uniform() < 0.5 else "white"
    gain_db = rng.uniform(*spec.gain_db)
    chain: dict[str, Any] = {"seed": int(rng.integers(2**31))}
    if u[0] < spec.p_speed:
        chain["speed"] = round(float(speed_f), 3)
    if u[1] < spec.p_reverb:
        chain["reverb"] = [round(float(rt60), 3), round(float(drr), 1)]
    if u[2] < spec.p_phone:
        chain["phone"] = True
    elif u[3] < spec.p_band:
        chain["band"] = [round(float(low)), round(float(high))]
    if u[4] < spec.p_noise:
        chain["noise"] = [round(float(snr), 1), color]
    if u[5] < spec.p_gain:
        chain["gain"] = round(float(gain_db), 2)
    return chain


def apply_chain(wave: np.ndarray, chain: dict[str, Any], sr: int = SAMPLE_RATE) -> np.ndarray:
    """Run a :func:`draw_chain` chain in signal-path order: speed (talker) -> reverb (room) ->
    phone channel or band-limit (channel) -> noise (background) -> gain (level). (S,) -> (S',) float32
    in [-1, 1]; S' differs from S only with ``speed``."""
    rng = np.random.default_rng(chain.get("seed", 0))
    out = wave.astype(np.float32, copy=True)
    if "speed" in chain:
        out = speed(out, chain["speed"])
    if "reverb" in chain:
        out = reverb(out, chain["reverb"][0], rng, sr, chain["reverb"][1])
    if chain.get("phone"):
        out = phone_channel(out, sr)
    elif "band" in chain:
        out = band_limit(out, chain["band"][0], chain["band"][1], sr)
    if "noise" in chain:
        out = add_noise(out, chain["noise"][0], rng, chain["noise"][1])
    if "gain" in chain:
        out = gain(out, chain["gain"])
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def augment(wave: np.ndarray, rng: np.random.Generator, spec: AugmentSpec = AugmentSpec(),
            sr: int = SAMPLE_RATE) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw a chain from ``rng`` and apply it. Returns (augmented wave (S',) float32, the chain)."""
    chain = draw_chain(rng, spec)
    return apply_chain(wave, chain, sr), chain


__all__ = ["AugmentSpec", "NO_AUGMENT", "add_noise", "apply_chain", "augment", "draw_chain", "band_limit", "gain", "mu_law", "phone_channel",
           "pink_noise", "power", "reverb", "rng_for", "room_impulse", "speed"]
