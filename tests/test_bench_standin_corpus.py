"""benchmarks/standin_corpus.py: a tiny flite tree in the RAVDESS layout goes through the real
RAVDESS importer with the labels, speakers and statements it was written with."""
from __future__ import annotations

import shutil

import pytest

from emoreason.data.importers.ravdess import scan
from emoreason.testing.benchmarks import load_benchmark



@pytest.fixture(scope="module")
def bench():
    return load_benchmark("standin_corpus")  # it imports its sibling synth_transfer.py


def test_actors_follow_ravdess_numbering(bench):
    actors = bench.make_actors(12, espeak=False)
    numbers = [a.number for a in actors]
    assert len(set(numbers)) == 12 and all(1 <= n <= 24 for n in numbers)
    # odd male, even female: flite's slt is the female voice
    assert all((a.number % 2 == 0) == (a.voice == "slt") for a in actors)
    assert len({(a.voice, a.f0, a.stretch) for a in actors}) == 12  # every actor sounds different
    with pytest.raises(SystemExit, match="add --espeak"):
        bench.make_actors(13, espeak=False)
    assert len(bench.make_actors(13, espeak=True)) == 13


def test_strong_intensity_moves_away_from_neutral(bench):
    assert bench.shaped("neutral", True) == bench.shaped("neutral", False)
    normal, strong = bench.shaped("sad", False), bench.shaped("sad", True)
    assert strong["stretch"] > normal["stretch"] > 1.0 and strong["gain"] < normal["gain"] < 0.0


@pytest.mark.skipif(shutil.which("flite") is None or shutil.which("sox") is None, reason="needs flite and sox")
def test_tree_imports_as_ravdess(bench, tmp_path):
    tree = bench.main(["--out", str(tmp_path / "tree"), "--actors", "2", "--per-emotion", "2"])
    found = scan(tree)
    assert not found.skipped and len(found.clips) == 2 * 4 * 2
    assert {c.speaker for c in found.clips} == {"01", "02"}
    for label in ("neutral", "happy", "sad", "angry"):
        assert sum(c.label == label for c in found.clips) == 4
    assert {c.transcript for c in found.clips} <= set(bench.STATEMENTS.values())
    assert all(c.meta["gender"] == ("female" if c.speaker == "02" else "male") for c in found.clips)
    assert "NOT human speech" in (tree / "PROVENANCE.txt").read_text()
    before = {p: p.stat().st_mtime_ns for p in tree.rglob("*.wav")}
    bench.main(["--out", str(tree), "--actors", "2", "--per-emotion", "2"])  # a rerun reuses every wav
    assert {p: p.stat().st_mtime_ns for p in tree.rglob("*.wav")} == before


def test_emodb_speakers_keep_the_corpus_genders(bench):
    from emoreason.data.importers.emodb import SPEAKERS

    speakers = bench.emodb_speakers()
    assert sorted(f"{s.number:02d}" for s in speakers) == sorted(SPEAKERS)
    for s in speakers:
        assert ("+f" in s.voice) == (SPEAKERS[f"{s.number:02d}"] == "female") and s.voice.startswith("de+")


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng and sox")
def test_tree_imports_as_emodb(bench, tmp_path, monkeypatch):
    from emoreason.data.importers import emodb

    monkeypatch.setattr(bench, "EMODB_PER_SPEAKER", {"neutral": 1, "happy": 1, "sad": 1, "angry": 2})
    tree = bench.main(["--layout", "emodb", "--out", str(tmp_path / "tree")])
    found = emodb.scan(tree)
    assert not found.skipped and len(found.clips) == 10 * 5
    assert sum(c.label == "angry" for c in found.clips) == 20
    assert all(c.language == "de" and c.transcript in emodb.TEXTS.values() for c in found.clips)
    assert "NOT EmoDB" in (tree / "PROVENANCE.txt").read_text()
