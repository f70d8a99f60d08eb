"""Inference engine on the tiny random model: result schema, forced-choice scores, long audio,
per-file errors, batching across files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoreason.errors import UserError
from emoreason.inference.engine import Engine, resolve_model_dir
from emoreason.testing.tiny import tiny_model_config

SR = 16_000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with ``final/`` written by save_pretrained (tiny random model)."""
    from emoreason.testing.tiny import save_tiny_run

    return save_tiny_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def engine(run_dir: Path) -> Engine:
    return Engine.load(run_dir, device="cpu")


def tone(seconds: float, freq: float = 220.0, seed: int = 0, sr: int = SR) -> np.ndarray:
    """A voiced-like test signal (T,) float32 at ``sr``: a tone plus a little noise."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_load_accepts_run_dir_and_final(run_dir):
    assert resolve_model_dir(run_dir) == run_dir / "final"
    assert resolve_model_dir(run_dir / "final") == run_dir / "final"
    with pytest.raises(UserError, match="not a trained model"):
        resolve_model_dir(run_dir.parent)
    with pytest.raises(UserError, match="not found"):
        resolve_model_dir(run_dir / "nope")
    unfinished = run_dir.parent / "unfinished"
    (unfinished / "checkpoints" / "step-10").mkdir(parents=True)
    with pytest.raises(UserError, match="no final/ model yet"):
        resolve_model_dir(unfinished)


def test_result_schema(engine):
    [r] = engine.analyze([("clip.wav", tone(2.0))], max_new_tokens=6)
    assert r.ok
    d = r.to_dict()
    labels = tiny_model_config().labels  # what the saved config.yaml says
    assert set(d) == {"file", "model", "task", "duration", "label", "scores", "explanation", "quotes", "cues", "segments",
                      "transcript", "answer", "question",  # added for asr / sqa (tests/test_inference_tasks.py)
                      "consistent", "explanation_trimmed"}  # label / explanation agreement (tests/test_inference_explain.py)
    assert d["file"] == "clip.wav" and d["task"] == "emotion" and d["duration"] == 2.0
    assert d["label"] in labels
    assert list(d["scores"]) == labels
    assert sum(d["scores"].values()) == pytest.approx(1.0, abs=1e-9)
    assert all(0.0 <= p <= 1.0 for p in d["scores"].values())
    assert d["label"] == max(d["scores"], key=d["scores"].get)
    assert isinstance(d["explanation"], str) and isinstance(d["quotes"], list)
    assert d["segments"] == []
    assert d["cues"]["duration_s"] == pytest.approx(2.0)  # measured by teacher.cues


def test_sentiment_task_scores_sentiment_labels(engine):
    [r] = engine.analyze([("clip.wav", tone(1.0))], task="sentiment", max_new_tokens=0)
    assert list(r.scores) == ["positive", "negative", "neutral"] and r.label in r.scores
    assert r.explanation == ""  # max_new_tokens=0: label and scores only
    with pytest.raises(UserError, match="unknown task"):
        engine.analyze([("clip.wav", tone(1.0))], task="valence")


def test_scores_are_softmax_of_candidate_loglikelihoods(engine, monkeypatch):
    """The label is a forced choice: each candidate's label sentence scored, softmaxed."""
    seen = {}

    def fake_score(batch, candidates):
        seen["candidates"] = candidates
        logp = torch.full((batch["input_ids"].shape[0], len(candidates)), -10.0)
        logp[:, 3] = -1.0
        logp[:, 5] = -2.0
        return logp

    monkeypatch.setattr(engine.model, "score_candidates", fake_score)
    monkeypatch.setattr(engine.model, "generate", lambda batch, max_new_tokens, **kw: ['It says "I hate this" loudly.'] * batch["input_ids"].shape[0])
    [r] = engine.analyze([("x.wav", tone(1.0))])
    labels = tiny_model_config().labels  # what the saved config.yaml says
    assert seen["candidates"][3] == f"The speaker sounds {labels[3]}."
    want = torch.softmax(torch.tensor([-10.0] * 3 + [-1.0, -10.0, -2.0] + [-10.0] * (len(labels) - 6)), 0)
    assert r.label == labels[3]
    np.testing.assert_allclose(list(r.scores.values()), want.numpy(), rtol=1e-5)
    assert [q.text for q in r.quotes] == ["I hate this"] and r.quotes[0].start is None
    assert r.quotes[0].grounded  # the fake's ASR rows say the same sentence


def test_long_audio_windows_and_weighted_overall(engine, monkeypatch):
    # Window 0 -> label 0, windows 1 and 2 -> label 1, via the window's mean amplitude.
    def fake_score(batch, candidates):
        feats = batch["speech_features"]  # (B, n_mels, frames): louder windows have larger log-mels
        loud = feats.flatten(1).mean(1) > feats.flatten(1).mean()
        logp = torch.full((feats.shape[0], len(candidates)), -20.0)
        logp[loud, 0] = 0.0
        logp[~loud, 1] = 0.0
        return logp

    def fake_generate(batch, max_new_tokens, **kw):
        return [f'Window says "quote {i}".' for i in range(batch["input_ids"].shape[0])]

    monkeypatch.setattr(engine.model, "score_candidates", fake_score)
    monkeypatch.setattr(engine.model, "generate", fake_generate)
    wave = np.concatenate([tone(30.0) * 3, tone(30.0) * 0.2, tone(10.5) * 0.2])  # 70.5 s
    [r] = engine.analyze([("long.wav", wave)], batch_size=2)
    labels = tiny_model_config().labels  # what the saved config.yaml says
    assert r.duration == 70.5
    assert [(s.start, s.end) for s in r.segments] == [(0.0, 30.0), (30.0, 60.0), (60.0, 70.5)]
    assert [s.label for s in r.segments] == [labels[0], labels[1], labels[1]]
    # duration-weighted mean: label 1 holds 40.5 of 70.5 s
    assert r.label == labels[1]
    assert r.scores[labels[1]] == pytest.approx(40.5 / 70.5, abs=1e-6)
    assert r.scores[labels[0]] == pytest.approx(30.0 / 70.5, abs=1e-6)
    # quotes are placed in the window whose explanation quoted them
    assert {(q.start, q.end) for q in r.quotes} == {(0.0, 30.0), (30.0, 60.0), (60.0, 70.5)}
    assert all(s.cues["duration_s"] == pytest.approx(s.end - s.start) for s in r.segments)
    # a sliver under 1 s after a full window is not a window of its own
    [r2] = engine.analyze([("sliver.wav", tone(30.4))], max_new_tokens=0)
    assert [(s.start, s.end) for s in r2.segments] == [] and r2.duration == 30.4


def test_bad_inputs_become_errors_and_the_rest_is_processed(engine, tmp_path):
    import soundfile as sf

    good = tmp_path / "good.wav"
    sf.write(good, np.stack([tone(1.5, sr=44_100), tone(1.5, 330, sr=44_100)], 1), 44_100)  # stereo, 44.1 kHz
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(SR, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    sources = [str(good), str(junk), str(empty), str(nan), str(tmp_path / "missing.wav"), ("silent.wav", np.zeros(0, np.float32)), str(good)]
    results = engine.analyze(sources, batch_size=3, max_new_tokens=0)
    assert [r.ok for r in results] == [True, False, False, False, False, False, True]
    errors = [r.error for r in results if not r.ok]
    for msg, fragment in zip(errors, ["not a readable audio file", "empty", "NaN", "not found", "empty"]):
        assert fragment in msg and "\n" not in msg
    assert results[0].file == str(good) and results[0].duration == 1.5


def test_silence_is_refused_and_faint_sound_is_not(engine, tmp_path):
    import soundfile as sf

    long_silence = tmp_path / "muted.wav"
    sf.write(long_silence, np.zeros(40 * SR, np.float32), SR)  # two windows: checked as a stream
    short_silence = tmp_path / "short.wav"
    sf.write(short_silence, np.full(SR, 1e-4, np.float32), SR)  # -80 dBFS: dither, not sound
    faint = ("faint.wav", tone(1.0) / np.abs(tone(1.0)).max() * 10 ** (-50 / 20))  # peak -50 dBFS
    results = engine.analyze([("zeros.wav", np.zeros(SR, np.float32)), str(long_silence), str(short_silence), faint],
                             max_new_tokens=0)
    assert [r.ok for r in results] == [False, False, False, True]
    assert all("no sound to analyze" in r.error and "\n" not in r.error for r in results[:3])
    assert "digital silence" in results[0].error and "peak -80" in results[2].error  # 16-bit file: -80.8


def test_too_long_input_is_refused(run_dir):
    short_engine = Engine.load(run_dir, device="cpu", max_seconds=5.0)
    [r] = short_engine.analyze([("big.wav", tone(6.0))])
    assert not r.ok and "over the 5.0 s limit" in r.error


def test_batching_across_files_matches_one_by_one(engine):
    waves = [("a", tone(1.0, 200, 1)), ("b", tone(2.5, 300, 2)), ("c", tone(0.7, 400, 3))]
    batched = engine.analyze(waves, batch_size=3, max_new_tokens=0)
    single = [engine.analyze([w], batch_size=1, max_new_tokens=0)[0] for w in waves]
    assert [r.file for r in batched] == ["a", "b", "c"]
    for rb, rs in zip(batched, single):
        np.testing.assert_allclose(list(rb.scores.values()), list(rs.scores.values()), atol=1e-4)


def test_clips_asked_different_questions_share_a_batch(engine):
    """One prompt (sqa: one question) per source: one batch gives each clip what a call of its own gives."""
    waves = [("a", tone(1.0, 200, 1)), ("b", tone(2.0, 300, 2)), ("c", tone(1.5, 250, 3))]
    prompts = ["How does the speaker feel?", "What emotion is in this voice?", "How does the speaker feel?"]
    batched = engine.analyze(waves, prompt=prompts, batch_size=3, max_new_tokens=4, transcript="none")
    for wave, prompt, rb in zip(waves, prompts, batched):
        [rs] = engine.analyze([wave], prompt=prompt, batch_size=1, max_new_tokens=4, transcript="none")
        assert rb.file == rs.file and rb.label == rs.label and rb.explanation == rs.explanation
        np.testing.assert_allclose(list(rb.scores.values()), list(rs.scores.values()), atol=1e-4)
    questions = ["Who is speaking?", "Where are they?", "What happened?"]
    answers = engine.analyze(waves, task="sqa", question=questions, batch_size=3, max_new_tokens=4)
    for wave, question, rb in zip(waves, questions, answers):
        [rs] = engine.analyze([wave], task="sqa", question=question, batch_size=1, max_new_tokens=4)
        assert rb.to_dict()["question"] == question and rb.answer == rs.answer
    with pytest.raises(UserError, match="3 sources need as many prompts"):
        engine.analyze(waves, prompt=prompts[:2])
