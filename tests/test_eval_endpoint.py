"""`eval run --endpoint`: an outside audio LLM behind a local fake OpenAI-compatible server that
decodes the `input_audio` parts. Checks the request shape, that each clip arrives as a 16 kHz mono
wav of the row's audio, asr + emotion rows scored end to end, a retried 500, resume after a
misbehaving reply, an empty reply kept as an empty prediction, and a dead port."""
import json

import numpy as np
import pytest
import soundfile as sf

from emoreason.audio import load_audio, save_audio
from emoreason.cli import main
from emoreason.errors import UserError
from emoreason.eval.endpoint import endpoint_predictions, wav_base64
from emoreason.testing.fakeserver import FakeTeacherServer, decode_wav
from emoreason.testing.fixtures import tone

# (id, task, label, transcript, instruction, the fake model's reply)
ROWS = [
    ("a1", "asr", None, "turn the lights off", "Transcribe clip one.", "turn the lights off"),
    ("a2", "asr", None, "see you tomorrow morning", "Transcribe clip two.", "see you tomorrow evening"),
    ("e1", "emotion", "angry", "I hate this", "What emotion does clip three carry?",
     'The speaker sounds angry. They say "I hate this".'),
    ("e2", "emotion", "happy", "what a lovely day", "What emotion does clip four carry?", "The speaker is sad."),
]
REPLIES = {instruction: reply for *_, instruction, reply in ROWS}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("endpoint")
    lines = []
    for i, (rid, task, label, transcript, instruction, _) in enumerate(ROWS):
        wave = tone(0.4 + 0.1 * i, f0=120.0 + 40 * i)
        if rid == "a2":  # a 44.1 kHz stereo file: the endpoint must still get 16 kHz mono
            t = np.arange(int(0.5 * 44100)) / 44100
            sf.write(root / f"{rid}.wav", np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 300 * t)], 1) * 0.3,
                     44100)
        else:
            save_audio(root / f"{rid}.wav", wave)
        row = {"id": rid, "audio": f"{rid}.wav", "task": task, "transcript": transcript, "instruction": instruction,
               "split": "test", "source": "fixture"}
        if label:
            row["label"] = label
        lines.append(json.dumps(row) + "\n")
    (root / "manifest.jsonl").write_text("".join(lines))
    return root / "manifest.jsonl"


class Listener:
    """The fake model: replies per instruction and keeps the clip each instruction came with."""

    def __init__(self):
        self.clips = {}

    def __call__(self, prompt: str, sr: int, wave: np.ndarray) -> str:
        self.clips[prompt] = (sr, wave)
        return REPLIES[prompt]


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_fake_accepts_only_base64_wav(manifest):
    sr, wave = decode_wav({"data": wav_base64(manifest.parent / "a2.wav"), "format": "wav"})
    assert sr == 16000 and wave.shape == (8000,)  # 0.5 s of 44.1 kHz stereo -> 16 kHz mono
    for bad, why in [({"data": "bm90IGEgd2F2", "format": "wav"}, "not base64 of a wav"),
                     ({"data": "%%%", "format": "wav"}, "not base64 of a wav"),
                     ({"data": wav_base64(manifest.parent / "a1.wav"), "format": "mp3"}, "is not 'wav'")]:
        with pytest.raises(ValueError, match=why):
            decode_wav(bad)


def test_asr_and_emotion_rows_scored_end_to_end(manifest, tmp_path):
    listener = Listener()
    out = tmp_path / "peer"
    argv = ["eval", "run", "--endpoint", "URL", "--manifest", str(manifest), "--out", str(out),
            "--endpoint-concurrency", "2", "--bootstrap", "50"]
    with FakeTeacherServer(audio_answer=listener, faults={"clip two": ["500"]}) as server:  # one retried 500
        argv[3] = server.url
        assert main(argv) == 0
        bodies = list(server.bodies)
        assert main(argv) == 0  # the rerun resumes: nothing asked again
        assert len(server.bodies) == len(bodies) == len(ROWS) + 1

    body = bodies[0]
    assert body["model"] == "fake-teacher" and body["temperature"] == 0 and body["max_tokens"] == 128
    [turn] = body["messages"]
    assert turn["role"] == "user" and [p["type"] for p in turn["content"]] == ["text", "input_audio"]
    assert turn["content"][1]["input_audio"]["format"] == "wav"
    for rid, *_, instruction, _ in ROWS:  # each clip arrived as a 16 kHz mono wav of the row's audio
        sr, wave = listener.clips[instruction]
        expected = load_audio(manifest.parent / f"{rid}.wav")
        assert sr == 16000 and wave.ndim == 1 and wave.shape == expected.shape
        np.testing.assert_allclose(wave, expected, atol=2 / 32768)

    preds = _lines(out / "predictions.jsonl")
    assert [p["id"] for p in preds] == [r[0] for r in ROWS]  # manifest order, whatever came back first
    assert {p["model"] for p in preds} == {"endpoint:fake-teacher"}
    assert [p["prediction"] for p in preds] == [r[5] for r in ROWS]
    assert [p["question"] for p in preds] == [r[4] for r in ROWS]
    assert preds[0]["reference"] == "turn the lights off"
    assert preds[2]["label"] == "angry" and preds[2]["transcript"] == "I hate this"
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]
    assert metrics["asr"]["n"] == 2 and metrics["asr"]["score"] == pytest.approx(100 * 1 / 8)  # morning -> evening
    assert metrics["emotion"]["n"] == 2 and metrics["emotion"]["score"] == pytest.approx(50.0)  # e2 says sad


def test_misbehaving_endpoint_stops_with_one_line_and_the_rerun_resumes(manifest, tmp_path):
    out = tmp_path / "preds.jsonl"
    fast = dict(concurrency=1, retries=1, backoff_s=0.0)
    with FakeTeacherServer(audio_answer=Listener(), faults={"clip three": ["nonjson", "nonjson"]}) as server:
        with pytest.raises(UserError, match=r"^endpoint http://127\.0\.0\.1:\d+/v1 failed \(2 tries: not a chat "
                                            r"completion.*\); 2 new rows were kept in .*preds\.jsonl, rerun"):
            endpoint_predictions(server.url, manifest, out, **fast)
    assert [p["id"] for p in _lines(out)] == ["a1", "a2"]
    # back up, elsewhere; clip four now gets an empty reply: kept as an empty prediction (scores 0)
    with FakeTeacherServer(audio_answer=Listener(), faults={"clip four": ["empty"]}) as server:
        endpoint_predictions(server.url, manifest, out, model="peer", **fast)
        assert [b["messages"][0]["content"][0]["text"] for b in server.bodies] == [ROWS[2][4], ROWS[3][4]]
    preds = _lines(out)
    assert [p["id"] for p in preds] == [r[0] for r in ROWS]
    assert [p["model"] for p in preds] == ["endpoint:fake-teacher"] * 2 + ["endpoint:peer"] * 2
    assert preds[3]["prediction"] == ""


def test_dead_port_is_one_line(manifest, tmp_path):
    with FakeTeacherServer() as server:
        url = server.url  # closed on exit: nothing listens there any more
    for model in (None, "peer"):  # listing the models, or the first chat request
        with pytest.raises(UserError, match=r"could not connect.*; 0 new rows were kept"):
            endpoint_predictions(url, manifest, tmp_path / "p.jsonl", model=model, retries=1, backoff_s=0.0)
    assert not (tmp_path / "p.jsonl").exists() or not (tmp_path / "p.jsonl").read_text()


def test_cli_refuses_two_generators(manifest, tmp_path, capsys):
    argv = ["eval", "run", "--endpoint", "http://127.0.0.1:9/v1", "--cascade", "--manifest", str(manifest),
            "--out", str(tmp_path / "x")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "one of --model, --cascade, --classifier, --endpoint (got --cascade, --endpoint)" in err
    assert err.count("\n") == 1
