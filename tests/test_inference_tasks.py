"""Every trained task at inference (engine + emoreason.inference.generation), on the tiny random
model: asr transcripts (stitched per window), sqa answers, the model-ASR transcript that emotion /
sentiment results carry, and the argument checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoreason.data.questions import ASR_POOL, EMOTION_POOL
from emoreason.errors import UserError
from emoreason.inference.engine import Engine
from emoreason.inference.generation import make_plan

SR = 16_000
QUESTION = "What does the speaker want?"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    from emoreason.testing.tiny import save_tiny_run

    return Engine.load(save_tiny_run(tmp_path_factory.mktemp("run")), device="cpu")


def tone(seconds: float, amp: float = 0.3, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def prompt_texts(engine: Engine, batch: dict) -> list[str]:
    """The rendered prompt of every row of a processor batch (specials dropped)."""
    return [engine.processor.tokenizer.decode(row, skip_special_tokens=True) for row in batch["input_ids"].tolist()]


@pytest.fixture
def fake_generate(engine, monkeypatch):
    """generate -> per row: "<loud|soft> words" for ASR prompts, "answer <loud|soft>" for the question,
    'E "quote"' otherwise; records the prompts it saw."""
    seen: list[list[str]] = []

    def generate(batch, max_new_tokens, **kw):
        prompts = prompt_texts(engine, batch)
        seen.append(prompts)
        loud = batch["speech_features"].flatten(1).mean(1)  # louder windows: larger log-mels
        out = []
        for p, level in zip(prompts, loud.tolist()):
            tag = "loud" if level > -1.0 else "soft"  # Whisper log-mel means: ~-0.4 to -0.7 loud, ~-1.4 soft
            if ASR_POOL[0] in p:
                out.append(f" {tag} words ")
            elif QUESTION in p:
                out.append(f"answer {tag}")
            else:
                out.append(f'It says "{tag}".')
        return out

    monkeypatch.setattr(engine.model, "generate", generate)
    return seen


def test_plan_prompts_match_the_training_pools():
    asr = make_plan("asr", [], None, None, 8, "model")
    assert asr.prompt == ASR_POOL[0] and asr.sentences == () and asr.transcript_prompt is None  # asr is the transcript
    sqa = make_plan("sqa", [], None, f"  {QUESTION} ", 8, "model")
    assert sqa.prompt == QUESTION and sqa.question == QUESTION  # SQA_POOL[0] is "{question}"
    assert sqa.transcript_prompt == ASR_POOL[0]
    assert make_plan("sqa", [], "Listen, then answer: {question}", QUESTION, 8, "none").prompt == f"Listen, then answer: {QUESTION}"
    emo = make_plan("emotion", ["angry", "sad"], None, None, 8, "model")
    assert emo.prompt == EMOTION_POOL[0] and emo.sentences == ("The speaker sounds angry.", "The speaker sounds sad.")
    assert emo.transcript_prompt == ASR_POOL[0]
    assert make_plan("emotion", ["angry"], None, None, 8, "none").transcript_prompt is None
    assert make_plan("emotion", ["angry"], None, None, 0, "model").transcript_prompt is None  # 0 tokens: no generation at all


@pytest.mark.parametrize("args,fragment", [
    (("sqa", None, None, 8, "model"), "needs a question"),
    (("sqa", None, "   ", 8, "model"), "needs a question"),
    (("sqa", None, "x" * 2001, 8, "model"), "at most 2000"),
    (("sqa", "Answer this.", QUESTION, 8, "model"), "must contain {question}"),
    (("emotion", None, QUESTION, 8, "model"), "only asked with task sqa"),
    (("asr", None, None, 0, "model"), "max_new_tokens must be >= 1"),
    (("emotion", None, None, 8, "spoken"), "unknown transcript setting"),
    (("emotion", None, None, 8, "whisper"), "needs a speech encoder that is a frozen, pretrained Whisper"),
    (("caption", None, None, 8, "model"), "unknown task"),
])
def test_plan_refuses_bad_arguments(args, fragment):
    task, prompt, question, tokens, transcript = args
    with pytest.raises(UserError, match=fragment):
        make_plan(task, [], prompt, question, tokens, transcript)


def test_bad_arguments_fail_before_any_clip_is_read(engine):
    def sources():
        raise AssertionError("a clip was read")
        yield  # pragma: no cover

    with pytest.raises(UserError, match="needs a question"):
        engine.iter_analyze(sources(), task="sqa")  # raised at the call, not at the first next()


def test_asr_returns_a_transcript(engine):
    results = engine.transcribe([("a.wav", tone(2.0)), ("b.wav", tone(1.0, freq=330))], max_new_tokens=5)
    for r in results:
        d = r.to_dict()
        assert d["task"] == "asr" and d["label"] is None and d["scores"] == {}
        assert d["explanation"] == "" and d["quotes"] == [] and d["answer"] is None and d["question"] is None
        assert isinstance(d["transcript"]["text"], str) and d["transcript"]["source"] == "model-asr"
        assert d["transcript"]["words"] == []
    assert [r.file for r in results] == ["a.wav", "b.wav"]


def test_asr_long_audio_is_stitched_in_window_order(engine, fake_generate):
    wave = np.concatenate([tone(30.0, amp=0.5), tone(15.0, amp=0.001)])  # 45 s: loud window, soft window
    [r] = engine.transcribe([("long.wav", wave)], batch_size=1, max_new_tokens=4)
    assert [(s.start, s.end) for s in r.segments] == [(0.0, 30.0), (30.0, 45.0)]
    assert [s.transcript.text for s in r.segments] == ["loud words", "soft words"]
    assert r.transcript.text == "loud words soft words" == " ".join(s.transcript.text for s in r.segments)
    assert all(s.label is None and s.answer is None for s in r.segments)
    assert all(len(prompts) == 1 and ASR_POOL[0] in prompts[0] for prompts in fake_generate)  # one row per window


def test_asr_long_audio_with_the_real_tiny_model(engine):
    [r] = engine.transcribe([("long.wav", tone(45.0))], batch_size=2, max_new_tokens=3)
    assert len(r.segments) == 2 and all(isinstance(s.transcript.text, str) for s in r.segments)
    assert r.transcript.text == " ".join(t for t in (s.transcript.text for s in r.segments) if t)


def test_sqa_requires_a_question_and_returns_an_answer(engine, fake_generate):
    with pytest.raises(UserError, match="needs a question"):
        engine.analyze([("a.wav", tone(1.0))], task="sqa")
    [r] = engine.answer([("a.wav", tone(1.0, amp=0.5))], QUESTION, max_new_tokens=4)
    d = r.to_dict()
    assert d["task"] == "sqa" and d["question"] == QUESTION and d["answer"] == "answer loud"
    assert d["label"] is None and d["explanation"] == ""
    assert d["transcript"] == {"text": "loud words", "source": "model-asr", "words": []}
    [prompts] = fake_generate  # question row and ASR row in one generate call
    assert QUESTION in prompts[0] and ASR_POOL[0] in prompts[1]


def test_sqa_long_audio_answers_per_window(engine, fake_generate):
    wave = np.concatenate([tone(30.0, amp=0.5), tone(15.0, amp=0.001)])
    [r] = engine.answer([("long.wav", wave)], QUESTION, transcript="none", max_new_tokens=4)
    assert [s.answer for s in r.segments] == ["answer loud", "answer soft"]
    assert r.answer == "answer loud\nanswer soft" and r.transcript is None


def test_real_sqa_answer_is_text(engine):
    [r] = engine.answer([("a.wav", tone(1.0))], QUESTION, max_new_tokens=3)
    assert isinstance(r.answer, str) and isinstance(r.transcript.text, str)


def test_emotion_carries_the_model_transcript(engine):
    [r] = engine.analyze([("a.wav", tone(2.0))], max_new_tokens=4, quotes="free")
    assert r.transcript is not None and r.transcript.source == "model-asr" and isinstance(r.transcript.text, str)
    assert r.answer is None and r.question is None and r.label in r.scores
    [off] = engine.analyze([("a.wav", tone(2.0))], max_new_tokens=4, transcript="none")
    [fast] = engine.analyze([("a.wav", tone(2.0))], max_new_tokens=0)
    assert off.transcript is None and fast.transcript is None and fast.explanation == ""
    # the ASR rows share the generate batch but not the scoring: same scores either way
    np.testing.assert_allclose(list(r.scores.values()), list(off.scores.values()), atol=1e-5)
    assert r.explanation == off.explanation  # greedy, same prompt row


def test_emotion_long_audio_transcript_and_cues(engine, fake_generate):
    wave = np.concatenate([tone(30.0, amp=0.5), tone(15.0, amp=0.001)])
    [r] = engine.analyze([("long.wav", wave)], task="sentiment", batch_size=2, max_new_tokens=4, quotes="free")
    [prompts] = fake_generate  # both windows, task rows then ASR rows, in one call (free quotes)
    assert len(prompts) == 4 and all(ASR_POOL[0] in p for p in prompts[2:]) and not any(ASR_POOL[0] in p for p in prompts[:2])
    # the task rows end with their window's forced-choice label sentence; the model continues it
    sentences = [f"The speaker's sentiment is {s.label}." for s in r.segments]
    assert all(p.endswith(sentence) for p, sentence in zip(prompts[:2], sentences))
    assert [s.explanation for s in r.segments] == [f'{sentences[0]} It says "loud".', f'{sentences[1]} It says "soft".']
    assert [s.transcript.text for s in r.segments] == ["loud words", "soft words"]
    assert r.transcript.text == "loud words soft words"
    # the transcript feeds the word counts of the cues (rates stay None where no speech is found)
    assert r.segments[0].cues["words"] == 2 and r.cues["words"] == 4


def test_fake_generate_is_told_apart_by_prompt(engine):
    """The prompt decoding the fakes above rely on: the tiny tokenizer keeps the instruction text."""
    batch = engine.processor(waves=[tone(1.0)], prompts=[ASR_POOL[0]])
    assert ASR_POOL[0] in prompt_texts(engine, batch)[0]
    assert torch.is_tensor(batch["speech_features"])
