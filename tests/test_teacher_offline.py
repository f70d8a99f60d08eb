"""`emoreason data teach --teacher offline`: every emotion row gets a grounded, label-stating target."""
import json

import pytest

from emoreason.cli import main
from emoreason.data.manifest import read_manifest
from emoreason.data.questions import EMOTION_POOL, SENTIMENT_POOL
from emoreason.labels import label_sentence
from emoreason.text.quotes import extract_quotes, normalize_quote
from emoreason.teacher.checks import check_output
from emoreason.testing.fixtures import DEFAULT_ROWS, make_manifest
from emoreason.teacher.offline import salient_span


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_manifest(tmp_path_factory.mktemp("corpus") / "D")


def _rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@pytest.mark.parametrize("style", ["detailed", "summary"])
def test_every_emotion_row_states_the_label_and_quotes_the_transcript(corpus, tmp_path, style, capsys):
    out = tmp_path / "T.jsonl"
    assert main(["data", "teach", "--manifest", str(corpus), "--teacher", "offline", "--style", style, "--out", str(out), "--no-progress"]) == 0
    assert "7 taught, 1 passed through, 0 skipped" in capsys.readouterr().err
    rows = read_manifest(out)  # valid manifest, audio paths rebased to the output folder
    src = {r.id: r for r in read_manifest(corpus)}
    assert [r.id for r in rows] == [r[0] for r in DEFAULT_ROWS]  # manifest order
    for row in rows:
        assert (out.parent / row.audio).resolve() == (corpus.parent / src[row.id].audio).resolve()
        if row.task == "asr":
            assert row.target is None and row.instruction is None and row.transcript == src[row.id].transcript
            continue
        assert row.target.startswith(label_sentence(row.task, row.label) + " ")
        explanation = row.target[len(label_sentence(row.task, row.label)) + 1 :]
        assert row.label in explanation  # the explanation itself names the gold label
        quotes = extract_quotes(explanation)
        assert quotes and all(normalize_quote(q) in normalize_quote(row.transcript) for q in quotes)
        assert row.instruction in (SENTIMENT_POOL if row.task == "sentiment" else EMOTION_POOL)
        assert row.meta["teacher_check"] == {"ok": True, "reasons": [], "quotes": quotes}
        assert row.meta["teacher"]["prompt"] == f"v1/{style}" + ("_sentiment" if row.task == "sentiment" else "")


def test_rerun_skips_everything_and_label_style_is_the_label_sentence(corpus, tmp_path, capsys):
    out = tmp_path / "L.jsonl"
    args = ["data", "teach", "--manifest", str(corpus), "--style", "label", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    first = out.read_text()
    assert main(args) == 0
    assert "0 taught, 0 passed through, 8 skipped" in capsys.readouterr().err
    assert out.read_text() == first
    for row in read_manifest(out):
        if row.label:
            assert row.target == label_sentence(row.task, row.label)


def test_cues_are_measured_and_cited(corpus, tmp_path):
    out = tmp_path / "C.jsonl"
    assert main(["data", "teach", "--manifest", str(corpus), "--out", str(out), "--cues", "--no-progress"]) == 0
    rows = [r for r in read_manifest(out) if r.label]
    assert all(r.meta["cues"]["f0_median_hz"] > 50 and r.meta["cues"]["words"] > 3 for r in rows)
    cited = [r for r in rows if r.meta["cue_phrases"]]
    assert cited, "at least one clip differs from its speaker's usual delivery"
    for r in cited:
        assert all(p in r.target for p in r.meta["cue_phrases"])
        assert check_output(r.target, r.transcript, r.label, "detailed").ok


def test_existing_instruction_is_kept_and_salient_span_is_verbatim(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "x", "audio": "a.wav", "task": "emotion", "label": "sad",
                                    "transcript": "Um, okay. I really miss you, it's awful here.", "instruction": "Why?"}) + "\n")
    out = tmp_path / "o.jsonl"
    assert main(["data", "teach", "--manifest", str(manifest), "--out", str(out), "--no-progress"]) == 0
    row = read_manifest(out)[0]
    assert row.instruction == "Why?"
    assert salient_span("Um, okay. I really miss you, it's awful here.") == "I really miss you"
    assert salient_span("") == ""
    long = "and then we went to the shop and bought bread and milk and eggs and I love it so much honestly"
    span = salient_span(long)
    assert span in long and len(span.split()) <= 12 and "love" in span


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "teach", "--manifest", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert main(["data", "teach", "--manifest", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl"), "--teacher", "ftp://x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("emoreason: error: ") for line in err)
    assert "manifest not found" in err[0] and "OpenAI-compatible base URL" in err[1]
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["data", "teach", "--manifest", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("the manifest has no rows to teach")


def test_plain_words_point_to_the_delivery_instead_of_a_made_up_reading():
    from emoreason.teacher.base import TeachRequest
    from emoreason.teacher.offline import compose

    plain = TeachRequest("r1", "emotion", "detailed", "The store closes at nine.", "happy", "", ("higher pitch than usual",))
    text = compose(plain)
    assert '"The store closes at nine"' in text and "plain in themselves" in text and "happy" in text
    assert "higher pitch than usual" in text and check_output(text, plain.transcript, "happy", "detailed").ok
    charged = TeachRequest("r1", "emotion", "detailed", "I love this store!", "happy", "")
    assert "plain in themselves" not in compose(charged)
