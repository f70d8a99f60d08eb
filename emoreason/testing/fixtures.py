"""Tiny teach fixtures for tests and demos: a manifest of emotion, sentiment and ASR rows.

Audio comes from espeak-ng when it is installed (real speech, so cues are meaningful), otherwise
from a synthetic voiced tone; either way the files are real 16 kHz wavs the audio loader accepts.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from emoreason.audio import SAMPLE_RATE, save_audio

# (id, transcript, label, task, speaker)
DEFAULT_ROWS: list[tuple[str, str, str | None, str, str]] = [
    ("fx-angry", "I told you to stop touching my things! Why do you never listen?", "angry", "emotion", "spk1"),
    ("fx-happy", "This is the best day of my life, we actually won!", "happy", "emotion", "spk1"),
    ("fx-sad", "I miss her so much, nothing feels right anymore.", "sad", "emotion", "spk1"),
    ("fx-neutral", "The meeting is at three in the afternoon.", "neutral", "emotion", "spk1"),
    ("fx-frustrated", "I have asked three times and the form still does not work.", "frustrated", "emotion", "spk2"),
    ("fx-negative", "Well, that was a total waste of money.", "negative", "sentiment", "spk2"),
    ("fx-positive", "Thank you, the food was wonderful.", "positive", "sentiment", "spk2"),
    ("fx-asr", "Please write down what I say.", None, "asr", "spk2"),
]


def tone(seconds: float = 1.0, f0: float = 150.0, amplitude: float = 0.3, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A voiced-like test signal (fundamental + 2 harmonics), float32 (T,)."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
    return (amplitude * x / np.abs(x).max()).astype(np.float32)


def speak(text: str, path: str | Path, pitch: int = 50, speed: int = 175) -> Path:
    """espeak-ng ``text`` into ``path`` (wav); a tone when espeak-ng is missing."""
    path = Path(path)
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-p", str(pitch), "-s", str(speed), "-w", str(path), text], check=True, capture_output=True)
    else:
        save_audio(path, tone(0.08 * len(text.split()) + 0.5, 80 + pitch * 2))
    return path


def make_manifest(directory: str | Path, rows: list[tuple] | None = None, audio: bool = True) -> Path:
    """Write ``manifest.jsonl`` (+ wavs) into ``directory``; returns the manifest path.

    ``audio=False`` points every row at one short tone (fast: for tests that never read audio)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = DEFAULT_ROWS if rows is None else rows
    if not audio:
        save_audio(directory / "tone.wav", tone(0.5))
    with (directory / "manifest.jsonl").open("w", encoding="utf-8") as f:
        for i, (rid, text, label, task, speaker) in enumerate(rows):
            name = f"{rid}.wav" if audio else "tone.wav"
            if audio:
                speak(text, directory / name, pitch=35 + (i * 7) % 40)
            row = {"id": rid, "audio": name, "task": task, "transcript": text, "split": "train", "speaker": speaker, "source": "fixture"}
            if label:
                row["label"] = label
            f.write(json.dumps(row) + "\n")
    return directory / "manifest.jsonl"
