"""Target options of `emoreason data teach`: corpus answers for label-only rows, the label prefix."""
import json

import pytest

from emoreason.cli import main
from emoreason.data.manifest import read_manifest
from emoreason.labels import label_sentence
from emoreason.teacher.qa import compose_target

TRANSCRIPT = "I told you twice already, stop touching my things."


def _manifest(path):
    rows = [
        # an AudioBench row: the importer kept the dataset's answer sentence
        {"id": "ab/000000/emotion", "audio": "wavs/000000.wav", "task": "emotion", "label": "angry", "transcript": TRANSCRIPT,
         "target": "The speaker's tone sounds anger.", "meta": {"corpus_answer": "The speaker's tone sounds anger."}},
        # relabelled after import: its answer sentence no longer names the label
        {"id": "ab/000001/emotion", "audio": "wavs/000001.wav", "task": "emotion", "label": "sad", "transcript": TRANSCRIPT,
         "meta": {"corpus_answer": "The speaker's tone sounds anger."}},
        # no corpus answer (IEMOCAP release, MELD, synthetic)
        {"id": "iemocap/x/sentiment", "audio": "wavs/x.wav", "task": "sentiment", "label": "negative", "transcript": TRANSCRIPT},
        {"id": "iemocap/x/asr", "audio": "wavs/x.wav", "task": "asr", "transcript": TRANSCRIPT, "target": TRANSCRIPT},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _teach(manifest, out, *extra):
    return main(["data", "teach", "--manifest", str(manifest), "--out", str(out), "--no-progress", *extra])


def test_label_style_uses_corpus_answers_where_present(tmp_path, capsys):
    manifest = _manifest(tmp_path / "m.jsonl")
    assert _teach(manifest, tmp_path / "L.jsonl", "--style", "label") == 0  # default: corpus
    assert "label-only targets: 1 corpus answers, 2 label sentences" in capsys.readouterr().err
    rows = {r.id: r for r in read_manifest(tmp_path / "L.jsonl")}
    assert rows["ab/000000/emotion"].target == "The speaker's tone sounds anger."
    assert rows["ab/000000/emotion"].meta["teacher"] == {"style": "label", "label_target": "corpus"}
    assert rows["ab/000001/emotion"].target == "The speaker sounds sad."
    assert rows["ab/000001/emotion"].meta["teacher"]["label_target"] == "template"
    assert rows["iemocap/x/sentiment"].target == "The speaker's sentiment is negative."
    assert rows["iemocap/x/asr"].target == TRANSCRIPT  # passed through

    assert _teach(manifest, tmp_path / "T.jsonl", "--style", "label", "--label-targets", "template") == 0
    rows = {r.id: r for r in read_manifest(tmp_path / "T.jsonl")}
    assert rows["ab/000000/emotion"].target == "The speaker sounds angry."
    assert rows["ab/000000/emotion"].meta["teacher"]["label_target"] == "template"


@pytest.mark.parametrize("style", ["summary", "detailed"])
def test_label_prefix_switch(tmp_path, style):
    manifest = _manifest(tmp_path / "m.jsonl")
    assert _teach(manifest, tmp_path / "P.jsonl", "--style", style) == 0  # default: prefixed
    assert _teach(manifest, tmp_path / "N.jsonl", "--style", style, "--no-label-prefix") == 0
    prefixed = {r.id: r for r in read_manifest(tmp_path / "P.jsonl") if r.label}
    plain = {r.id: r for r in read_manifest(tmp_path / "N.jsonl") if r.label}
    assert prefixed.keys() == plain.keys() == {"ab/000000/emotion", "ab/000001/emotion", "iemocap/x/sentiment"}
    for row_id, row in plain.items():
        head = label_sentence(row.task, row.label)
        # same teacher answer (offline, deterministic): the prefix is the only difference
        assert prefixed[row_id].target == f"{head} {row.target}"
        assert not row.target.startswith(head) and row.label in row.target  # the explanation names the label itself
        assert row.meta["teacher"]["label_prefix"] is False and prefixed[row_id].meta["teacher"]["label_prefix"] is True


def test_options_that_the_style_ignores_are_refused(tmp_path, capsys):
    manifest = _manifest(tmp_path / "m.jsonl")
    assert _teach(manifest, tmp_path / "o.jsonl", "--style", "detailed", "--label-targets", "corpus") == 1
    assert "--label-targets applies to --style label only" in capsys.readouterr().err
    assert _teach(manifest, tmp_path / "o.jsonl", "--style", "label", "--no-label-prefix") == 1
    assert "apply to --style summary / detailed only" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_compose_target():
    assert compose_target("emotion", "angry", "He is angry.") == "The speaker sounds angry. He is angry."
    assert compose_target("emotion", "angry", "The speaker sounds angry. Loud.") == "The speaker sounds angry. Loud."
    assert compose_target("emotion", "angry", "  He is angry. ", label_prefix=False) == "He is angry."
    assert compose_target("emotion", "angry", "", label_prefix=False) == "The speaker sounds angry."  # never empty
