"""Importers of the file-named emotional-speech corpora (RAVDESS, CREMA-D, TESS, EmoDB, SAVEE, ESD,
MSP-Podcast) on small fixture trees built here in each release's naming scheme, with short
synthesised waves at the corpora's own sample rates; and the speaker folds they share."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoreason.data.importers.corpora import KINDS, import_corpus
from emoreason.data.importers.named import SplitOptions
from emoreason.data.importers.splits import fold_splits, speaker_folds
from emoreason.data.manifest import read_manifest
from emoreason.errors import UserError


def wave(path: Path, freq: float = 180.0, sr: int = 48_000, seconds: float = 0.25) -> Path:
    """A short voiced-like wave (fundamental + harmonics) at the corpus's sample rate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
    sf.write(path, (0.2 * x / np.abs(x).max()).astype(np.float32), sr)
    return path


def emotion_rows(out: Path) -> list:
    return [r for r in read_manifest(out / "manifest.jsonl") if r.task == "emotion"]


def speaker_split(rows) -> dict[str, set[str]]:
    by: dict[str, set[str]] = {}
    for r in rows:
        by.setdefault(r.speaker, set()).add(r.split)
    return by


# ------------------------------------------------------------------------------------- folds
def test_speaker_folds_partition_and_seed():
    spk = [f"{i:02d}" for i in range(1, 25)]
    groups = speaker_folds(spk, 6, seed=0)
    assert sorted(s for g in groups for s in g) == sorted(spk) and {len(g) for g in groups} == {4}
    assert speaker_folds(list(reversed(spk)), 6, seed=0) == groups  # input order does not matter
    assert speaker_folds(spk, 6, seed=1) != groups
    # every speaker is tested exactly once over the folds; dev speakers never overlap test
    tested = Counter()
    for fold in range(1, 7):
        split = fold_splits(spk, 6, fold, seed=0, dev_speakers=2)
        tested.update(s for s, v in split.items() if v == "test")
        assert Counter(split.values()) == {"test": 4, "dev": 2, "train": 18}
    assert set(tested.values()) == {1} and len(tested) == 24
    with pytest.raises(UserError, match="more than"):
        speaker_folds(["a", "b"], 3, seed=0)
    with pytest.raises(UserError, match="--fold"):
        fold_splits(spk, 6, 7, seed=0)


# ----------------------------------------------------------------------------------- RAVDESS
def make_ravdess(root: Path) -> None:
    for actor in ("01", "02", "03", "04"):
        for emo, intensity, stmt in (("01", "01", "01"), ("02", "01", "02"), ("05", "02", "02"), ("03", "01", "01")):
            wave(root / f"Actor_{actor}" / f"03-01-{emo}-{intensity}-{stmt}-01-{actor}.wav", 150 + int(emo) * 20)
    wave(root / "Actor_01" / "03-02-05-01-01-01-01.wav")  # song: not the speech part
    wave(root / "Actor_01" / "03-01-05-01-01-01.wav")  # six fields
    wave(root / "Actor_02" / "03-01-09-01-01-01-02.wav")  # emotion 09 does not exist


def test_ravdess(tmp_path):
    make_ravdess(tmp_path / "rav")
    s = import_corpus("ravdess", tmp_path / "rav", tmp_path / "out", options=SplitOptions(folds=2, fold=1),
                      tasks="emotion,asr")
    rows = emotion_rows(tmp_path / "out")
    assert Counter(r.label for r in rows) == {"neutral": 4, "angry": 4, "happy": 4}  # calm left out
    assert s.left_out == {"emotion 'calm': not in our label vocabulary": 4, "song (vocal channel 02): the speech part only": 1}
    assert {r.transcript for r in rows} == {"Kids are talking by the door.", "Dogs are sitting by the door."}
    angry = next(r for r in rows if r.id == "ravdess/03-01-05-02-02-01-03/emotion")
    assert angry.speaker == "ravdess/03" and angry.meta["intensity"] == "strong" and angry.meta["gender"] == "male"
    assert angry.meta["code"] == "angry" and angry.meta["transcript_source"] == "corpus"
    # speakers kept whole; 2 folds of 4 actors: 2 test, 2 train
    by = speaker_split(rows)
    assert all(len(v) == 1 for v in by.values()) and Counter(v.pop() for v in by.values()) == {"test": 2, "train": 2}
    # malformed names: one line each, by path, and the count
    assert sorted(Path(k.where).name for k in s.skipped) == ["03-01-05-01-01-01.wav", "03-01-09-01-01-01-02.wav"]
    text = s.text()
    assert "skipped 2 input record(s)" in text and "03-01-09-01-01-01-02.wav: unknown emotion code" in text
    assert "leave-2-speakers-out fold 1 of 2" in text
    asr = [r for r in read_manifest(tmp_path / "out/manifest.jsonl") if r.task == "asr"]
    assert len(asr) == 12 and all(r.target == r.transcript for r in asr)
    # 48 kHz release audio -> 16 kHz mono wavs
    assert sf.info(str(tmp_path / "out" / rows[0].audio)).samplerate == 16_000
    # calm counted as neutral on request
    s2 = import_corpus("ravdess", tmp_path / "rav", tmp_path / "out2", options=SplitOptions(folds=2),
                       scan_options={"calm_as": "neutral"})
    assert s2.labels["emotion"]["neutral"] == 8


# ----------------------------------------------------------------------------------- CREMA-D
def test_cremad(tmp_path):
    root = tmp_path / "AudioWAV"
    for actor in (1001, 1002, 1003, 1004, 1005):
        for sent, emo, lvl in (("DFA", "ANG", "XX"), ("IEO", "HAP", "HI"), ("TSI", "NEU", "XX"), ("WSI", "DIS", "LO")):
            wave(root / f"{actor}_{sent}_{emo}_{lvl}.wav", sr=16_000)
    (root / "1005_MTI_SAD_XX.wav").write_bytes(b"")  # the release's empty file
    wave(root / "1001_XYZ_ANG_XX.wav", sr=16_000)  # unknown sentence code
    wave(root / "1001_DFA_ANG.wav", sr=16_000)  # a field missing
    s = import_corpus("cremad", tmp_path, tmp_path / "out", options=SplitOptions(folds=5, fold=3, seed=4))
    rows = emotion_rows(tmp_path / "out")
    assert len(rows) == 20 and Counter(r.label for r in rows)["disgusted"] == 5
    r = next(r for r in rows if r.id.startswith("cremad/1002_DFA_ANG"))
    assert r.transcript == "Don't forget a jacket." and r.meta["level"] == "unspecified" and r.label == "angry"
    assert r.speaker == "cremad/1002"
    assert sorted(Path(k.where).name for k in s.skipped) == ["1001_DFA_ANG.wav", "1001_XYZ_ANG_XX.wav", "1005_MTI_SAD_XX.wav"]
    by = speaker_split(rows)
    assert Counter(next(iter(v)) for v in by.values()) == {"test": 1, "train": 4}
    # the same seed and fold give the same test speaker as the splitter itself
    expect = [s for s, v in fold_splits([str(a) for a in range(1001, 1006)], 5, 3, 4).items() if v == "test"]
    assert [k for k, v in by.items() if v == {"test"}] == [f"cremad/{expect[0]}"]


# -------------------------------------------------------------------------------------- TESS
def test_tess(tmp_path):
    for spk, folder in (("OAF", "OAF_angry"), ("YAF", "YAF_pleasant_surprised")):
        for word in ("back", "dog"):
            wave(tmp_path / "tess" / folder / f"{spk}_{word}_{'angry' if spk == 'OAF' else 'ps'}.wav", sr=24_414)
    wave(tmp_path / "tess" / "OAF_neutral" / "OAF_chair_neutral.wav", sr=24_414)
    wave(tmp_path / "tess" / "OAF_neutral" / "OAF_chair_bored.wav", sr=24_414)
    s = import_corpus("tess", tmp_path / "tess", tmp_path / "out", options=SplitOptions(folds=2, seed=0))
    rows = emotion_rows(tmp_path / "out")
    assert {(r.id, r.label, r.transcript) for r in rows if "dog" in r.id} == {
        ("tess/OAF_dog_angry/emotion", "angry", "Say the word dog."), ("tess/YAF_dog_ps/emotion", "surprised", "Say the word dog.")}
    assert len(s.skipped) == 1 and s.skipped[0].where.endswith("OAF_chair_bored.wav")
    by = speaker_split(rows)  # two speakers: one trains, the other is the test set
    assert sorted(next(iter(v)) for v in by.values()) == ["test", "train"]


# ------------------------------------------------------------------------------------- EmoDB
def make_emodb(root: Path) -> None:
    for spk in ("03", "08", "09", "10", "11", "12"):
        for text, emo in (("a01", "W"), ("a02", "L"), ("b10", "F"), ("a05", "N"), ("b01", "T"), ("a04", "A")):
            wave(root / "wav" / f"{spk}{text}{emo}a.wav", sr=16_000)
    wave(root / "wav" / "04a01Fa.wav", sr=16_000)  # no speaker 04 in EmoDB
    wave(root / "wav" / "03a01Xa.wav", sr=16_000)  # no emotion X
    wave(root / "wav" / "03a01Fa_copy.wav", sr=16_000)


def test_emodb_labels_transcripts_and_emotion_filter(tmp_path):
    make_emodb(tmp_path / "emodb")
    s = import_corpus("emodb", tmp_path / "emodb", tmp_path / "out", options=SplitOptions(folds=3, fold=2),
                      emotions=["neutral", "happy", "sad", "angry"], tasks="emotion,sentiment")
    rows = emotion_rows(tmp_path / "out")
    assert Counter(r.label for r in rows) == {"angry": 6, "happy": 6, "neutral": 6, "sad": 6}
    assert s.left_out == {"emotion 'boredom (Langeweile)': not in our label vocabulary": 6,
                          "fearful: not among the chosen emotions": 6}
    r = next(r for r in rows if r.id == "emodb/10b10Fa/emotion")
    assert r.transcript == "Die wird auf dem Platz sein, wo wir sie immer hinlegen."
    assert r.meta["language"] == "de" and r.meta["gender"] == "male" and r.meta["code"] == "happiness (Freude)"
    sentiment = {x.id: x.label for x in read_manifest(tmp_path / "out/manifest.jsonl") if x.task == "sentiment"}
    assert sentiment["emodb/10b10Fa/sentiment"] == "positive" and sentiment["emodb/10a01Wa/sentiment"] == "negative"
    assert sorted(Path(k.where).name for k in s.skipped) == ["03a01Fa_copy.wav", "03a01Xa.wav", "04a01Fa.wav"]
    by = speaker_split(rows)
    assert all(len(v) == 1 for v in by.values()) and Counter(next(iter(v)) for v in by.values()) == {"test": 2, "train": 4}
    # explicit test speakers + a dev speaker, and a rerun reuses every wav
    s2 = import_corpus("emodb", tmp_path / "emodb", tmp_path / "out",
                       options=SplitOptions(test_speakers=("03", "08"), dev_speakers=1, seed=1))
    assert s2.audio_written == 6 and s2.audio_reused == 24  # only the fearful clips are new (no --emotions now)
    by = speaker_split(emotion_rows(tmp_path / "out"))
    assert by["emodb/03"] == by["emodb/08"] == {"test"} and sum(v == {"dev"} for v in by.values()) == 1
    with pytest.raises(UserError, match="not in this corpus"):
        import_corpus("emodb", tmp_path / "emodb", tmp_path / "out3", options=SplitOptions(test_speakers=("99",)))


def test_emobox_folds_are_read_from_its_fold_files(tmp_path):
    make_emodb(tmp_path / "emodb")
    fold = tmp_path / "EmoBox" / "data" / "emodb" / "fold_2"
    fold.mkdir(parents=True)
    listed = {"test": ["03a01Wa", "08b10Fa", "16a01Wa"], "train": ["09a05Na"]}  # 16a01Wa: not in our copy
    for split, stems in listed.items():
        (fold / f"emodb_{split}_fold_2.jsonl").write_text("".join(
            json.dumps({"key": f"emodb-{s}", "wav": f"downloads/emodb/wav/{s}.wav", "emo": "x"}) + "\n" for s in stems))
    s = import_corpus("emodb", tmp_path / "emodb", tmp_path / "out",
                      options=SplitOptions(split_by="emobox", fold=2, emobox=tmp_path / "EmoBox"))
    rows = emotion_rows(tmp_path / "out")
    assert sorted(r.id.split("/")[1] for r in rows if r.split == "test") == ["03a01Wa", "08b10Fa"]
    assert "left out 6 input(s): 6 x emotion 'boredom (Langeweile)': not in our label vocabulary" in s.text()
    assert "EmoBox fold 2 (3 test, 0 valid clips listed; 1 of the held-out ones not in this import)" in s.text()
    with pytest.raises(UserError, match="no fold_3 folder"):
        import_corpus("emodb", tmp_path / "emodb", tmp_path / "o2",
                      options=SplitOptions(split_by="emobox", fold=3, emobox=tmp_path / "EmoBox"))


# ------------------------------------------------------------------------------------- SAVEE
def test_savee_both_layouts(tmp_path):
    for spk in ("DC", "JE"):
        for name in ("a01", "sa02", "su15", "n30"):
            wave(tmp_path / "savee" / "AudioData" / spk / f"{name}.wav", sr=44_100)
    for name in ("JK_h03", "KL_d07", "KL_f01"):
        wave(tmp_path / "savee" / "flat" / f"{name}.wav", sr=44_100)
    wave(tmp_path / "savee" / "flat" / "KL_a16.wav", sr=44_100)  # anger goes to 15
    wave(tmp_path / "savee" / "AudioData" / "XX" / "a01.wav", sr=44_100)  # not a SAVEE speaker
    s = import_corpus("savee", tmp_path / "savee", tmp_path / "out", options=SplitOptions(folds=4, fold=1))
    rows = emotion_rows(tmp_path / "out")
    labels = {r.id.split("/")[1]: r.label for r in rows}
    assert labels["DC_sa02"] == "sad" and labels["JE_su15"] == "surprised" and labels["KL_d07"] == "disgusted"
    assert labels["JK_h03"] == "happy" and labels["DC_n30"] == "neutral" and all(r.transcript is None for r in rows)
    assert sorted(Path(k.where).name for k in s.skipped) == ["KL_a16.wav", "a01.wav"]
    assert Counter(next(iter(v)) for v in speaker_split(rows).values()) == {"test": 1, "train": 3}


# --------------------------------------------------------------------------------------- ESD
def make_esd(root: Path) -> None:
    texts = {1: "The nine the eggs.", 351: "Chat with the others.", 1401: "Go to the window."}
    for spk in ("0011", "0012", "0013"):
        lines = [f"{spk}_{n:06d}\t{t}\t{e}" for (n, t), e in zip(texts.items(), ("Neutral", "Angry", "Surprise"))]
        lines.append(f"{spk}_000702\tA line for the happy clip.\tHappy")
        (root / spk).mkdir(parents=True)
        (root / spk / f"{spk}.txt").write_text("\n".join(lines) + "\nbroken line\n", encoding="utf-8")
        wave(root / spk / "Neutral" / "train" / f"{spk}_000001.wav", sr=16_000)
        wave(root / spk / "Angry" / "evaluation" / f"{spk}_000351.wav", sr=16_000)
        wave(root / spk / "Surprise" / "test" / f"{spk}_001401.wav", sr=16_000)
        wave(root / spk / "Sad" / f"{spk}_000702.wav", sr=16_000)  # the txt says Happy
    (root / "0001").mkdir()
    (root / "0001" / "0001.txt").write_bytes("0001_000001\t打远一看\t中立\n".encode("utf-16"))
    wave(root / "0001" / "Neutral" / "train" / "0001_000001.wav", sr=16_000)


def test_esd(tmp_path):
    make_esd(tmp_path / "ESD")
    s = import_corpus("esd", tmp_path / "ESD", tmp_path / "out", options=SplitOptions(folds=3, fold=1), tasks="emotion,asr")
    rows = emotion_rows(tmp_path / "out")
    assert len(rows) == 9 and Counter(r.label for r in rows) == {"neutral": 3, "angry": 3, "surprised": 3}
    r = next(r for r in rows if r.id == "esd/0012_001401/emotion")
    assert r.transcript == "Go to the window." and r.meta["official_split"] == "test" and r.speaker == "esd/0012"
    assert s.left_out == {"language zh (speakers 0001-0010): not chosen": 1}
    where = sorted(k.where.replace(str(tmp_path), "") for k in s.skipped)
    assert sum("0012.txt:5" in w for w in where) == 1  # the broken line, by file:line
    assert sum(w.endswith("_000702.wav") for w in where) == 3  # folder Sad, txt Happy
    assert Counter(next(iter(v)) for v in speaker_split(rows).values()) == {"test": 1, "train": 2}
    # ESD's own folders: sentences split, every speaker in every split
    # the Mandarin speakers on request: their UTF-16 text file names the emotion in Chinese
    zh = import_corpus("esd", tmp_path / "ESD", tmp_path / "zh", options=SplitOptions(split_by="official"),
                       scan_options={"languages": ("zh",)})
    (r,) = emotion_rows(tmp_path / "zh")
    assert (r.label, r.transcript, r.meta["language"], r.split) == ("neutral", "打远一看", "zh", "train") and not zh.skipped
    import_corpus("esd", tmp_path / "ESD", tmp_path / "off", options=SplitOptions(split_by="official"))
    assert {r.id.split("/")[1][5:]: r.split for r in emotion_rows(tmp_path / "off")} == {
        "000001": "train", "000351": "dev", "001401": "test"}


# ------------------------------------------------------------------------------- MSP-Podcast
def test_msppodcast(tmp_path):
    root = tmp_path / "MSP"
    (root / "Labels").mkdir(parents=True)
    rows = [("MSP-PODCAST_0001_0001.wav", "A", "12", "Train"), ("MSP-PODCAST_0001_0002.wav", "N", "12", "Development"),
            ("MSP-PODCAST_0002_0001.wav", "H", "Unknown", "Test1"), ("MSP-PODCAST_0003_0001.wav", "C", "13", "Train"),
            ("MSP-PODCAST_0003_0002.wav", "S", "13", "Test2"), ("MSP-PODCAST_0004_0001.wav", "Q", "14", "Train"),
            ("MSP-PODCAST_0009_0001.wav", "A", "14", "Train")]
    lines = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    for name, emo, spk, split in rows:
        lines.append(f"{name},{emo},4.2,3.0,4.0,{spk},Female,{split}")
        if not name.startswith("MSP-PODCAST_0009"):  # the last row's audio is missing
            wave(root / "Audios" / name, sr=16_000)
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
    (root / "Transcripts").mkdir()
    (root / "Transcripts" / "MSP-PODCAST_0001_0001.txt").write_text("well that is just great\n")
    s = import_corpus("msppodcast", root, tmp_path / "out")
    got = {r.id.split("/")[1]: (r.label, r.split, r.speaker) for r in emotion_rows(tmp_path / "out")}
    assert got == {"MSP-PODCAST_0001_0001": ("angry", "train", "msppodcast/12"),
                   "MSP-PODCAST_0001_0002": ("neutral", "dev", "msppodcast/12"),
                   "MSP-PODCAST_0002_0001": ("happy", "test", "msppodcast/unknown"),
                   "MSP-PODCAST_0003_0002": ("sad", "test", "msppodcast/13")}
    first = next(r for r in emotion_rows(tmp_path / "out") if r.id.endswith("0001_0001/emotion"))
    assert first.transcript == "well that is just great" and first.meta["EmoAct"] == "4.2"
    assert s.left_out == {"emotion 'C': not in our label vocabulary": 1}
    assert sorted(k.where.rsplit(":", 1)[1] for k in s.skipped) == ["7", "8"]  # bad EmoClass; missing audio
    # speaker folds: the unknown speaker's clip always trains
    import_corpus("msppodcast", root, tmp_path / "spk", options=SplitOptions(folds=2, fold=1))
    assert {r.speaker: r.split for r in emotion_rows(tmp_path / "spk")}["msppodcast/unknown"] == "train"


# ------------------------------------------------------------------------- transcribe / CLI
def test_transcriber_fills_missing_transcripts_once(tmp_path):
    """SAVEE has no per-file transcripts: the transcriber (here: one that reports each wave's
    length, so the test can check which clip got which text) fills them, cached for reruns."""
    for name in ("a01", "h02"):
        wave(tmp_path / "savee" / "DC" / f"{name}.wav", sr=44_100, seconds=0.2 if name == "a01" else 0.4)
    wave(tmp_path / "savee" / "JE" / "n01.wav", sr=44_100)
    calls: list[int] = []

    def transcriber(waves: list[np.ndarray]) -> list[str]:
        calls.append(len(waves))
        return [f"{len(w) / 16000:.1f} seconds" for w in waves]

    opts = SplitOptions(test_speakers=("JE",))
    import_corpus("savee", tmp_path / "savee", tmp_path / "out", options=opts, tasks="emotion,asr",
                  transcriber=transcriber, transcriber_name="fake-asr")
    rows = {r.id: r for r in read_manifest(tmp_path / "out/manifest.jsonl")}
    assert rows["savee/DC_a01/emotion"].transcript == "0.2 seconds" and rows["savee/DC_h02/asr"].target == "0.4 seconds"
    assert rows["savee/DC_a01/emotion"].meta["transcript_source"] == "fake-asr" and calls == [3]
    s = import_corpus("savee", tmp_path / "savee", tmp_path / "out", options=opts, transcriber=transcriber,
                      transcriber_name="fake-asr")
    assert calls == [3] and "transcribed 3 clip(s)" in s.text()  # from OUT/transcripts.json


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_packaged_whisper_transcribes_savee(tmp_path):
    """The real path of ``--transcribe packaged:whisper-tiny.en`` on espeak speech."""
    from emoreason.data_cli import make_transcriber
    from emoreason.testing.fixtures import speak
    from emoreason.weights import REGISTRY, is_installed

    if not is_installed(REGISTRY["whisper-tiny.en"]):
        pytest.skip("whisper-tiny.en is not installed")
    (tmp_path / "savee" / "DC").mkdir(parents=True)
    speak("The kitchen window is open.", tmp_path / "savee" / "DC" / "n01.wav")
    wave(tmp_path / "savee" / "JE" / "n01.wav")
    transcriber, name = make_transcriber("packaged:whisper-tiny.en")
    import_corpus("savee", tmp_path / "savee", tmp_path / "out", options=SplitOptions(test_speakers=("JE",)),
                  transcriber=transcriber, transcriber_name=name)
    text = next(r for r in emotion_rows(tmp_path / "out") if r.id == "savee/DC_n01/emotion").transcript
    assert "kitchen" in text.lower() and "window" in text.lower()


def test_cli_import_and_errors(tmp_path, capsys):
    from emoreason.cli import main

    make_emodb(tmp_path / "emodb")
    code = main(["data", "import", "emodb", str(tmp_path / "emodb"), "--out", str(tmp_path / "out"), "--folds", "3",
                 "--fold", "3", "--emotions", "neutral,happy,sad,angry", "--tasks", "emotion,asr"])
    out = capsys.readouterr().out
    assert code == 0 and "skipped 3 input record(s)" in out and "leave-2-speakers-out fold 3 of 3" in out
    assert out.rstrip().endswith("3 input(s) skipped (listed above); the rest was imported")
    assert len(emotion_rows(tmp_path / "out")) == 24
    assert main(["data", "import", "tess", str(tmp_path / "emodb"), "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err
    assert "nothing to import for tess" in err and "not a TESS name" in err
    assert main(["data", "import", "emodb", str(tmp_path / "nope"), "--out", str(tmp_path / "o3")]) == 1
    assert "corpus folder not found" in capsys.readouterr().err
    assert set(KINDS) == {"ravdess", "cremad", "tess", "emodb", "savee", "esd", "msppodcast"}
