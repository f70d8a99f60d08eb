"""Example clips the page offers to try: spoken by espeak-ng with the synthetic corpus's prosody.

Nothing is packaged (the wheel stays small): the clips are synthesised on the first request for
them (espeak-ng + sox, ``emoreason.data.synth.synthesize``, about a second in all), kept in memory,
and served as 16 kHz WAV. The sentences are ours, written for this page. Without espeak-ng or sox
the list is empty and says why. ``long`` strings the short clips together with pauses to 65 s,
several windows at any window length, to show long audio arriving window by window.
"""
from __future__ import annotations

import io
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoreason.audio import SAMPLE_RATE, load_audio

# name -> (emotion whose prosody is used, sentence); the sentences carry the emotion in words too.
EXAMPLES: dict[str, tuple[str, str]] = {
    "angry": ("angry", "I told you three times already, and you still did not fix it!"),
    "sad": ("sad", "I waited all evening, but nobody came to see me."),
    "happy": ("happy", "We won the match, I can hardly believe how great this feels!"),
    "neutral": ("neutral", "The train to the airport leaves at half past nine."),
}
LONG_SECONDS = 65.0
"""The ``long`` example's length: more than two windows even at the longest window (30 s)."""


@dataclass
class ExampleClip:
    name: str
    emotion: str | None
    text: str
    wav: bytes
    duration: float


class ExampleBank:
    """The example clips, synthesised once on first use (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clips: dict[str, ExampleClip] | None = None
        self.unavailable: str | None = None

    def clips(self) -> dict[str, ExampleClip]:
        with self._lock:
            if self._clips is None:
                missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
                if missing:
                    self._clips, self.unavailable = {}, f"{' and '.join(missing)} not installed: no example clips"
                else:
                    self._clips = _synthesise()
            return self._clips


def _wav_bytes(wave: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _synthesise() -> dict[str, ExampleClip]:
    from emoreason.data.synth import PROSODY, Speaker, Utterance, synthesize

    speaker = Speaker(id="page", voice="en-us", variant="m3", pitch=45, speed=165)
    clips: dict[str, ExampleClip] = {}
    waves = []
    with tempfile.TemporaryDirectory(prefix="emoreason-examples-") as tmp:
        for name, (emotion, text) in EXAMPLES.items():
            p = PROSODY[emotion]
            u = Utterance(key=name, emotion=emotion, wording=emotion, text=text, question="", answer="", speaker=speaker,
                          pitch=p.pitch, range=p.range, rate=p.rate, gain_db=p.gain_db, pause_ms=p.pause_ms, tremolo=p.tremolo)
            path = Path(tmp) / f"{name}.wav"
            synthesize(u, path)
            wave = load_audio(path)
            waves.append(wave)
            clips[name] = ExampleClip(name, emotion, text, path.read_bytes(), round(wave.size / SAMPLE_RATE, 2))
    gap = np.zeros(int(0.6 * SAMPLE_RATE), dtype=np.float32)
    pieces, total, i = [], 0, 0
    while total < LONG_SECONDS * SAMPLE_RATE:
        piece = np.concatenate([waves[i % len(waves)], gap])
        pieces.append(piece)
        total += piece.size
        i += 1
    long = np.concatenate(pieces)[: int(LONG_SECONDS * SAMPLE_RATE)]
    text = " ".join(EXAMPLES[n][1] for n in list(EXAMPLES) * (i // len(EXAMPLES) + 1))[:200] + " ..."
    clips["long"] = ExampleClip("long", None, text, _wav_bytes(long), LONG_SECONDS)
    return clips
