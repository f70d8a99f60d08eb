"""The offline judge's readings: flags, names (judge.txt identity), make_judge and the CLI option."""
import json

import pytest

from emoreason.cli import main
from emoreason.errors import UserError
from emoreason.eval.judges import make_judge
from emoreason.eval.judges.offline import OfflineJudge
from emoreason.text.label_extraction import BinaryReading

ROW = {"task": "emotion", "prediction": "The speaker sounds frustrated.", "gold": "angry",
       "reference": "The speaker's tone sounds anger."}


def test_default_is_the_reference_compatible_reading():
    judge = OfflineJudge()
    assert judge.reading == BinaryReading() and judge.name == "offline"
    out = judge.judge(ROW)
    assert out["score"] == 1.0 and out["judge"]["extracted"]["primary"] == ["frustrated"]


def test_flags_and_names():
    assert OfflineJudge(merge_near_synonyms=False).judge(ROW)["score"] == 0.0
    assert OfflineJudge(merge_near_synonyms=False).name == "offline:no-merge_near_synonyms"
    assert OfflineJudge(reading=BinaryReading.literal()).name == "offline:literal"


def test_make_judge_offline_reading():
    assert make_judge("offline", offline_reading="literal").reading == BinaryReading.literal()
    with pytest.raises(UserError, match="offline-reading"):
        make_judge("offline", offline_reading="lenient")


def test_cli_offline_reading_and_no_mixing(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "1", "prediction": ROW["prediction"], "reference": ROW["reference"]}) + "\n")
    out = tmp_path / "ev"
    assert main(["eval", "score", "--predictions", str(preds), "--out", str(out), "--bootstrap", "10",
                 "--offline-reading", "literal"]) == 0
    assert json.loads((out / "scores.jsonl").read_text())["score"] == 0.0
    assert (out / "judge.txt").read_text().strip() == "offline:literal"
    # a directory scored under one reading is not resumed under another
    assert main(["eval", "score", "--predictions", str(preds), "--out", str(out), "--bootstrap", "10"]) == 1
    assert main(["eval", "score", "--predictions", str(preds), "--out", str(out), "--bootstrap", "10",
                 "--overwrite"]) == 0
    assert json.loads((out / "scores.jsonl").read_text())["score"] == 1.0
