"""benchmarks/model_invariance.py: its sox and augment conditions, its paired summary, and a whole
run on a tiny saved model (real engine, real files, forced choice)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from emoreason.testing.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("model_invariance")


def _voice(seconds: float = 1.0) -> np.ndarray:
    """A 16 kHz harmonic tone at 150 Hz (a crude voiced sound), peak 0.3."""
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.1 * sum(np.sin(2 * np.pi * 150 * k * t) / k for k in (1, 2, 3))).astype(np.float32)


def _f0(wave: np.ndarray) -> float:
    """Strongest spectral peak (Hz) between 100 and 250 Hz."""
    spec = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    freqs = np.fft.rfftfreq(wave.size, 1 / 16000)
    band = (freqs > 100) & (freqs < 250)
    return float(freqs[band][np.argmax(spec[band])])


def test_conditions_change_what_they_name(bench):
    wave, table = _voice(), bench.conditions()
    tempo = table["tempo0.85"](wave, "0")
    assert tempo.size == pytest.approx(wave.size / 0.85, rel=0.03)
    assert _f0(tempo) == pytest.approx(150, abs=4)  # tempo keeps the pitch
    pitch = table["pitch+400"](wave, "0")
    assert pitch.size == pytest.approx(wave.size, rel=0.01)
    assert _f0(pitch) == pytest.approx(150 * 2 ** (400 / 1200), abs=5)  # 4 semitones up, same length
    speed = table["speed1.1"](wave, "0")
    assert speed.size == pytest.approx(wave.size / 1.1, rel=0.01) and _f0(speed) == pytest.approx(165, abs=5)
    loud = table["gain+12"](wave, "0")
    assert np.sqrt(np.mean(loud ** 2)) / np.sqrt(np.mean(wave ** 2)) == pytest.approx(10 ** 0.6, rel=0.02)
    noisy, again = table["noise10"](wave, "3"), table["noise10"](wave, "3")
    assert np.array_equal(noisy, again) and not np.array_equal(noisy, table["noise10"](wave, "4"))  # seeded per clip
    assert all(np.isfinite(table[name](wave, "0")).all() for name in table)


def test_summary_pairs_with_the_clean_answers(bench):
    gold = ["sad", "sad", "angry", "angry"]
    s = bench.summarise(gold, ["sad", "angry", "angry", "angry"], clean=["sad", "sad", "angry", "sad"])
    assert s["acc"]["mean"] == 75.0 and s["ua"]["mean"] == 75.0
    assert s["delta"]["mean"] == 0.0 and s["changed"] == 2  # one gained, one lost
    assert s["predicted"] == {"angry": 3, "sad": 1}
    assert s["confusion"] == {"angry": {"angry": 2}, "sad": {"angry": 1, "sad": 1}}
    line = bench.row("x", s)
    assert line.startswith("| x | 4 | 75.0 [") and line.endswith("| 2 | angry 3, sad 1 |")


def test_whole_run_on_a_tiny_model(bench, tmp_path, capsys):
    from emoreason.testing.tiny import save_tiny_run

    run = save_tiny_run(tmp_path / "run")
    rows = []
    for i, label in enumerate(["angry", "sad", "happy", "neutral", "calm?"]):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, _voice(1.0 + i / 4), 16000)
        rows.append({"id": f"c{i}", "audio": path.name, "task": "emotion", "label": label,
                     "meta": {"wording": "neutral" if i % 2 else label}})
    rows.append({"audio": "c0.wav", "task": "asr", "text": "hello"})
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench.main(["--model", str(run), "--data", str(tmp_path / "test.jsonl"), "--conditions", "gain-12,tempo1.15",
                "--by-wording", "--json", str(tmp_path / "out.json")])
    out = capsys.readouterr().out
    assert "4 clips" in out and "| clean | 4 |" in out and "| tempo1.15 | 4 |" in out  # unknown label dropped
    results = json.loads((tmp_path / "out.json").read_text())["results"]
    assert list(results) == ["clean", "gain-12", "tempo1.15"] and "delta" in results["tempo1.15"]
    assert sum(results["clean"]["predicted"].values()) == 4
    # c0, c2 emotion-worded, c1, c3 neutral-worded (c4's label is unknown to the model: dropped)
    assert {k: v["n"] for k, v in results["gain-12"]["by_wording"].items()} == {"emotional": 2, "neutral": 2}
    assert "neutral words" in out and "emotional words" in out
    (tmp_path / "c9.wav").write_bytes(b"junk")  # a broken clip: one line naming it, no traceback
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "b", "audio": "c9.wav", "task": "emotion", "label": "sad"}) + "\n")
    with pytest.raises(SystemExit, match=r"^model_invariance: .*c9\.wav: not a readable audio file"):
        bench.main(["--model", str(run), "--data", str(tmp_path / "bad.jsonl")])
    with pytest.raises(SystemExit, match="unknown condition"):
        bench.main(["--model", str(run), "--data", str(tmp_path / "test.jsonl"), "--conditions", "louder"])
