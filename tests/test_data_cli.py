"""`emoreason data import` / `data synth` through the real CLI entry point."""
import shutil

import pytest
import soundfile as sf
import numpy as np

from emoreason.cli import main
from emoreason.data.manifest import read_manifest


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_synth_verb(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--n", "6", "--speakers", "3",
                 "--tasks", "emotion,asr", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "wrote 12 rows for 6 utterances" in out and "ms/utt" in out
    assert {r.task for r in read_manifest(tmp_path / "s" / "manifest.jsonl")} == {"emotion", "asr"}


def test_import_generic_verb_and_user_errors(tmp_path, capsys):
    sf.write(tmp_path / "x.wav", np.zeros(1600, np.float32) + 0.01, 16000)
    (tmp_path / "t.csv").write_text("audio,label\nx.wav,happy\nx2.wav,sad\n")
    assert main(["data", "import", "csv", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "wrote 1 rows" in out and "t.csv:3" in out  # the bad row is named by line
    assert main(["data", "import", "meld", str(tmp_path / "none.csv"), "--audio-dir", str(tmp_path / "nodir"),
                 "--out", str(tmp_path / "m")]) == 1
    assert "audio folder not found" in capsys.readouterr().err
    assert main(["data", "import", "iemocap", str(tmp_path), "--out", str(tmp_path / "i")]) == 1
    assert "no Session* folders" in capsys.readouterr().err
