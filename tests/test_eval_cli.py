"""`emoreason eval score / compare` end to end: files written, embedded image, table, line errors."""
import base64
import json
import shutil
from pathlib import Path

import pytest

from emoreason.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "eval" / "judged_emotion.jsonl"


@pytest.fixture()
def predictions(tmp_path):
    rows = [json.loads(l) for l in FIXTURE.read_text().splitlines()][:60]
    rows.append({"id": "t1", "label": "angry", "transcript": "Get out of my house!",
                 "prediction": 'The speaker is angry: "get out of my house" is shouted.'})
    rows.append({"id": "a1", "task": "asr", "reference": "hello world", "prediction": "Hello, world!"})
    rows.append({"id": "a2", "task": "asr", "reference": "the cat sat", "prediction": "the cat sat down"})
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_writes_all_outputs(predictions, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", "score", "--predictions", str(predictions), "--out", str(out), "--bootstrap", "200"]) == 0
    for name in ("scores.jsonl", "metrics.json", "report.md", "report.html", "confusion.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    emo = metrics["tasks"]["emotion"]
    assert emo["n"] == 61 and emo["ci"]["low"] <= emo["score"] <= emo["ci"]["high"]
    assert emo["quotes"]["n_judged"] == 1 and emo["quotes"]["groundedness"] == 100
    assert metrics["tasks"]["asr"]["score"] == pytest.approx(100 * 1 / 5)  # one insertion over 5 words
    html = (out / "report.html").read_text()
    png = (out / "confusion.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert "data:image/png;base64," in html and base64.b64encode(png).decode()[:200] in html
    assert "<table>" in html and "Wt Avg" in html
    scored = [json.loads(l) for l in (out / "scores.jsonl").read_text().splitlines()]
    assert len(scored) == 63 and all("score" in r for r in scored)
    assert "emotion" in capsys.readouterr().out


def test_score_resumes_without_rescoring(predictions, tmp_path):
    out = tmp_path / "ev"
    main(["eval", "score", "--predictions", str(predictions), "--out", str(out), "--bootstrap", "50"])
    lines = (out / "scores.jsonl").read_text().splitlines()
    (out / "scores.jsonl").write_text("\n".join(lines[:10]) + "\n" + lines[10][:25])  # crash: torn last line
    main(["eval", "score", "--predictions", str(predictions), "--out", str(out), "--bootstrap", "50"])
    assert (out / "scores.jsonl").read_text().splitlines() == lines


def test_compare_table(predictions, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    main(["eval", "score", "--predictions", str(predictions), "--out", str(a), "--bootstrap", "50"])
    shutil.copytree(a, b)
    m = json.loads((b / "metrics.json").read_text())
    next(d for d in m["datasets"] if d["task"] == "emotion")["score"] = 12.5
    (b / "metrics.json").write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["eval", "compare", str(a), str(b), "--names", "ours,other", "--out", str(tmp_path / "t.md")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | emotion | asr WER | wt acc | unwt acc | macro-F1 |")
    assert lines[3].startswith("| other | 12.5 [")  # rows without a source: one column per task
    assert (tmp_path / "t.md").read_text().splitlines() == lines


@pytest.mark.parametrize("content,message", [
    ('{"prediction": "sad", "reference": "sad"}\n{"prediction": "x", \n', "p.jsonl:2: not valid JSON"),
    ('{"reference": "sad"}\n', "p.jsonl:1: missing field 'prediction'"),
    ('{"prediction": "x"}\n', "p.jsonl:1: needs a 'reference' or a 'label'"),
    ('{"prediction": "x", "reference": "sad", "task": "dance"}\n', "p.jsonl:1: unknown task 'dance'"),
    ('{"id": "1", "prediction": "x", "reference": "sad"}\n\n{"id": "1", "prediction": "y", "reference": "sad"}\n',
     "p.jsonl:3: duplicate id '1'"),
    ('{"prediction": "x", "reference": "The answer is Paris."}\n', "p.jsonl:1: cannot tell the task"),
    ('[1, 2]\n', "p.jsonl:1: expected a JSON object"),
])
def test_malformed_predictions_name_the_line(tmp_path, capsys, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    assert main(["eval", "score", "--predictions", str(path), "--out", str(tmp_path / "ev")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
