"""`eval run` over all four tasks with a fake engine (the engine's asr / sqa API: ``analyze(files,
task="asr")`` -> ``transcript.text``, ``analyze(files, task="sqa", question=...)`` -> ``answer``),
instructions from the dataset by default, and `eval compare` in the paper's layout."""
import json
from pathlib import Path

import pytest

from emoreason.cli import main
from emoreason.eval.compare import column_name, compare_table, render_markdown
from emoreason.eval.judges import make_judge
from emoreason.eval.run import instruction_of, model_predictions
from emoreason.eval.scoring import score_file
from emoreason.inference.generation import QUOTE_MIN_PROBABILITY


class _Result:
    def __init__(self, data: dict):
        self.data, self.ok = data, True

    def to_dict(self) -> dict:
        return dict(self.data)


class FakeEngine:
    """Answers by file name; records every call (task, prompt / question)."""

    def __init__(self, answers: dict[str, str]):
        self.answers, self.calls = answers, []
        self.transcriber = None  # as Engine: the speech encoder's own Whisper decoder

    def analyze(self, files, task="emotion", prompt=None, question=None, batch_size=4, max_new_tokens=128,
                transcript="model", explain=None, quotes=None, quote_min_probability=None):
        # asr: the model's own ASR; sqa: no transcript; emotion / sentiment: eval run's default mode
        # (a transcript from auto, quotes held to it, and the paper's free explanations: the judge
        # reads the label the model wrote, not a forced one)
        labelled = task in ("emotion", "sentiment")
        assert transcript == {"asr": "model", "sqa": "none"}.get(task, "auto")
        assert (quotes, explain) == (("constrained", "free") if labelled else (None, None))
        assert quote_min_probability == (QUOTE_MIN_PROBABILITY if labelled else None)
        self.calls.append((task, prompt, question, len(files)))
        out = []
        for f in files:
            text = self.answers[Path(f).stem]
            if task == "asr":
                out.append(_Result({"transcript": {"text": text, "source": "model-asr", "words": []}}))
            elif task == "sqa":
                out.append(_Result({"answer": text}))
            else:
                out.append(_Result({"label": text, "scores": {text: 1.0}, "explanation": f"The speaker sounds {text}."}))
        return out


ROWS = [
    {"id": "iemocap/1/emotion", "audio": "e1.wav", "task": "emotion", "label": "angry", "source": "iemocap_emotion_test",
     "instruction": "What emotion do you hear?", "target": "The speaker's tone sounds anger.",
     "meta": {"corpus_instruction": "Can you identify the emotion in this audio?"}},
    {"id": "iemocap/2/emotion", "audio": "e2.wav", "task": "emotion", "label": "sad", "source": "iemocap_emotion_test",
     "instruction": "What emotion do you hear?", "target": "The speaker's tone sounds sad.",
     "meta": {"corpus_instruction": "Can you identify the emotion in this audio?"}},
    {"id": "meld/1/sentiment", "audio": "s1.wav", "task": "sentiment", "label": "positive", "source": "meld_sentiment_test",
     "instruction": "Sentiment?", "target": "The sentiment is positive."},
    {"id": "squad/1/sqa", "audio": "q1.wav", "task": "sqa", "source": "spoken_squad_test",
     "instruction": "Please answer: Where were the keys?", "target": "On the kitchen table.",
     "meta": {"question": "Where were the keys?", "corpus_instruction": "Where were the keys?"}},
    {"id": "libri/1/asr", "audio": "a1.wav", "task": "asr", "source": "librispeech_test_clean",
     "transcript": "The colour of the sky", "target": "The colour of the sky", "instruction": "Transcribe."},
    {"id": "libri/2/asr", "audio": "a2.wav", "task": "asr", "source": "librispeech_test_clean",
     "transcript": "Hello there my friend", "target": "Hello there my friend", "instruction": "Transcribe."},
]
ANSWERS = {"e1": "angry", "e2": "happy", "s1": "positive", "q1": "They were on the kitchen table.",
           "a1": "the color of the sky", "a2": "hello my friend"}


@pytest.fixture
def manifest(tmp_path) -> Path:
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_run_writes_every_task(manifest, tmp_path):
    engine = FakeEngine(ANSWERS)
    preds = model_predictions("runs/fake", manifest, tmp_path / "p.jsonl", engine=engine)
    rows = {r["id"]: r for r in map(json.loads, preds.read_text().splitlines())}
    assert rows["libri/1/asr"]["prediction"] == "the color of the sky"
    assert rows["libri/1/asr"]["reference"] == "The colour of the sky"
    sqa = rows["squad/1/sqa"]
    assert (sqa["prediction"], sqa["reference"], sqa["question"]) == (
        "They were on the kitchen table.", "On the kitchen table.", "Where were the keys?")
    emo = rows["iemocap/1/emotion"]
    # the judge gets the dataset's answer sentence; the gold label stays for the offline judge
    assert (emo["reference"], emo["label"], emo["question"]) == (
        "The speaker's tone sounds anger.", "angry", "Can you identify the emotion in this audio?")
    assert rows["meld/1/sentiment"]["question"] == "Sentiment?"  # no corpus instruction: the row's own
    # one call per task: each row with its own instruction (sqa: its question), in one batch
    assert ("sqa", None, ["Where were the keys?"], 1) in engine.calls
    assert ("asr", ["Transcribe.", "Transcribe."], None, 2) in engine.calls
    assert len(engine.calls) == len({c[0] for c in engine.calls})  # rows asked differently still share a batch
    # scoring: corpus WER over the two utterances (1 deletion in 9 words; colour = color)
    metrics = score_file(preds, tmp_path / "ev", make_judge("offline"), bootstrap=200, report=False)
    assert metrics["tasks"]["asr"]["score"] == pytest.approx(100 / 9)
    assert metrics["tasks"]["sqa"]["score"] == 100.0  # rating 5 x 20
    assert metrics["tasks"]["emotion"]["score"] == 50.0
    cells = {(d["source"], d["task"]): d for d in metrics["datasets"]}
    assert cells[("librispeech_test_clean", "asr")]["ci"]["low"] <= 100 / 9 <= cells[("librispeech_test_clean", "asr")]["ci"]["high"]
    assert cells[("meld_sentiment_test", "sentiment")]["score"] == 100.0


def test_pool_instructions_on_request():
    from emoreason.data.manifest import validate_row

    row = validate_row(ROWS[3])
    assert instruction_of(row, "dataset") == "Where were the keys?"
    pooled = instruction_of(row, "pool", seed=0)
    assert pooled != "Where were the keys?" and "Where were the keys?" in pooled
    assert pooled == instruction_of(row, "pool", seed=0)  # seeded: reruns ask the same


@pytest.mark.parametrize("source,task,name", [
    ("iemocap_emotion_test", "emotion", "IEMOCAP-ER"), ("meld_emotion_test", "emotion", "MELD-ER"),
    ("meld_sentiment_test", "sentiment", "MELD-SR"), ("spoken_squad_test", "sqa", "Spoken-SQuAD-SQA"),
    ("slue_p2_sqa5_test", "sqa", "SLUE-SQA"), ("librispeech_test_clean", "asr", "LibriSpeech-ASR WER"),
    ("mycorpus", "emotion", "mycorpus-ER"), (None, "asr", "asr WER"), (None, "sqa", "sqa"),
])
def test_column_names(source, task, name):
    assert column_name(source, task) == name


def _metrics(path: Path, cells: list[tuple[str, str, float, float, float]], cls: dict | None = None) -> Path:
    path.mkdir()
    datasets = [{"source": s, "task": t, "n": 10, "score": v, "ci": {"low": lo, "high": hi}} for s, t, v, lo, hi in cells]
    tasks = {t: {"n": 10, "score": v} for _, t, v, _, _ in cells}
    if cls:
        tasks["emotion"]["classification"] = cls
    (path / "metrics.json").write_text(json.dumps({"tasks": tasks, "datasets": datasets}))
    return path


def test_compare_paper_layout(tmp_path, capsys):
    cls = {"weighted_accuracy": 61.0, "unweighted_accuracy": 58.25, "macro_f1": 55.5}
    a = _metrics(tmp_path / "ours", [("iemocap_emotion_test", "emotion", 62.5, 55.0, 70.125),
                                     ("meld_sentiment_test", "sentiment", 48.0, 40.0, 56.0),
                                     ("spoken_squad_test", "sqa", 71.2, 68.0, 74.4),
                                     ("librispeech_test_clean", "asr", 5.25, 4.5, 6.0)], cls)
    b = _metrics(tmp_path / "cascade", [("iemocap_emotion_test", "emotion", 40.0, 30.0, 50.0),
                                        ("librispeech_test_clean", "asr", 7.0, 6.0, 8.0)])
    head, rows = compare_table([a, b])
    assert head[:6] == ["run", "IEMOCAP-ER", "MELD-SR", "Spoken-SQuAD-SQA", "LibriSpeech-ASR WER", "avg"]
    assert rows[0][:6] == ["ours", "62.5 [55.0, 70.1]", "48.0 [40.0, 56.0]", "71.2 [68.0, 74.4]", "5.2 [4.5, 6.0]",
                           f"{(62.5 + 48.0 + 71.2) / 3:.1f}"]
    assert rows[0][6:9] == ["61.0", "58.2", "55.5"]
    assert rows[1][:6] == ["cascade", "40.0 [30.0, 50.0]", "-", "-", "7.0 [6.0, 8.0]", "-"]  # missing cells, no avg
    assert main(["eval", "compare", str(a), str(b), "--names", "ours,cascade", "--out", str(tmp_path / "t.md")]) == 0
    out = capsys.readouterr().out
    assert out == render_markdown(head, rows) == (tmp_path / "t.md").read_text()
    assert out.splitlines()[2].startswith("| ours | 62.5 [55.0, 70.1] | 48.0 [40.0, 56.0] |")
