"""Label and explanation agree: the forced-choice label's sentence is the forced start of the
answer (``explain="forced"``), and ``consistent`` flags a text that commits to another label."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoreason.errors import UserError
from emoreason.inference.engine import Engine
from emoreason.inference.generation import consistency
from emoreason.inference.generation import append_tokens
from emoreason.labels import label_sentence
from emoreason.testing.fixtures import tone


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    from emoreason.testing.tiny import save_tiny_run

    return Engine.load(save_tiny_run(tmp_path_factory.mktemp("run")), device="cpu")


def test_forced_prefix_starts_the_explanation_and_is_consistent(engine):
    results = engine.analyze([("a.wav", tone(1.0, 150)), ("b.wav", tone(2.0, 260))], max_new_tokens=6,
                             transcript="none", batch_size=2)
    for r in results:
        assert r.explanation.startswith(label_sentence("emotion", r.label))
        assert len(r.explanation) > len(label_sentence("emotion", r.label))  # the model continued it
        assert r.consistent is True
    [s] = engine.analyze([("c.wav", tone(1.0))], task="sentiment", max_new_tokens=4, transcript="none")
    assert s.explanation.startswith(f"The speaker's sentiment is {s.label}.") and s.consistent is True


def test_crafted_disagreement_is_flagged(engine, monkeypatch):
    labels = engine.labels("emotion")
    angry = labels.index("angry")
    seen = []

    def fake_score(batch, candidates):
        logp = torch.full((batch["input_ids"].shape[0], len(candidates)), -9.0)
        logp[:, angry] = 0.0
        return logp

    def fake_generate(batch, max_new_tokens, **kw):
        seen.append(batch["input_ids"].shape)
        return ["The speaker sounds happy and cheerful."] * batch["input_ids"].shape[0]

    monkeypatch.setattr(engine.model, "score_candidates", fake_score)
    monkeypatch.setattr(engine.model, "generate", fake_generate)
    [free] = engine.analyze([("x.wav", tone(1.0))], explain="free", transcript="none")
    assert free.label == "angry" and free.explanation == "The speaker sounds happy and cheerful."
    assert free.consistent is False
    assert free.to_dict()["consistent"] is False
    [forced] = engine.analyze([("x.wav", tone(1.0))], transcript="none")
    # the fake ignores its prompt, so the forced start is followed by a contradiction: that
    # sentence is dropped (emoreason.text.agreement), the printed answer agrees with its label
    assert forced.explanation == "The speaker sounds angry."
    assert forced.consistent is True
    assert forced.explanation_trimmed == 1 and forced.to_dict()["explanation_trimmed"] == 1  # visible to users
    assert free.explanation_trimmed == 0  # free answers are never cut
    assert seen[1][1] > seen[0][1]  # the forced run's prompt rows carry the label sentence
    monkeypatch.setattr(engine.model, "generate", lambda batch, max_new_tokens, **kw: ["Hmm, hard to say."] * batch["input_ids"].shape[0])
    [unread] = engine.analyze([("x.wav", tone(1.0))], explain="free", transcript="none")
    assert unread.consistent is None


def test_label_only_has_no_consistency_and_bad_setting_is_refused(engine):
    [r] = engine.analyze([("x.wav", tone(1.0))], max_new_tokens=0)
    assert r.explanation == "" and r.consistent is None
    with pytest.raises(UserError, match="unknown explain setting"):
        engine.analyze([("x.wav", tone(1.0))], explain="loose")


@pytest.mark.parametrize("label,text,want", [
    ("angry", "The speaker sounds angry. Their voice is loud.", True),
    ("angry", "The speaker sounds frustrated.", True),  # near-synonym, as the evaluation reads it
    ("angry", "The speaker is not angry; they sound sad.", False),
    ("sad", 'They say "I am so happy" but the voice sounds sad.', True),  # quotes are what was said
    ("happy", "The speaker sounds neutral.", False),
    ("happy", "", None),
    ("happy", "I cannot tell from this.", None),
    ("neutral", "The tone is calm and even.", True),
])
def test_consistency_reads_the_text_like_the_evaluation(label, text, want):
    assert consistency(label, text, "emotion") is want


def test_consistency_of_sentiment_and_of_text_tasks():
    assert consistency("negative", "The speaker's sentiment is negative.", "sentiment") is True
    assert consistency("positive", "The speaker's sentiment is negative.", "sentiment") is False
    assert consistency(None, "The speaker sounds sad.", "sqa") is None


def test_appended_prefix_keeps_rows_independent(engine):
    """Rows with prefixes of different lengths, left-padded together, generate what each does alone."""
    tok = engine.model.tokenizer
    prefixes = [tok("The speaker sounds sad.", add_special_tokens=False)["input_ids"],
                tok("The speaker sounds surprised.", add_special_tokens=False)["input_ids"]]
    waves = [tone(1.0, 150), tone(1.5, 300)]
    prompt = "What emotion?"
    batch = engine.processor(waves=waves, prompts=[prompt] * 2)
    both = append_tokens(batch, prefixes, engine.processor.pad_token_id)
    assert both["input_ids"].shape[1] == batch["input_ids"].shape[1] + max(map(len, prefixes))
    assert bool(both["attention_mask"][:, -1].all())  # still a left-padded prompt batch
    for i, prefix in enumerate(prefixes):
        assert both["input_ids"][i, -len(prefix):].tolist() == prefix
        assert int(both["attention_mask"][i].sum()) == int(batch["attention_mask"][i].sum()) + len(prefix)
    with torch.inference_mode():
        together = engine.model.generate(both, max_new_tokens=5)
        alone = [engine.model.generate(append_tokens(engine.processor(waves=[w], prompts=[prompt]), [p],
                                                     engine.processor.pad_token_id), max_new_tokens=5)[0]
                 for w, p in zip(waves, prefixes)]
    assert together == alone
    assert append_tokens(batch, [[], []], 0) is batch  # nothing to add: unchanged


def test_long_audio_explanation_comes_from_a_window_with_the_clip_label(engine, monkeypatch):
    """The clip's explanation is taken from a window whose own label is the clip's label, even
    when a window with another label gives that label more (duration-weighted) support."""
    labels = engine.labels("emotion")

    def fake_score(batch, candidates):
        feats = batch["speech_features"]  # (B, n_mels, frames): the loud window has larger log-mels
        loud = feats.flatten(1).mean(1) > feats.flatten(1).mean()
        logp = torch.full((feats.shape[0], len(candidates)), -20.0)
        logp[loud, 0], logp[loud, 1], logp[loud, 2] = np.log(0.45), np.log(0.44), np.log(0.11)
        logp[~loud, 1] = 0.0
        return logp

    monkeypatch.setattr(engine.model, "score_candidates", fake_score)
    wave = np.concatenate([tone(30.0, amplitude=0.6), tone(10.0, amplitude=0.01)])
    [r] = engine.analyze([("long.wav", wave)], batch_size=2, max_new_tokens=3, transcript="none")
    assert [s.label for s in r.segments] == [labels[0], labels[1]]
    # label 1 overall: (30 * 0.44 + 10 * 1.0) / 40 = 0.58; support 13.2 (window 0) > 10 (window 1),
    # but window 0 is labelled 0 and its text says so: the explanation is window 1's
    assert r.label == labels[1]
    assert r.explanation == r.segments[1].explanation and r.consistent is True
    assert [s.consistent for s in r.segments] == [True, True]
