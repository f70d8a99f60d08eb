"""Long files are read window by window (``stream_audio`` -> ``stream_windows``, cue tracks measured
as the samples pass) and give the results the whole-clip path gives: the same windows, labels,
scores and cues as the clip handed over as one waveform, each window equal to analysing its piece
alone, and the clip's cues equal to measuring the whole decoded file at once."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from emoreason.audio import SAMPLE_RATE, AudioError, load_audio, save_audio, split_windows, stream_audio, stream_windows
from emoreason.cues import TrackStream, frame_tracks, measure_cues
from emoreason.testing.fixtures import speak, tone


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory):
    """(16 kHz path, 44.1 kHz stereo path): 90.7 s of espeak speech (two voices, pauses) tiled,
    ending in a 0.7 s sliver after the last full window."""
    d = tmp_path_factory.mktemp("long")
    parts = [load_audio(speak("I told you twice already, and you still did not listen.", d / "a.wav", pitch=30)),
             np.zeros(6000, np.float32),
             load_audio(speak("Well, that is wonderful news, thank you so much!", d / "b.wav", pitch=80, speed=210)),
             tone(0.8, 180, 0.2)]
    unit = np.concatenate(parts)
    wave = np.resize(unit, 3 * 30 * SAMPLE_RATE + int(0.7 * SAMPLE_RATE))
    save_audio(d / "long16k.wav", wave)
    up = soxr.resample(load_audio(d / "long16k.wav"), SAMPLE_RATE, 44100)
    sf.write(str(d / "long44k.wav"), np.stack([up, 0.5 * up], axis=1), 44100, subtype="PCM_16")
    return d / "long16k.wav", d / "long44k.wav"


def test_stream_equals_whole_file(long_clip):
    for path in long_clip:
        whole = load_audio(path)
        blocks = list(stream_audio(path))
        assert np.array_equal(np.concatenate(blocks), whole)
        streamed = list(stream_windows(iter(blocks)))
        split = split_windows(whole)
        assert [(s, e) for s, e, _ in streamed] == [(s, e) for s, e, _ in split]
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(streamed, split))
        # cut at pauses: 4 windows of at most 30 s, each cut in silence (the sliver dropped at 90 s)
        assert len(split) == 4 and all(e - s <= 30.0 for s, e, _ in split) and split[-1][1] == 90.7
        for _, end, _ in split[:-1]:
            at = int(end * SAMPLE_RATE)
            assert np.abs(whole[at - 800 : at + 800]).max() < 0.02, end


def test_track_stream_equals_one_pass(long_clip):
    wave = load_audio(long_clip[0])
    stream = TrackStream(SAMPLE_RATE)
    for block in np.split(wave, [7, 480_000, 480_100, 1_000_000]):  # odd block edges, one shorter than a frame
        stream.feed(block)
    for a, b in zip(stream.finish(), frame_tracks(wave, SAMPLE_RATE, block_frames=10**6)):
        np.testing.assert_array_equal(a, b)


def test_engine_streamed_file_equals_waveform_and_pieces(tiny_run, long_clip):
    from emoreason.inference.engine import Engine

    engine = Engine.load(tiny_run, device="cpu")
    path = long_clip[1]  # 44.1 kHz stereo: decoded, downmixed and resampled block by block
    wave = load_audio(path)
    kwargs = dict(max_new_tokens=0, transcript="none", batch_size=2)  # a batch straddles the two clips
    from_file, from_wave = engine.analyze([path, ("mem", wave)], **kwargs)
    a, b = from_file.to_dict(), from_wave.to_dict()
    assert a.pop("file") == str(path) and b.pop("file") == "mem"
    assert a == b
    assert len(a["segments"]) == 4 and a["duration"] == round(wave.size / SAMPLE_RATE, 3)
    assert a["cues"] == measure_cues(wave, SAMPLE_RATE, None)  # the whole decoded clip (the sliver included)
    pieces = engine.analyze([(f"w{i}", chunk) for i, (_, _, chunk) in enumerate(split_windows(wave))], **kwargs)
    for segment, piece in zip(a["segments"], pieces):
        # (batched differently here, so the scores may differ in the last bits of float32)
        assert segment["label"] == piece.label and segment["scores"] == pytest.approx(piece.scores, rel=1e-4, abs=1e-9)
        assert segment["cues"] == piece.cues  # a window's cues are its own, not the clip's


def test_damage_past_the_first_window_fails_only_that_file(tiny_run, tmp_path):
    """NaN samples in minute 1.5 of a float wav are found when that window is read: that file is
    the one-line error, the other file of the call still gets its result."""
    from emoreason.inference.engine import Engine

    bad = np.resize(tone(1.0, 150, 0.3), 100 * SAMPLE_RATE)
    bad[90 * SAMPLE_RATE] = np.nan
    sf.write(str(tmp_path / "bad.wav"), bad, SAMPLE_RATE, subtype="FLOAT")
    save_audio(tmp_path / "ok.wav", tone(2.0, 200, 0.3))
    with pytest.raises(AudioError, match="NaN"):
        list(stream_audio(tmp_path / "bad.wav"))
    results = Engine.load(tiny_run, device="cpu").analyze([tmp_path / "bad.wav", tmp_path / "ok.wav"],
                                                          max_new_tokens=0, transcript="none", batch_size=2)
    assert "NaN" in results[0].to_dict()["error"] and results[1].to_dict()["label"]
