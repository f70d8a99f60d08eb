"""``emoreason analyze`` end to end on the tiny random model: JSON lines, per-file errors and the
exit code, readable summary, resumable --out."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoreason.cli import main

SR = 16_000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emoreason.testing.tiny import save_tiny_run

    return save_tiny_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One good clip, one long clip, and each kind of bad input."""
    d = tmp_path_factory.mktemp("audio")
    t = np.arange(int(1.2 * 8000)) / 8000
    sf.write(d / "good.flac", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 8000)  # 8 kHz flac
    sf.write(d / "long.wav", (0.05 * np.random.default_rng(0).standard_normal(SR * 45)).astype(np.float32), SR)
    (d / "junk.wav").write_bytes(b"RIFF....not really a wave file" * 4)
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.txt").write_text("hello, I am a text file\n")
    sf.write(d / "nan.wav", np.full(SR, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    return {p.stem: str(p) for p in d.iterdir()}


def test_json_lines_with_bad_files(run_dir, files, capsys):
    order = ["good", "junk", "empty", "notes", "nan", "long"]
    code = main(["analyze", "--model", str(run_dir), *[files[k] for k in order], "--json", "--max-new-tokens", "4", "--batch-size", "2"])
    assert code == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["file"] for r in rows] == [files[k] for k in order]  # one object per file, in order
    ok = {Path(r["file"]).stem: r for r in rows if "error" not in r}
    assert set(ok) == {"good", "long"}
    assert ok["good"]["label"] in ok["good"]["scores"] and abs(sum(ok["good"]["scores"].values()) - 1) < 1e-9
    assert ok["good"]["duration"] == 1.2
    assert [[s["start"], s["end"]] for s in ok["long"]["segments"]] == [[0.0, 30.0], [30.0, 45.0]]
    err_lines = [line for line in captured.err.splitlines() if line.startswith("emoreason: error:")]
    assert len(err_lines) == 4  # one line per bad file
    for stem, fragment in [("junk", "not a readable audio file"), ("empty", "empty"), ("notes", "not a readable audio file"), ("nan", "NaN")]:
        assert any(files[stem] in line and fragment in line for line in err_lines), stem


def test_absurd_length_and_all_good_exit_zero(run_dir, files, capsys):
    assert main(["analyze", "--model", str(run_dir), files["long"], "--json", "--max-seconds", "30", "--max-new-tokens", "0"]) == 1
    err = capsys.readouterr().err
    assert "over the 30.0 s limit" in err
    assert main(["analyze", "--model", str(run_dir / "final"), files["good"], "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{files['good']}: ") and "scores:" in out


def test_out_file_resumes(run_dir, files, tmp_path, capsys):
    out = tmp_path / "res.jsonl"
    args = ["analyze", "--model", str(run_dir), files["good"], files["junk"], "--out", str(out), "--max-new-tokens", "0"]
    assert main(args) == 1
    first = [json.loads(line) for line in out.read_text().splitlines()]
    assert [("error" in r) for r in first] == [False, True]
    capsys.readouterr()
    # Second run: the good file is skipped, the failed one is retried (and fails again).
    assert main(args) == 1
    assert "1 file(s) already in" in capsys.readouterr().err
    second = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(second) == 3 and second[2]["file"] == files["junk"] and "error" in second[2]


def test_no_readable_file_fails_before_loading(run_dir, files, tmp_path, capsys, monkeypatch):
    from emoreason.inference.engine import Engine

    monkeypatch.setattr(Engine, "load", classmethod(lambda *a, **k: pytest.fail("loaded a model for no audio")))
    missing, folder = str(tmp_path / "nope.wav"), str(tmp_path)
    assert main(["analyze", "--model", str(run_dir), missing, files["empty"], folder, "--json"]) == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["file"] for r in rows] == [missing, files["empty"], folder]
    assert [r["error"] for r in rows] == [f"{missing}: file not found", f"{files['empty']}: file is empty (0 bytes)",
                                          f"{folder}: is a directory, not an audio file"]
    assert len([line for line in captured.err.splitlines() if line.startswith("emoreason: error:")]) == 3


def test_missing_model_is_one_line_error(files, tmp_path, capsys):
    assert main(["analyze", "--model", str(tmp_path / "none"), files["good"]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"emoreason: error: {tmp_path / 'none'}: model directory not found"]


def test_compiled_decode_without_cuda_is_one_line_error(run_dir, files, capsys):
    assert main(["analyze", "--model", str(run_dir), files["good"], "--device", "cpu", "--decode-compile", "cudagraphs"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a CUDA device" in err[0]
    assert main(["analyze", "--model", str(run_dir), files["good"], "--max-new-tokens", "3", "--decode-compile", "static"]) == 0


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = capsys.readouterr().out
    for opt in ["--model", "--task", "--json", "--out", "--prompt", "--batch-size", "--max-new-tokens", "--max-seconds", "--device",
                "--question", "--transcript", "--decode-compile"]:
        assert opt in text
    assert "asr" in text and "sqa" in text


def test_asr_json_and_sqa_summary(run_dir, files, capsys):
    assert main(["analyze", "--model", str(run_dir), files["good"], files["long"], "--task", "asr", "--json",
                 "--max-new-tokens", "3", "--batch-size", "3"]) == 0
    good, long = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert good["task"] == "asr" and good["label"] is None and good["scores"] == {}
    assert good["transcript"]["source"] == "model-asr" and isinstance(good["transcript"]["text"], str)
    texts = [s["transcript"]["text"] for s in long["segments"]]
    assert len(texts) == 2 and long["transcript"]["text"] == " ".join(t for t in texts if t)
    assert main(["analyze", "--model", str(run_dir), files["good"], "--task", "sqa", "--question", "Who speaks?",
                 "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{files['good']}: sqa") and "  question: Who speaks?" in out and "  answer: " in out
    assert "  transcript (model-asr): " in out


@pytest.mark.parametrize("extra,fragment", [
    (["--task", "sqa"], "task sqa needs a question"),
    (["--question", "Who?"], "only asked with task sqa"),
    (["--task", "asr", "--max-new-tokens", "0"], "max_new_tokens must be >= 1"),
])
def test_task_arguments_are_checked_before_loading(files, tmp_path, capsys, extra, fragment):
    # the model directory does not exist: the argument error must come first
    assert main(["analyze", "--model", str(tmp_path / "none"), files["good"], *extra]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]


def test_summary_of_an_emotion_result_shows_the_transcript(run_dir, files, capsys):
    assert main(["analyze", "--model", str(run_dir), files["good"], "--max-new-tokens", "3"]) == 0
    assert "  transcript (model-asr): " in capsys.readouterr().out
    assert main(["analyze", "--model", str(run_dir), files["good"], "--max-new-tokens", "3", "--transcript", "none"]) == 0
    assert "transcript" not in capsys.readouterr().out


def test_timings_split_import_load_compute(run_dir, files, capsys):
    assert main(["analyze", "--model", str(run_dir), files["good"], "--max-new-tokens", "0", "--timings"]) == 0
    line = [l for l in capsys.readouterr().err.splitlines() if l.startswith("emoreason: timings:")]
    assert len(line) == 1
    import re

    parts = dict(re.findall(r"(import|load|compute) ([0-9.]+) s", line[0]))
    assert set(parts) == {"import", "load", "compute"} and all(float(v) >= 0 for v in parts.values())
    assert float(parts["import"]) > 0  # counted from the process start
