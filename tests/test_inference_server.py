"""``emoreason serve``: a real uvicorn server on a free 127.0.0.1 port, called with httpx."""
from __future__ import annotations

import io
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf


SR = 16_000


def _wav(seconds: float, sr: int = SR, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, np.stack([wave] * channels, 1) if channels > 1 else wave, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory):
    from emoreason.testing.server import serve_tiny_run

    with serve_tiny_run(tmp_path_factory.mktemp("run"), 20, max_new_tokens=4, max_upload_bytes=20 * 1024 * 1024) as url:
        yield url


def test_health(base_url):
    r = httpx.get(f"{base_url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["tasks"]["sentiment"] == ["positive", "negative", "neutral"] and "angry" in body["tasks"]["emotion"]
    assert body["tasks"]["asr"] == [] and body["tasks"]["sqa"] == []  # text tasks: no candidate labels
    assert body["whisper_transcript"] is None  # the tiny random encoder has no Whisper decoder, none was chosen
    assert body["decode_compile"] == "off"  # a CPU: the dynamic cache


def test_index_page_is_self_contained(base_url):
    r = httpx.get(f"{base_url}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<script src="static/page.js">' in html and '<link rel="stylesheet" href="static/page.css">' in html
    js, css = httpx.get(f"{base_url}/static/page.js"), httpx.get(f"{base_url}/static/page.css")
    assert js.status_code == css.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert 'fetch("analyze/stream"' in js.text and "getUserMedia" in js.text and "MediaRecorder" in js.text
    for text in (html, js.text, css.text):
        assert "http://" not in text and "https://" not in text  # no CDN, works offline
    assert httpx.get(f"{base_url}/static/app.py").status_code == 404  # only the page's own files


def test_analyze_upload(base_url):
    files = {"file": ("stereo.wav", _wav(2.0, sr=22_050, channels=2), "audio/wav")}
    r = httpx.post(f"{base_url}/analyze", files=files, data={"task": "sentiment"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["file"] == "stereo.wav" and body["task"] == "sentiment" and body["duration"] == 2.0
    assert body["label"] in ["positive", "negative", "neutral"]
    assert sum(body["scores"].values()) == pytest.approx(1.0)
    assert isinstance(body["explanation"], str) and isinstance(body["quotes"], list) and body["segments"] == []


def test_sqa_and_asr_uploads(base_url):
    files = {"file": ("clip.wav", _wav(1.5), "audio/wav")}
    r = httpx.post(f"{base_url}/analyze", files=files, data={"task": "sqa", "question": "Who is speaking?"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "sqa" and body["question"] == "Who is speaking?" and isinstance(body["answer"], str)
    assert body["label"] is None and body["transcript"]["source"] == "model-asr"
    r = httpx.post(f"{base_url}/analyze", files=files, data={"task": "asr"}, timeout=60)
    assert r.status_code == 200 and isinstance(r.json()["transcript"]["text"], str) and r.json()["answer"] is None
    r = httpx.post(f"{base_url}/analyze", files=files, data={"transcript": "none"}, timeout=60)
    assert r.status_code == 200 and r.json()["transcript"] is None and r.json()["label"] in r.json()["scores"]


def test_analyze_cli_through_the_server_passes_task_and_question(base_url, tmp_path, capsys):
    import json

    from emoreason.cli import main

    clip = tmp_path / "clip.wav"
    clip.write_bytes(_wav(1.0))
    assert main(["analyze", "--server", base_url, str(clip), "--json", "--task", "sqa", "--question", "Why?",
                 "--transcript", "none"]) == 0
    [row] = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert row["file"] == str(clip) and row["question"] == "Why?" and isinstance(row["answer"], str)
    assert row["transcript"] is None


def test_analyze_long_upload_has_segments(base_url):
    files = {"file": ("long.wav", _wav(62.0), "audio/wav")}
    r = httpx.post(f"{base_url}/analyze", files=files, data={"max_new_tokens": "0"}, timeout=120)
    assert r.status_code == 200, r.text
    segs = r.json()["segments"]
    assert [(s["start"], s["end"]) for s in segs] == [(0.0, 30.0), (30.0, 60.0), (60.0, 62.0)]


@pytest.mark.parametrize("name,payload,data,fragment", [
    ("junk.wav", b"definitely not audio" * 20, {}, "junk.wav: not a readable audio file"),
    ("empty.wav", b"", {}, "empty"),
    ("nan.wav", None, {}, "NaN"),
    ("ok.wav", _wav(0.5), {"task": "valence"}, "unknown task"),
    ("huge.wav", _wav(121.0), {}, "over the"),
    ("ok.wav", _wav(0.5), {"task": "sqa"}, "needs a question"),
    ("ok.wav", _wav(0.5), {"task": "sqa", "question": "why? " * 401}, "at most 2000"),
    ("ok.wav", _wav(0.5), {"task": "emotion", "question": "why?"}, "only asked with task sqa"),
    ("ok.wav", _wav(0.5), {"transcript": "spoken"}, "unknown transcript setting"),
    ("ok.wav", _wav(0.5), {"transcript": "whisper"}, "transcript 'whisper' needs a speech encoder"),  # the tiny model has no decoder
    ("ok.wav", _wav(0.5), {"explain": "loose"}, "unknown explain setting"),
    ("ok.wav", _wav(0.5), {"quote_min_probability": "1.5"}, "quote_min_probability must be in [0, 1]"),
])
def test_bad_uploads_are_400_with_one_line(base_url, name, payload, data, fragment):
    if payload is None:
        buf = io.BytesIO()
        sf.write(buf, np.full(SR, np.nan, dtype=np.float32), SR, format="WAV", subtype="FLOAT")
        payload = buf.getvalue()
    r = httpx.post(f"{base_url}/analyze", files={"file": (name, payload, "audio/wav")}, data=data, timeout=60)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and set(error) == {"message", "type", "param", "code"}
    message = error["message"]
    assert fragment in message and "\n" not in message
    assert "BytesIO" not in message and "<bytes>" not in message  # names the upload, not a buffer
    assert httpx.get(f"{base_url}/health").status_code == 200  # still serving


def test_missing_file_field_is_422(base_url):
    r = httpx.post(f"{base_url}/analyze", data={"task": "emotion"})
    assert r.status_code == 422
    error = r.json()["error"]  # OpenAI's shape, not FastAPI's {"detail": [...]}
    assert error["param"] == "file" and error["message"].startswith("file: ") and error["type"] == "invalid_request_error"


def test_analyze_cli_through_the_server(base_url, tmp_path, capsys):
    """`emoreason analyze --server URL`: the same JSON as the engine, bad files as one line each."""
    import json

    from emoreason.cli import main

    good, junk = tmp_path / "good.wav", tmp_path / "junk.wav"
    good.write_bytes(_wav(1.5))
    junk.write_bytes(b"RIFF not a wave" * 3)
    out = tmp_path / "results.jsonl"
    code = main(["analyze", "--server", base_url, str(good), str(junk), str(tmp_path / "missing.wav"),
                 "--json", "--max-new-tokens", "4", "--out", str(out), "--prompt", "How does the speaker feel?"])
    assert code == 1
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == [str(good), str(junk), str(tmp_path / "missing.wav")]
    assert rows[0]["label"] in rows[0]["scores"] and sum(rows[0]["scores"].values()) == pytest.approx(1.0)
    assert rows[1]["error"].startswith(str(junk)) and "\n" not in rows[1]["error"]
    assert "no such file" in rows[2]["error"]
    direct = httpx.post(f"{base_url}/analyze", files={"file": ("good.wav", good.read_bytes())},
                        data={"max_new_tokens": "4", "prompt": "How does the speaker feel?"}).json()
    assert rows[0]["scores"] == pytest.approx(direct["scores"]) and rows[0]["explanation"] == direct["explanation"]
    # resumable: the finished file is skipped, only the failed ones are tried again
    assert main(["analyze", "--server", base_url, str(good), "--json", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3


def test_analyze_cli_with_a_dead_server_says_so_in_one_line(tmp_path, capsys):
    from emoreason.cli import main

    clip = tmp_path / "clip.wav"
    clip.write_bytes(_wav(1.0))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["analyze", "--server", f"http://127.0.0.1:{port}", str(clip)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the emoreason server" in err[0] and "emoreason serve" in err[0]
