"""The long-audio window length: recorded by training, taken by the engine (``window_seconds``,
``--window``), and the same windows wherever a file is cut (engine, ``/analyze``,
``/analyze/stream``)."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
import soundfile as sf

from emoreason.audio import SAMPLE_RATE, split_windows
from emoreason.errors import UserError
from emoreason.testing.fixtures import tone


def _speechlike(seconds: float = 13.0, seed: int = 0) -> np.ndarray:
    """Tone "utterances" of 1.2-2.5 s with 0.3-0.6 s silent gaps, ``seconds`` long."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    while sum(p.size for p in parts) < seconds * SAMPLE_RATE:
        parts += [tone(float(rng.uniform(1.2, 2.5)), float(rng.uniform(140, 260)), 0.3),
                  np.zeros(int(rng.uniform(0.3, 0.6) * SAMPLE_RATE), np.float32)]
    return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]


def _wav_bytes(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return buf.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory):
    from emoreason.testing.tiny import save_tiny_run

    return save_tiny_run(tmp_path_factory.mktemp("run"))


def test_engine_takes_the_recorded_window_and_an_override(run_dir, tmp_path):
    from emoreason.inference.engine import Engine

    assert Engine.load(run_dir, device="cpu").window_seconds == 30.0  # saved before a window was recorded
    config = run_dir / "final" / "processor_config.json"
    saved = json.loads(config.read_text())
    config.write_text(json.dumps({**saved, "window_seconds": 5.0}))
    try:
        engine = Engine.load(run_dir, device="cpu")
        assert engine.window_seconds == 5.0
        wave = _speechlike()
        [result] = engine.analyze([("a", wave)], max_new_tokens=0, transcript="none")
        spans = [(round(s, 3), round(e, 3)) for s, e, _ in split_windows(wave, 5.0)]
        assert [(s.start, s.end) for s in result.segments] == spans and len(spans) >= 3
        # asr and sqa hear 30 s windows: a transcript or an answer wants the whole clip at once
        assert engine.window_for("asr") == engine.window_for("sqa") == 30.0 == 6 * engine.window_for("sentiment")
        [asr] = engine.analyze([("a", wave)], task="asr", max_new_tokens=2, transcript="none")
        assert asr.segments == [] and asr.transcript is not None
        assert Engine.load(run_dir, device="cpu", window_seconds=30).analyze(
            [("a", wave)], max_new_tokens=0, transcript="none")[0].segments == []  # 13 s: one window
        config.write_text(json.dumps({**saved, "window_seconds": 45.0}))  # hand-edited: named, and --window still works
        with pytest.raises(UserError, match="processor_config.json window_seconds"):
            Engine.load(run_dir, device="cpu")
        assert Engine.load(run_dir, device="cpu", window_seconds=10).window_seconds == 10.0
    finally:
        config.write_text(json.dumps(saved))
    with pytest.raises(UserError, match="between 1 and 30 s"):
        Engine.load(run_dir, device="cpu", window_seconds=45)


def test_analyze_refuses_a_bad_window_before_loading(run_dir, tmp_path):
    clip = tmp_path / "a.wav"
    sf.write(clip, tone(1.0), SAMPLE_RATE)
    done = subprocess.run([sys.executable, "-m", "emoreason", "analyze", str(clip), "--model", str(run_dir), "--local",
                           "--window", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "window length must be between 1 and 30 s" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = subprocess.run([sys.executable, "-m", "emoreason", "analyze", str(clip), "--server", "http://127.0.0.1:9",
                           "--window", "5"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "--window is chosen when the server starts" in done.stderr


def test_server_cuts_where_the_engine_cuts(run_dir):
    from emoreason.inference.engine import Engine
    from emoreason.inference.server import create_app
    from emoreason.testing.server import serve_in_thread

    engine = Engine.load(run_dir, device="cpu", window_seconds=4)
    wave, short = _speechlike(11.0, seed=1), _speechlike(3.5, seed=2)
    spans = [[round(s, 3), round(e, 3)] for s, e, _ in split_windows(wave, 4.0)]
    with serve_in_thread(create_app(engine, max_new_tokens=0)) as url:
        r = httpx.post(f"{url}/analyze", files={"file": ("long.wav", _wav_bytes(wave), "audio/wav")}, timeout=120)
        assert r.status_code == 200, r.text
        assert [[s["start"], s["end"]] for s in r.json()["segments"]] == spans
        r = httpx.post(f"{url}/analyze", files={"file": ("long.wav", _wav_bytes(wave), "audio/wav")},
                       data={"task": "asr", "max_new_tokens": "2"}, timeout=120)
        assert r.status_code == 200 and r.json()["segments"] == []  # asr: one 30 s window
        r = httpx.post(f"{url}/analyze", files={"file": ("short.wav", _wav_bytes(short), "audio/wav")}, timeout=120)
        assert r.status_code == 200 and r.json()["segments"] == []
        r = httpx.post(f"{url}/analyze/stream", files={"file": ("long.wav", _wav_bytes(wave), "audio/wav")}, timeout=120)
        events = [json.loads(line) for line in r.text.splitlines()]
        assert events[0]["event"] == "start" and events[0]["windows"] == len(spans) and events[0]["spans"] == spans
        assert [[e["start"], e["end"]] for e in events if e["event"] == "window"] == spans
