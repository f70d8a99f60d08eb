"""Importers on tiny fixture corpora built in the real layouts (AudioBench, MELD, IEMOCAP, CSV/JSONL)."""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoreason.data.manifest import read_manifest
from emoreason.errors import UserError

SR = 16_000


def tone(freq: float, seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(freq: float, sr: int = 8000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(freq, 0.5, sr), sr, format="WAV")
    return buf.getvalue()


# ---------------------------------------------------------------------------------- AudioBench
def make_audiobench(path: Path, answers: list[str], instructions: list[str] | None = None, junk: set[int] = frozenset()):
    """A tiny AudioBench-format dataset saved with save_to_disk (context = Audio feature)."""
    datasets = pytest.importorskip("datasets")
    n = len(answers)
    ctx = [{"bytes": b"not audio" if i in junk else wav_bytes(200 + 50 * i), "path": None} for i in range(n)]
    feats = datasets.Features({"context": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                               "instruction": datasets.Value("string"), "answer": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"context": ctx, "instruction": instructions or ["What emotion?"] * n, "answer": answers},
                                    features=feats)
    # the hub copies carry an Audio feature; cast the struct (no encoding, so no torchcodec needed)
    ds = ds.cast_column("context", datasets.Audio(sampling_rate=SR))
    ds.save_to_disk(str(path))
    return ds


def test_audiobench_emotion_labels_from_answers_and_bad_records(tmp_path):
    from emoreason.data.importers.audiobench import import_audiobench

    src = tmp_path / "iemocap_emotion_recognition"
    make_audiobench(src, ["The speaker's tone sounds anger.", "The speaker seems happy.", "Frustration is evident.",
                          "I cannot tell.", "The emotion is sad."], junk={4})
    out = tmp_path / "out"
    s = import_audiobench(str(src), out, seed=1)
    rows = read_manifest(out / "manifest.jsonl")
    assert [r.label for r in rows] == ["angry", "happy", "frustrated"]
    assert all(r.task == "emotion" and r.split == "test" and r.duration == pytest.approx(0.5) for r in rows)
    assert rows[0].target == "The speaker's tone sounds anger."  # the corpus answer is kept as target
    assert rows[0].meta["corpus_answer"] == "The speaker's tone sounds anger."  # and in meta, for data teach --style label
    assert rows[0].meta["corpus_instruction"] == "What emotion?"
    assert {x.where for x in s.skipped} == {"record 3", "record 4"}
    assert "no emotion label" in s.skipped[0].reason and "not a readable audio" in s.skipped[1].reason
    wave, sr = sf.read(out / rows[0].audio)
    assert sr == SR and wave.ndim == 1  # resampled from 8 kHz
    # rerun: audio reused, manifest identical
    before = (out / "manifest.jsonl").read_bytes()
    s2 = import_audiobench(str(src), out, seed=1)
    assert s2.audio_reused == 3 and s2.audio_written == 0
    assert (out / "manifest.jsonl").read_bytes() == before


def test_audiobench_sentiment_sqa_asr_and_parquet(tmp_path):
    from emoreason.data.importers.audiobench import import_audiobench

    make_audiobench(tmp_path / "meld_sentiment_test", ["The sentiment is negative.", "positive"])
    s = import_audiobench(str(tmp_path / "meld_sentiment_test"), tmp_path / "o1")
    assert [r.label for r in read_manifest(s.manifest)] == ["negative", "positive"]

    make_audiobench(tmp_path / "spoken_squad_test", ["Paris", "1999"], instructions=["Where is it?", "When was it?"])
    rows = read_manifest(import_audiobench(str(tmp_path / "spoken_squad_test"), tmp_path / "o2").manifest)
    assert [r.task for r in rows] == ["sqa", "sqa"] and rows[0].target == "Paris"
    assert "Where is it?" in rows[0].instruction and rows[0].meta["question"] == "Where is it?"

    # a folder of parquet shards, task given explicitly
    ds = make_audiobench(tmp_path / "tmpds", ["hello world", "good morning"])
    (tmp_path / "shards").mkdir()
    ds.to_parquet(str(tmp_path / "shards" / "part-0.parquet"))
    rows = read_manifest(import_audiobench(str(tmp_path / "shards"), tmp_path / "o3", task="asr").manifest)
    assert [r.transcript for r in rows] == ["hello world", "good morning"] and rows[0].target == "hello world"

    # a saved DatasetDict: the split is picked by --hf-split, else "test"
    import datasets

    datasets.DatasetDict({"train": ds.select([0]), "test": ds}).save_to_disk(str(tmp_path / "librispeech_dd"))
    assert import_audiobench(str(tmp_path / "librispeech_dd"), tmp_path / "o4").utterances == 2
    assert import_audiobench(str(tmp_path / "librispeech_dd"), tmp_path / "o5", hf_split="train").utterances == 1
    with pytest.raises(UserError, match="available"):
        import_audiobench(str(tmp_path / "librispeech_dd"), tmp_path / "o6", hf_split="validation")


def test_audiobench_older_nested_layout(tmp_path):
    """Older AudioBench uploads nest fields: context {audio, text}, instruction {text}, answer {text}."""
    import datasets

    from emoreason.data.importers.audiobench import import_audiobench

    audio = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
    feats = datasets.Features({"context": {"audio": audio, "text": datasets.Value("string")},
                               "instruction": {"text": datasets.Value("string")}, "answer": {"text": datasets.Value("string")}})
    ds = datasets.Dataset.from_dict({
        "context": [{"audio": {"bytes": wav_bytes(300), "path": None}, "text": "the cat sat on the mat"}],
        "instruction": [{"text": "Where did the cat sit?"}], "answer": [{"text": "On the mat."}]}, features=feats)
    feats["context"]["audio"] = datasets.Audio(sampling_rate=SR)
    ds.cast(feats).save_to_disk(str(tmp_path / "slue_p2_sqa5_test"))
    rows = read_manifest(import_audiobench(str(tmp_path / "slue_p2_sqa5_test"), tmp_path / "o").manifest)
    assert len(rows) == 1 and rows[0].task == "sqa" and rows[0].target == "On the mat."
    assert rows[0].transcript == "the cat sat on the mat" and rows[0].meta["question"] == "Where did the cat sit?"


def test_audiobench_hub_offline_and_unknown_task(tmp_path, monkeypatch):
    from emoreason.data.importers.audiobench import import_audiobench, infer_task, short_name

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="save_to_disk"):
        import_audiobench("AudioLLMs/meld_emotion_test", tmp_path / "o")
    with pytest.raises(UserError, match="--task"):
        infer_task("someone/mystery_set")
    assert infer_task("AudioLLMs/librispeech_test_clean")[0] == "asr"
    assert infer_task(short_name("MERaLiON/Multitask-National-Speech-Corpus-v1", "SQA-PART3-Test"))[0] == "sqa"


# ---------------------------------------------------------------------------------------- MELD
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def test_meld_csv_with_mp4_and_wav_clips(tmp_path):
    from emoreason.data.importers.meld import import_meld

    clips = tmp_path / "clips"
    clips.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=0.6:sample_rate=44100",
                    "-ac", "2", "-c:a", "aac", str(clips / "dia0_utt0.mp4")], check=True)
    sf.write(clips / "dia0_utt1.wav", tone(400, 0.7, 22050), 22050)
    (clips / "dia1_utt0.mp4").write_bytes(b"not a video")
    csv_path = tmp_path / "test_sent_emo.csv"
    csv_path.write_text(
        MELD_HEADER
        + "0,Bad.,Joey,joy,positive,zero,0,3,19,a,b\n"  # line 2: bad Dialogue_ID
        + '1,"Oh my God,\nreally?",Monica,joy,positive,0,0,3,19,"00:14:38,127","00:14:40,127"\n'  # lines 3-4
        + "2,Fine.,Ross,anger,negative,0,1,3,19,a,b\n"
        + "3,Wow.,Joey,excited,positive,0,2,3,19,a,b\n"  # line 6: not a MELD label
        + "4,Hm.,Joey,sadness,negative,0,3,3,19,a,b\n"  # line 7: no clip
        + "5,Eh.,Joey,neutral,neutral,1,0,3,19,a,b\n",  # line 8: broken mp4
        encoding="utf-8",
    )
    s = import_meld([csv_path], clips, tmp_path / "out", tasks="emotion,sentiment,asr", workers=2)
    rows = read_manifest(s.manifest)
    assert [(r.task, r.label) for r in rows[:3]] == [("emotion", "happy"), ("sentiment", "positive"), ("asr", None)]
    assert rows[2].target == "Oh my God, really?" and rows[0].speaker == "meld/Monica" and rows[0].split == "test"
    assert {r.label for r in rows if r.task == "emotion"} == {"happy", "angry"}
    where = sorted(x.where for x in s.skipped)
    assert where == [f"{csv_path}:{n}" for n in (2, 6, 7, 8)]
    info = sf.info(str(s.manifest.parent / rows[0].audio))
    assert (info.samplerate, info.channels) == (16000, 1) and 0.5 < info.duration < 0.8


# ------------------------------------------------------------------------------------- IEMOCAP
def make_iemocap(root: Path) -> dict[str, str]:
    """Two sessions, two dialogs each, 4 turns per dialog; returns turn -> expected label."""
    expected = {}
    codes = ["neu", "ang", "xxx", "fru"]
    for s in (1, 2):
        for d, kind in enumerate(("impro01", "script01")):
            dialog = f"Ses0{s}F_{kind}"
            ev, tr = [], []
            wavdir = root / f"Session{s}" / "sentences" / "wav" / dialog
            wavdir.mkdir(parents=True)
            for k, code in enumerate(codes):
                gender = "FM"[k % 2]
                turn = f"{dialog}_{gender}{k:03d}"
                ev.append(f"[{k * 2.0:.4f} - {k * 2.0 + 1.5:.4f}]\t{turn}\t{code}\t[2.5000, 3.0000, 2.0000]")
                votes = ["Frustration; Anger;", "Anger;", "Neutral state;"] if code == "xxx" else ["Neutral;"]
                ev += [f"C-E{i + 1}:\t{v}\t()" for i, v in enumerate(votes)] + ["A-E1:\tval 3; act 2; dom  2;\t()", ""]
                tr.append(f"{turn} [{k * 2.0:08.4f}-{k * 2.0 + 1.5:08.4f}]: words of turn {k}.")
                sf.write(wavdir / f"{turn}.wav", tone(150 + 20 * k, 0.4), SR)
                expected[turn] = {"neu": "neutral", "ang": "angry", "xxx": "angry", "fru": "frustrated"}[code]
            ev.insert(0, "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n")
            if s == 2 and d == 1:
                ev.append("[9.0 - garbage")  # unparsable line
            for sub, lines in (("EmoEvaluation", ev), ("transcriptions", tr)):
                p = root / f"Session{s}" / "dialog" / sub / f"{dialog}.txt"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text("\n".join(lines) + "\n")
    (root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_M003.wav").unlink()  # missing audio
    del expected["Ses01F_impro01_M003"]
    return expected


def test_iemocap_labels_votes_transcripts_and_skips(tmp_path):
    from emoreason.data.importers.iemocap import import_iemocap

    expected = make_iemocap(tmp_path / "IEMOCAP")
    s = import_iemocap(tmp_path / "IEMOCAP", tmp_path / "out", tasks="emotion,sentiment,asr", seed=3)
    rows = read_manifest(s.manifest)
    emo = {r.id.split("/")[1]: r for r in rows if r.task == "emotion"}
    assert {k: r.label for k, r in emo.items()} == expected
    r = emo["Ses01F_impro01_F000"]
    assert r.transcript == "words of turn 0." and r.speaker == "iemocap/Ses01F" and r.meta["session"] == "Session1"
    assert emo["Ses02F_script01_M001"].speaker == "iemocap/Ses02M"
    sent = {r.id.split("/")[1]: r.label for r in rows if r.task == "sentiment"}
    assert sent["Ses01F_impro01_M001"] == "negative" and sent["Ses01F_impro01_F000"] == "neutral"
    reasons = " | ".join(f"{x.where}: {x.reason}" for x in s.skipped)
    assert "Ses01F_impro01_M003: audio" in reasons and "unparsable evaluation line" in reasons
    assert "Ses02F_script01.txt:" in reasons  # reported with file and line
    # 15 utterances, random 90/10 -> round(1.5) = 2 test
    assert sum(r.split == "test" for r in emo.values()) == 2

    s_drop = import_iemocap(tmp_path / "IEMOCAP", tmp_path / "out_drop", xxx="drop")
    assert s_drop.utterances == len(expected) - 4


def test_iemocap_speaker_and_session_disjoint(tmp_path):
    from emoreason.data.importers.iemocap import import_iemocap

    make_iemocap(tmp_path / "IEMOCAP")
    rows = read_manifest(import_iemocap(tmp_path / "IEMOCAP", tmp_path / "spk", split_by="speaker",
                                        test_fraction=0.25, seed=0).manifest)
    by_split: dict[str, set] = {}
    for r in rows:
        by_split.setdefault(r.split, set()).add(r.speaker)
    assert len(by_split["test"]) == 1 and not by_split["test"] & by_split["train"]
    rows = read_manifest(import_iemocap(tmp_path / "IEMOCAP", tmp_path / "ses", split_by="session",
                                        test_sessions=[2]).manifest)
    assert {r.meta["session"] for r in rows if r.split == "test"} == {"Session2"}
    assert {r.meta["session"] for r in rows if r.split == "train"} == {"Session1"}


def test_iemocap_exclude_manifest_by_audio_hash_and_utterance_id(tmp_path, monkeypatch):
    """AudioBench's test clips (imported by our audiobench importer) are left out of a raw import."""
    datasets = pytest.importorskip("datasets")
    from emoreason.data.importers.audiobench import import_audiobench
    from emoreason.data.importers.iemocap import import_iemocap

    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "IEMOCAP"
    expected = make_iemocap(root)
    wavs = {p.stem: p for p in sorted(root.glob("Session*/sentences/wav/*/*.wav"))}
    for i, path in enumerate(wavs.values()):  # the fixture repeats tones across dialogs: make every clip distinct
        sf.write(path, tone(110 + 13 * i, 0.4), SR)

    def flac(path: Path) -> bytes:  # the same samples in another lossless container
        buf = io.BytesIO()
        sf.write(buf, sf.read(path, dtype="int16")[0], SR, format="FLAC")
        return buf.getvalue()

    # AudioBench-style test set: two IEMOCAP clips (wav bytes as shipped, and re-encoded as FLAC), one
    # clip named only by its utterance id in other_attributes (audio differs), one clip IEMOCAP lacks
    contexts = [wavs["Ses01F_impro01_F000"].read_bytes(), flac(wavs["Ses02F_script01_M001"]), wav_bytes(900), wav_bytes(950)]
    others = [{"file": ""}, {"file": ""}, {"file": "Ses01F_script01_F002.wav"}, {"file": "elsewhere.wav"}]
    string = datasets.Value("string")
    feats = datasets.Features({"context": {"bytes": datasets.Value("binary"), "path": string}, "instruction": string,
                               "answer": string, "other_attributes": {"file": string}})
    ds = datasets.Dataset.from_dict({
        "context": [{"bytes": b, "path": None} for b in contexts], "instruction": ["What emotion?"] * 4,
        "answer": ["The speaker's emotion is neutral.", "Anger.", "The emotion is anger.", "Sad."],
        "other_attributes": others}, features=feats)
    ds.save_to_disk(str(tmp_path / "iemocap_emotion_test"))
    ab = import_audiobench(str(tmp_path / "iemocap_emotion_test"), tmp_path / "ab")

    s = import_iemocap(root, tmp_path / "out", exclude_manifest=ab.manifest)
    rows = read_manifest(s.manifest)
    gone = {"Ses01F_impro01_F000", "Ses02F_script01_M001", "Ses01F_script01_F002"}
    assert {r.id.split("/")[1] for r in rows} == set(expected) - gone
    assert {r.task for r in rows} == {"emotion"}  # the paper's task only, by default
    assert s.excluded == {"audio hash": 2, "utterance id": 1}
    assert not any((tmp_path / "out" / "wavs" / f"{turn}.wav").exists() for turn in gone)
    text = s.text()
    assert "excluded 3 utterance(s) listed in the exclude manifest (2 by audio hash, 1 by utterance id)" in text
    assert "3 of 4 clips found in this import; 1 not found" in text
    # excluded clips take no split places: 12 utterances, random 90/10 -> round(1.2) = 1 test
    assert sum(r.split == "test" for r in rows) == 1

    with pytest.raises(UserError, match="exclude-manifest .*no such file"):
        import_iemocap(root, tmp_path / "out2", exclude_manifest=tmp_path / "missing.jsonl")


# ------------------------------------------------------------------------------------ generic
def test_generic_csv_mapping_and_bad_rows(tmp_path):
    from emoreason.data.importers.generic import import_generic, parse_mapping

    (tmp_path / "audio").mkdir()
    for i in range(4):
        sf.write(tmp_path / "audio" / f"a{i}.wav", tone(200 + 30 * i, 0.3, 44100), 44100)
    table = tmp_path / "my corpus.csv"
    table.write_text("path,emotion,text,spk\n"
                     "audio/a0.wav,Joy,\"hello\nthere\",s1\n"
                     "audio/a1.wav,ANGER,go away,s2\n"
                     "audio/a2.wav,bananas,what,s1\n"  # unknown label
                     "audio/missing.wav,sad,oh no,s3\n"  # missing file
                     "audio/a3.wav,sadness,\"so, sad\",s3\n")
    s = import_generic(table, tmp_path / "out", mapping=parse_mapping("audio=path,label=emotion,transcript=text,speaker=spk"),
                       tasks="emotion,sentiment,asr")
    rows = read_manifest(s.manifest)
    assert [(r.task, r.label) for r in rows if r.task != "asr"] == [
        ("emotion", "happy"), ("sentiment", "positive"), ("emotion", "angry"), ("sentiment", "negative"),
        ("emotion", "sad"), ("sentiment", "negative")]
    assert rows[0].source == "my_corpus" and rows[0].speaker == "s1" and rows[0].split == "train"
    assert [x.where for x in s.skipped] == [f"{table}:5", f"{table}:6"]  # row 1 spans lines 2-3
    with pytest.raises(UserError, match="FIELD=COLUMN"):
        parse_mapping("audio")
    with pytest.raises(UserError, match="not in the table"):
        import_generic(table, tmp_path / "o2", mapping={"audio": "nope"})


def test_generic_jsonl_speaker_split(tmp_path):
    from emoreason.data.importers.generic import import_generic

    lines = []
    for i in range(12):
        sf.write(tmp_path / f"c{i}.wav", tone(300, 0.2), SR)
        lines.append(json.dumps({"audio": f"c{i}.wav", "emotion": ["neutral", "sad"][i % 2], "speaker": f"p{i % 6}"}))
    lines.insert(3, "{broken json")
    table = tmp_path / "t.jsonl"
    table.write_text("\n".join(lines) + "\n")
    s = import_generic(table, tmp_path / "out", mapping={}, split_by="speaker", test_fraction=0.2, dev_fraction=0.2, seed=5)
    rows = read_manifest(s.manifest)
    assert [x.where for x in s.skipped] == [f"{table}:4"]
    spk = {}
    for r in rows:
        spk.setdefault(r.split, set()).add(r.speaker)
    assert set(spk) == {"train", "dev", "test"}
    assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["dev"]) and not (spk["dev"] & spk["test"])
