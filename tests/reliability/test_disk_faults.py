"""A full disk (a file size limit in the child, RLIMIT_FSIZE: writes past it fail like ENOSPC) and
a read-only output directory: one line, no traceback, nothing finished lost, and a rerun with
room completes to the same result. Non-UTF-8 inputs: one line naming file:line."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from emoreason.cli import main

from .procs import cli, rows, run_limited


def _predictions(path: Path, n: int = 40) -> Path:
    path.write_text("".join(json.dumps({"id": f"r{i}", "label": ["angry", "sad", "happy"][i % 3],
                                        "prediction": f"The speaker sounds {['angry', 'sad', 'neutral'][i % 3]}, row {i}."}) + "\n"
                            for i in range(n)))
    return path


def test_full_disk_during_eval_score_is_one_line_and_the_rerun_completes(tmp_path):
    preds = _predictions(tmp_path / "p.jsonl")
    args = ["eval", "score", "--predictions", str(preds), "--bootstrap", "10"]
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "out"
    code, err, _ = run_limited(cli(*args, "--out", str(out)), max_file_bytes=4000)
    assert code == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("emoreason: error: ") and "cannot write" in err
    kept = rows(out / "scores.jsonl")  # whole rows only: the half line was cut
    assert 0 < len(kept) < 40
    assert main([*args, "--out", str(out)]) == 0
    assert rows(out / "scores.jsonl") == rows(tmp_path / "ref" / "scores.jsonl")


def test_full_disk_during_analyze_out(tiny_run, tmp_path):
    from .conftest import write_manifest

    manifest = write_manifest(tmp_path / "clips", n=6)
    files = sorted(str(p) for p in manifest.parent.glob("c*.wav"))
    args = ["analyze", "--model", str(tiny_run), *files, "--max-new-tokens", "2", "--batch-size", "1"]
    out = tmp_path / "out.jsonl"
    code, err, _ = run_limited(cli(*args, "--out", str(out)), max_file_bytes=2500)
    assert code == 1 and "Traceback" not in err, err
    assert "cannot write" in err.strip().splitlines()[-1]
    done = rows(out)
    assert len(done) < len(files)
    assert main([*args, "--out", str(out)]) == 0
    assert [r["file"] for r in rows(out)] == files


@pytest.fixture()
def readonly_out(tmp_path):
    """An output path that cannot be written: a mode 555 directory, or (root ignores modes) a
    folder under /sys, which even root cannot create."""
    if os.geteuid() == 0:
        yield Path("/sys/emoreason-readonly-test/out")
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    yield ro / "out"
    os.chmod(ro, 0o755)


@pytest.mark.parametrize("command", ["score", "analyze"])
def test_read_only_out_is_one_line(readonly_out, tiny_run, tmp_path, capsys, command):
    if command == "score":
        args = ["eval", "score", "--predictions", str(_predictions(tmp_path / "p.jsonl", n=5)), "--out", str(readonly_out)]
    else:
        from emoreason.audio import save_audio
        from emoreason.testing.fixtures import tone

        save_audio(tmp_path / "a.wav", tone(0.5))
        args = ["analyze", "--model", str(tiny_run), str(tmp_path / "a.wav"), "--out", str(readonly_out / "r.jsonl")]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emoreason: error: ") and str(readonly_out.parent) in err[0]


@pytest.mark.parametrize("kind", ["manifest", "predictions"])
def test_non_utf8_input_names_the_line(tmp_path, capsys, kind):
    path = tmp_path / "in.jsonl"
    good = json.dumps({"id": "a", "audio": "a.wav", "task": "asr", "transcript": "hi"} if kind == "manifest"
                      else {"id": "a", "label": "angry", "prediction": "x"})
    path.write_bytes(good.encode() + b"\n" + b'{"id": "b\xff\xfe"}\n')
    if kind == "manifest":
        from emoreason.data.manifest import ManifestError, read_manifest

        with pytest.raises(ManifestError, match=r"in\.jsonl:2: not UTF-8"):
            read_manifest(path)
    else:
        assert main(["eval", "score", "--predictions", str(path), "--out", str(tmp_path / "o")]) == 1
        assert "in.jsonl:2: not UTF-8 text" in capsys.readouterr().err
