"""What the web page asks the server for: ``/analyze/stream`` (NDJSON per window), the opt-in
``curves`` field, ``/examples``; a real uvicorn server with the tiny model, called with httpx.
(The page itself, in a real browser: tests/test_page_browser.py.)"""
from __future__ import annotations

import io
import json
import shutil
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from emoreason.inference.server.curves import MAX_POINTS, clip_curves
from emoreason.labels import label_sentence

SR = 16_000


def _wave(seconds: float) -> np.ndarray:
    """A 220 Hz tone with a silent second in the middle (unvoiced bins must come back as null)."""
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * 220 * t)
    mid = int(seconds * SR / 2)
    wave[mid : mid + SR] = 0.0
    return wave.astype(np.float32)


def _wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _wave(seconds), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_clip_curves_are_bounded_and_measure_the_signal():
    c = clip_curves(_wave(4.0), points=100)
    assert c["points"] == 100 == len(c["peak"]) == len(c["loudness_dbfs"]) == len(c["pitch_hz"])
    assert c["step_s"] == pytest.approx(0.04, abs=1e-3)
    voiced = [p for p in c["pitch_hz"] if p is not None]
    assert voiced and all(abs(p - 220) < 3 for p in voiced)
    silent = c["pitch_hz"][50:70]  # 2.0-2.8 s lies in the silent second
    assert all(p is None for p in silent) and max(c["peak"][50:70]) == 0.0
    assert max(c["peak"]) == pytest.approx(0.3, abs=0.01)
    assert max(c["loudness_dbfs"]) == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.5)
    assert clip_curves(_wave(4.0), points=10_000)["points"] == MAX_POINTS  # clamped
    assert clip_curves(_wave(0.2), points=300)["points"] == 20  # never more bins than 10 ms frames


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory):
    from emoreason.testing.server import serve_tiny_run

    with serve_tiny_run(tmp_path_factory.mktemp("run"), max_new_tokens=4, batch_size=2) as url:
        yield url


def _stream(base_url: str, data: bytes, **fields: str) -> list[dict]:
    events = []
    with httpx.stream("POST", f"{base_url}/analyze/stream", files={"file": ("long.wav", data, "audio/wav")}, data=fields,
                      timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        for line in r.iter_lines():
            if line.strip():
                events.append({**json.loads(line), "_t": time.monotonic()})
    return events


def test_stream_sends_each_window_then_the_summary_the_engine_would_give(base_url):
    data = _wav(65.0)
    events = _stream(base_url, data, task="emotion", curves="120")
    assert [e["event"] for e in events] == ["start", "window", "window", "window", "result"]  # no text events
    start = events[0]
    assert start["duration"] == 65.0 and start["windows"] == 3 and start["curves"]["points"] == 120
    assert [(e["index"], e["start"], e["end"]) for e in events[1:4]] == [(0, 0.0, 30.0), (1, 30.0, 60.0), (2, 60.0, 65.0)]
    streamed = events[-1]["result"]
    # The same clip through /analyze (the engine's own long-clip summary, all windows in one call).
    whole = httpx.post(f"{base_url}/analyze", files={"file": ("long.wav", data, "audio/wav")}, data={"task": "emotion"},
                       timeout=120).json()
    assert "curves" not in whole  # opt-in only
    assert streamed["label"] == whole["label"] and streamed["duration"] == whole["duration"] == 65.0
    assert streamed["scores"] == pytest.approx(whole["scores"], abs=1e-4)
    assert sum(streamed["scores"].values()) == pytest.approx(1.0)
    assert [(s["start"], s["end"], s["label"]) for s in streamed["segments"]] == \
        [(s["start"], s["end"], s["label"]) for s in whole["segments"]]
    for key in ("duration_s", "speech_s", "f0_median_hz", "loudness_dbfs", "pause_count"):
        assert streamed["cues"][key] == whole["cues"][key], key
    assert streamed["transcript"]["source"] == whole["transcript"]["source"] == "model-asr"
    assert [e["segment"]["label"] for e in events[1:4]] == [s["label"] for s in streamed["segments"]]


def test_stream_of_a_short_clip_is_one_window_without_segments(base_url):
    events = _stream(base_url, _wav(3.0), task="sentiment")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-2:] == ["window", "result"] and set(kinds[1:-2]) == {"text"}
    assert events[0]["curves"] is None  # not asked for
    result = events[-1]["result"]
    # the explanation streamed as it was generated: the forced label sentence first, growing
    texts = [e["text"] for e in events if e["event"] == "text"]
    assert texts[0].startswith(label_sentence("sentiment", result["label"])) and result["explanation"].startswith(texts[0])
    assert all(len(a) <= len(b) for a, b in zip(texts, texts[1:]))
    assert result["segments"] == [] and result["label"] in ["positive", "negative", "neutral"] and result["task"] == "sentiment"
    assert all(q["start"] is None for q in result["quotes"])


def test_bad_requests_get_a_json_error_before_any_stream(base_url):
    r = httpx.post(f"{base_url}/analyze/stream", files={"file": ("bad.wav", b"not audio at all", "audio/wav")}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_audio" and "bad.wav" in r.json()["error"]["message"]
    r = httpx.post(f"{base_url}/analyze/stream", files={"file": ("a.wav", _wav(1.0), "audio/wav")}, data={"task": "dance"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "task"
    r = httpx.post(f"{base_url}/analyze", files={"file": ("a.wav", _wav(1.0), "audio/wav")}, data={"curves": "401"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "curves"


def test_analyze_adds_curves_when_asked(base_url):
    r = httpx.post(f"{base_url}/analyze", files={"file": ("a.wav", _wav(3.0), "audio/wav")}, data={"curves": "50"}, timeout=60)
    assert r.status_code == 200
    c = r.json()["curves"]
    assert c["points"] == 50 and len(c["pitch_hz"]) == 50 and c["step_s"] == pytest.approx(0.06, abs=1e-3)


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="espeak-ng / sox not installed")
def test_examples_are_spoken_clips(base_url):
    listing = httpx.get(f"{base_url}/examples", timeout=60).json()
    names = [x["name"] for x in listing["examples"]]
    assert names == ["angry", "sad", "happy", "neutral", "long"] and listing["unavailable"] is None
    for x in listing["examples"]:
        wav = httpx.get(f"{base_url}/{x['url']}")
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        wave, sr = sf.read(io.BytesIO(wav.content))
        assert sr == SR and wave.size / SR == pytest.approx(x["duration"], abs=0.01) and np.abs(wave).max() > 0.05
    assert listing["examples"][-1]["duration"] == 65.0
    assert httpx.get(f"{base_url}/examples/nope.wav").status_code == 404
