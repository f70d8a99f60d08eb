"""Speaker normalisation of the emotion frames (emoreason/inference/speaker_norm.py): the statistics,
the model's per-row affine, the engine, `eval run --speaker-norm`, `analyze --speaker-norm` and
benchmarks/speaker_norm.py, on the tiny random model with real wav files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from emoreason.errors import UserError
from emoreason.inference.speaker_norm import MIN_STD, FrameStats


def _voice(f0: float, seconds: float, seed: int) -> np.ndarray:
    """A 16 kHz harmonic tone with a little noise (a crude voiced sound)."""
    t = np.arange(int(16000 * seconds)) / 16000
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * 0.1 + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def test_stats_and_affine_map_one_distribution_onto_another():
    rng = np.random.default_rng(0)
    a = rng.normal(3.0, 2.0, size=(4000, 3))
    b = rng.normal(-1.0, 0.5, size=(4000, 3))
    # each "clip" is one row here: its mean is the row and its mean square the row squared
    sa = FrameStats.of_moments(np.stack([a, a * a], axis=1))
    sb = FrameStats.of_moments(np.stack([b, b * b], axis=1))
    assert sa.clips == 4000 and sa.mean == pytest.approx([3, 3, 3], abs=0.1) and sa.std == pytest.approx([2, 2, 2], abs=0.1)
    scale, shift = sa.affine_to(sb)
    mapped = a * scale + shift
    assert mapped.mean(0) == pytest.approx(sb.mean, abs=1e-3) and mapped.std(0) == pytest.approx(sb.std, rel=1e-3)
    assert sb.affine_to(sb) == pytest.approx(np.stack([np.ones(3), np.zeros(3)]), abs=1e-6)  # onto itself: identity
    const = FrameStats.of_moments(np.ones((5, 2, 3)))  # a dimension that never moves: no division by zero
    assert (const.std == MIN_STD).all() and np.isfinite(const.affine_to(sb)).all()
    with pytest.raises(UserError, match="dimensions"):
        sa.affine_to(FrameStats.of_moments(np.ones((2, 2, 5))))
    with pytest.raises(ValueError):
        FrameStats.of_moments(np.ones((0, 2, 3)))


def test_the_affine_reaches_the_adapters_not_the_encoder_outputs():
    from emoreason.model.builder import build_model
    from emoreason.testing.tiny import tiny_model_config

    torch.manual_seed(0)
    model, processor = build_model(tiny_model_config(dynamic_length=True))
    model.eval()
    waves = [_voice(140, 1.0, 0), _voice(220, 1.5, 1)]
    batch = processor(waves=waves, prompts=["How does the speaker sound?"] * 2)
    with torch.inference_mode():
        raw_frames = model.encode(batch)["emotion_frames"]
        d = raw_frames.shape[-1]
        raw = model.embed(batch)
        model.emotion_frame_affine = torch.stack([torch.stack([torch.ones(d), torch.zeros(d)])] * 2)
        same = model.embed(batch)
        # per dimension (a uniform scale and shift would vanish in the adapter's LayerNorm)
        gen = torch.Generator().manual_seed(0)
        model.emotion_frame_affine = torch.stack([torch.stack([torch.ones(d), torch.zeros(d)]),
                                                  torch.stack([torch.rand(d, generator=gen) + 0.5,
                                                               torch.randn(d, generator=gen)])])
        moved = model.embed(batch)
        assert torch.equal(model.encode(batch)["emotion_frames"], raw_frames)  # encoder outputs stay raw
        doubled = {k: torch.cat([v, v]) if torch.is_tensor(v) else v for k, v in batch.items()}
        assert torch.allclose(model.embed(doubled)[2:], moved, atol=1e-5)  # 2B rows (e.g. ASR rows): repeated
        one_row = {k: v[:1] if torch.is_tensor(v) else v for k, v in batch.items()}
        with pytest.raises(ValueError, match="2 rows for a batch of 1"):
            model.embed(one_row)
        model.emotion_frame_affine = None
    assert torch.allclose(same, raw, atol=1e-6)
    assert torch.allclose(moved[0], raw[0], atol=1e-6) and not torch.allclose(moved[1], raw[1], atol=1e-3)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny saved run whose train_clips.json lists 6 real training wavs; 8 test wavs of 2 speakers."""
    from emoreason.testing.tiny import save_tiny_run
    from emoreason.train.contamination import record_training_clips

    root = tmp_path_factory.mktemp("speaker_norm")
    run = save_tiny_run(root / "run")
    train = []
    for i in range(6):
        path = root / f"train{i}.wav"
        sf.write(path, _voice(120 + 20 * i, 1.0, 100 + i), 16000)
        train.append((f"t{i}", path))
    record_training_clips(train, run / "final")
    rows = []
    for i in range(8):
        speaker, f0 = ("low", 100.0) if i < 4 else ("high", 260.0)
        path = root / f"test{i}.wav"
        sf.write(path, 0.5 * _voice(f0 + 5 * i, 1.0 + i / 8, i), 16000)
        rows.append({"id": f"r{i}", "audio": path.name, "task": "emotion", "label": ["angry", "sad", "happy", "neutral"][i % 4],
                     "speaker": speaker})
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, run


def test_engine_normalises_per_speaker_and_caches_the_training_stats(tiny_run):
    from emoreason.inference.engine import Engine
    from emoreason.inference.speaker_norm import STATS_FILE

    root, run = tiny_run
    engine = Engine.load(run)
    target = engine.training_frame_stats()
    assert target.clips == 6 and (run / "final" / STATS_FILE).is_file()
    from emoreason.inference.speaker_norm import training_record

    source = training_record(run / "final")[1]
    assert FrameStats.load(run / "final" / STATS_FILE, source).mean == pytest.approx(target.mean)
    assert FrameStats.load(run / "final" / STATS_FILE, "another run") is None  # trained again: measured again
    clips = [str(root / f"test{i}.wav") for i in range(4)]
    low = engine.speaker_stats(clips)
    assert low.clips == 4 and low.mean.shape == target.mean.shape

    def scores(**kw):  # log-probabilities per clip (the random model is sure of itself: compare logs)
        return [np.log([r.scores[k] for k in sorted(r.scores)]) for r in engine.iter_analyze(clips, max_new_tokens=0, **kw)]

    raw = scores()
    # (the random tiny model hardly listens to its one emotion token a clip: differences are small)
    assert np.allclose(scores(speaker_stats=target), raw, atol=1e-7)  # the training stats map onto themselves
    normed = scores(speaker_stats=low)
    assert np.abs(np.array(normed) - np.array(raw)).max() > 1e-6
    mixed = scores(speaker_stats=[low, None, low, None])  # None: that clip as recorded
    assert np.allclose(mixed[1], raw[1], atol=1e-7) and np.allclose(mixed[0], normed[0], atol=1e-7)
    with pytest.raises(UserError, match="4 sources need as many speaker statistics, got 2"):
        scores(speaker_stats=[low, low])
    (root / "junk.wav").write_bytes(b"junk")
    with pytest.raises(UserError, match="junk.wav"):
        engine.speaker_stats([str(root / "junk.wav")])


def test_training_clips_must_be_here(tiny_run, tmp_path):
    import shutil

    from emoreason.inference.engine import Engine
    from emoreason.train.contamination import record_training_clips

    root, run = tiny_run
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    (moved / "final" / "emotion_frame_stats.npz").unlink(missing_ok=True)
    (moved / "final" / "train_clips.json").unlink()
    with pytest.raises(UserError, match="train_clips.json is missing"):
        Engine.load(moved).training_frame_stats()
    gone = tmp_path / "gone.wav"
    sf.write(gone, _voice(150, 1.0, 7), 16000)
    record_training_clips([("g", gone)], moved / "final")
    measured = Engine.load(moved).training_frame_stats()  # measured on the one clip, cached
    assert measured.clips == 1
    gone.unlink()
    assert Engine.load(moved).training_frame_stats().mean == pytest.approx(measured.mean)  # the cache needs no audio
    record_training_clips([("g", root / "test0.wav")], moved / "final")  # "trained again" on another clip
    test0 = root / "test0.wav"
    again = Engine.load(moved).training_frame_stats()
    assert again.clips == 1 and again.mean != pytest.approx(measured.mean)  # the stale cache was not used
    record_training_clips([("g", test0)], moved / "final")
    (moved / "final" / "emotion_frame_stats.npz").unlink()
    data = test0.read_bytes()
    test0.rename(tmp_path / "away.wav")
    try:
        with pytest.raises(UserError, match="none of the 1 files"):
            Engine.load(moved).training_frame_stats()
    finally:
        (tmp_path / "away.wav").rename(test0)
    assert test0.read_bytes() == data


def test_eval_run_records_the_mode_and_needs_speakers(tiny_run, tmp_path):
    from emoreason.eval.run import model_predictions

    root, run = tiny_run
    out = tmp_path / "normed" / "predictions.jsonl"
    model_predictions(run, root / "test.jsonl", out, max_new_tokens=2, transcript="none", speaker_norm=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8 and all(r["speaker_norm"] is True for r in rows)
    from emoreason.eval.judges import make_judge
    from emoreason.eval.scoring import score_file

    metrics = score_file(out, out.parent, make_judge("offline"))
    assert metrics["tasks"]["emotion"]["speaker_norm"] == {"n": 8}
    assert "Speaker normalisation (--speaker-norm)" in (out.parent / "report.md").read_text().replace("`", "")
    plain = tmp_path / "plain" / "predictions.jsonl"
    model_predictions(run, root / "test.jsonl", plain, max_new_tokens=2, transcript="none")
    before = {r["id"]: r["model_scores"] for r in map(json.loads, plain.read_text().splitlines())}
    assert max(np.abs(np.log(list(r["model_scores"].values())) - np.log(list(before[r["id"]].values()))).max()
               for r in rows) > 1e-6
    with pytest.raises(UserError, match="--speaker-norm"):  # a resumed file keeps its mode
        model_predictions(run, root / "test.jsonl", plain, max_new_tokens=2, transcript="none", speaker_norm=True)
    lines = (root / "test.jsonl").read_text().splitlines()
    nameless = json.loads(lines[2])
    del nameless["speaker"]
    (tmp_path / "nameless.jsonl").write_text("\n".join(lines[:2] + [json.dumps(nameless)]) + "\n")
    for r in map(json.loads, lines[:2]):
        (tmp_path / r["audio"]).write_bytes((root / r["audio"]).read_bytes())
    (tmp_path / nameless["audio"]).write_bytes((root / nameless["audio"]).read_bytes())
    with pytest.raises(UserError, match="row r2 has none"):
        model_predictions(run, tmp_path / "nameless.jsonl", tmp_path / "n" / "predictions.jsonl", max_new_tokens=2,
                          transcript="none", speaker_norm=True)


def test_analyze_and_eval_command_lines(tiny_run, capsys):
    from emoreason.cli import main

    root, run = tiny_run
    clips = [str(root / f"test{i}.wav") for i in range(4)]
    assert main(["analyze", "--model", str(run), "--local", "--speaker-norm", "--max-new-tokens", "0", "--json",
                 *clips]) == 0
    captured = capsys.readouterr()
    assert "speaker normalisation over 4 file(s)" in captured.err and len(captured.out.splitlines()) == 4
    assert all(json.loads(line)["speaker_norm"] == {"clips": 4} for line in captured.out.splitlines())
    assert "fewer than" not in captured.err
    assert main(["analyze", "--model", str(run), "--local", "--speaker-norm", "--max-new-tokens", "0", clips[0]]) == 0
    assert "over 1 file(s) of one speaker (fewer than 4:" in capsys.readouterr().err
    assert main(["analyze", "--server", "http://127.0.0.1:9", "--speaker-norm", *clips]) != 0
    assert "not --server" in capsys.readouterr().err
    assert main(["eval", "run", "--cascade", "--manifest", str(root / "test.jsonl"), "--out", str(root / "x"),
                 "--speaker-norm"]) != 0
    assert "needs --model" in capsys.readouterr().err


def test_benchmark_whole_run(tiny_run, tmp_path, capsys):
    from emoreason.testing.benchmarks import load_benchmark

    root, run = tiny_run
    bench = load_benchmark("speaker_norm")
    bench.main(["--model", str(run), "--data", str(root / "test.jsonl"), "--json", str(tmp_path / "out.json")])
    out = capsys.readouterr().out
    assert "| heldout, raw | 8 | 2 |" in out and "| heldout, speaker-norm | 8 | 2 |" in out
    results = json.loads((tmp_path / "out.json").read_text())["results"]["heldout"]
    assert results["speakers"] == 2 and "delta" in results["speaker-norm"]
    assert "all sets pooled (n = 8)" in out
    with pytest.raises(SystemExit, match="nothing to measure"):
        bench.main(["--model", str(run)])
