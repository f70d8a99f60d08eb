"""``emoreason.data.joined``: two clips of one speaker and one label become one more training clip."""
import numpy as np
import soundfile as sf

from emoreason.audio import SAMPLE_RATE, load_audio
from emoreason.data.joined import PAUSE_SECONDS, join_pairs


def _rows(tmp_path):
    rows = []
    for speaker, label, n in (("s1", "sad", 5), ("s1", "happy", 2), ("s2", "sad", 1)):
        for i in range(n):
            name = f"{speaker}{label}{i}"
            sf.write(tmp_path / f"{name}.wav", np.full(SAMPLE_RATE // 2 + 100 * i, 0.1 * (i + 1), np.float32), SAMPLE_RATE)
            rows.append({"id": f"c/{name}/emotion", "audio": f"{name}.wav", "task": "emotion", "speaker": speaker,
                         "label": label, "transcript": f"words {name}", "meta": {"voice": speaker}})
    rows.append({**rows[0], "id": "c/s1sad0/asr", "task": "asr"})  # other tasks are not joined
    return rows


def test_pairs_keep_speaker_label_and_both_clips(tmp_path):
    rows = _rows(tmp_path)
    joined = join_pairs(rows, tmp_path, tmp_path / "joined", seed=3, audio_prefix="joined/")
    # s1/sad: 5 clips -> 2 pairs (one left single); s1/happy: 1 pair; s2/sad: a single clip, no pair
    assert sorted((r["speaker"], r["label"]) for r in joined) == [("s1", "happy"), ("s1", "sad"), ("s1", "sad")]
    assert len({r["id"] for r in joined}) == 3 and all(r["task"] == "emotion" for r in joined)
    by_id = {r["id"]: r for r in rows}
    for r in joined:
        a, b = (by_id[i] for i in r["meta"]["joined"]["ids"])
        assert (a["speaker"], a["label"]) == (b["speaker"], b["label"]) == (r["speaker"], r["label"]) and a is not b
        wave = load_audio(tmp_path / r["audio"])
        wa, wb = load_audio(tmp_path / a["audio"]), load_audio(tmp_path / b["audio"])
        pause = wave.size - wa.size - wb.size
        assert PAUSE_SECONDS[0] * SAMPLE_RATE - 1 <= pause <= PAUSE_SECONDS[1] * SAMPLE_RATE
        np.testing.assert_allclose(wave[: wa.size], wa, atol=1e-6)
        np.testing.assert_allclose(wave[wa.size + pause:], wb, atol=1e-6)
        assert not wave[wa.size: wa.size + pause].any()
        assert r["transcript"] == f"{a['transcript']} {b['transcript']}" and r["duration"] == round(wave.size / SAMPLE_RATE, 4)


def test_seeded_shared_and_resumable(tmp_path):
    rows = _rows(tmp_path)
    first = join_pairs(rows, tmp_path, tmp_path / "j", seed=0)
    again = join_pairs(rows, tmp_path, tmp_path / "j", seed=0)  # files reused
    assert first == again
    # share 0.5: 2 of the 5 sad clips paired (1 pair), 1 of the 2 happy ones (no pair)
    assert len(join_pairs(rows, tmp_path, tmp_path / "half", share=0.5, seed=0)) == 1
    assert join_pairs(rows, tmp_path, tmp_path / "none", share=0.0) == []


def test_a_broken_clip_costs_its_pair_only(tmp_path, caplog):
    rows = _rows(tmp_path)
    (tmp_path / "s1happy1.wav").write_bytes(b"not audio")
    joined = join_pairs(rows, tmp_path, tmp_path / "j", seed=0)
    assert sorted(r["label"] for r in joined) == ["sad", "sad"]  # the happy pair is gone, the sad ones stay
    assert "s1happy1.wav" in caplog.text and "skipped" in caplog.text
