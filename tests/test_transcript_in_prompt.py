"""Transcript in context ("transcribe, then reason", ``data.transcript_in_prompt``): the processor
renders the transcript after the audio with the loss mask still on the answer only; a tiny run
trained with the option saves it, and the engine renders its own transcript into the prompt."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emoreason.config import load_config
from emoreason.configs import config_path
from emoreason.errors import UserError
from emoreason.model.processing import AUDIO, AudioProcessor, FeatureSpec, build_tiny_tokenizer, transcript_context

WAVE = (0.1 * np.sin(np.arange(16_000) / 7)).astype(np.float32)  # (T,) 1 s


def _processor(transcript_in_prompt: bool) -> AudioProcessor:
    spec = FeatureSpec(kind="mel", num_tokens=10, num_mel_bins=80, dynamic_length=True)
    return AudioProcessor(build_tiny_tokenizer(), spec, None, "none", system_prompt="",
                          transcript_in_prompt=transcript_in_prompt)


def _parts(processor: AudioProcessor, batch: dict, row: int) -> tuple[str, str]:
    """(decoded prompt part, decoded answer part) of one right-padded training row."""
    ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row].bool()
    prompt = ids[mask & (labels == -100)].tolist()
    answer = labels[labels != -100].tolist()
    tok = processor.tokenizer
    return tok.decode(prompt, skip_special_tokens=False), tok.decode(answer, skip_special_tokens=False)


def test_transcript_is_rendered_after_the_audio_and_the_loss_stays_on_the_answer():
    target = 'The speaker sounds sad. The words "it is late" are plain, the voice is low.'
    prompts, targets = ["How does the speaker feel?"] * 2, [target] * 2
    with_ = _processor(True)(waves=[WAVE, WAVE], prompts=prompts, targets=targets, transcripts=["It is late.", None])
    without = _processor(False)(waves=[WAVE, WAVE], prompts=prompts, targets=targets, transcripts=["It is late.", None])

    prompt, answer = _parts(_processor(True), with_, 0)
    assert transcript_context("It is late.", prompts[0]) == 'Transcript: "It is late."\nHow does the speaker feel?'
    # after the audio, before the instruction
    assert prompt.index("<audio_end>") < prompt.index('Transcript: "It is late."\nHow does the speaker feel?')
    assert prompt.count(AUDIO) == _processor(True).num_audio_tokens(WAVE.size)
    # the loss mask: exactly the answer (+ end of turn), the same tokens as without the transcript
    assert answer == target + "<|end|>"
    assert _parts(_processor(False), without, 0)[1] == answer
    assert (with_["labels"][0] != -100).sum() == (without["labels"][0] != -100).sum()
    # a row without a transcript (asr, sqa) and a processor without the option render no transcript
    for processor, batch, row in ((_processor(True), with_, 1), (_processor(False), without, 0)):
        text, rest = _parts(processor, batch, row)
        assert "Transcript" not in text and rest == target + "<|end|>"
    # generation batches (no targets) carry the same prompt tokens as the training prompt part
    gen = _processor(True)(waves=[WAVE], prompts=prompts[:1], transcripts=["It is late."])
    assert gen["input_ids"][0][gen["attention_mask"][0].bool()].tolist() == \
        with_["input_ids"][0][(with_["labels"][0] == -100) & with_["attention_mask"][0].bool()].tolist()
    with pytest.raises(ValueError, match="1 transcripts"):
        _processor(True)(waves=[WAVE, WAVE], prompts=prompts, transcripts=["x"])


def test_the_option_is_saved_with_the_processor(tmp_path):
    _processor(True).save_pretrained(tmp_path / "on")
    assert AudioProcessor.from_pretrained(tmp_path / "on").transcript_in_prompt is True
    _processor(False).save_pretrained(tmp_path / "off")
    config = json.loads((tmp_path / "off" / "processor_config.json").read_text())
    del config["transcript_in_prompt"]  # a model saved before the option existed
    (tmp_path / "off" / "processor_config.json").write_text(json.dumps(config))
    assert AudioProcessor.from_pretrained(tmp_path / "off").transcript_in_prompt is False


def test_config_validates_the_option():
    base = ["data.train_manifest=dummy:8"]
    assert load_config(config_path("tiny"), base + ["data.transcript_in_prompt=true"]).data.transcript_in_prompt is True
    with pytest.raises(UserError, match="needs the asr task"):
        load_config(config_path("tiny"), base + ["data.transcript_in_prompt=true",
                                                 "data.task_groups.speech=[sqa]"])
    with pytest.raises(UserError, match="transcript_in_prompt"):
        load_config(config_path("tiny"), base + ["data.transcript_in_prompt=maybe"])


def test_tiny_run_trains_and_analyzes_with_the_transcript_in_context(tmp_path):
    from emoreason.inference.engine import Engine
    from emoreason.train import train

    overrides = ["data.train_manifest=dummy:16", "data.transcript_in_prompt=true", "train.schedule=joint",
                 "train.epochs=1", "train.max_steps=2", "train.save_every_steps=0"]
    result = train(config_path("tiny"), tmp_path / "run", overrides=overrides, cache_dir=tmp_path / "cache")
    saved = json.loads((result.final / "processor_config.json").read_text())
    assert saved["transcript_in_prompt"] is True

    engine = Engine.load(tmp_path / "run", device="cpu", dtype="float32")
    assert engine.processor.transcript_in_prompt is True
    # training recorded how long the clips were that it learned from: the engine's window for long audio
    assert saved["window_seconds"] == 4.0 == engine.window_seconds  # dummy clips are short: the 4 s floor
    clip = ("clip.wav", WAVE)
    [r] = engine.analyze([clip], max_new_tokens=4, quotes="free")
    assert r.ok and r.transcript is not None
    # the forced choice was scored on the prompt that holds the model's own transcript, as in training
    model, processor = engine.model, engine.processor
    from emoreason.labels import label_sentence

    sentences = [label_sentence("emotion", label) for label in engine.labels("emotion")]
    with torch.inference_mode():
        from emoreason.inference.generation import default_prompt

        prompt = default_prompt("emotion")
        with_t = processor(waves=[WAVE], prompts=[prompt], transcripts=[r.transcript.text])
        without = processor(waves=[WAVE], prompts=[prompt])
        p_with = torch.softmax(model.score_candidates(with_t, sentences).float(), -1)[0].numpy()
        p_without = torch.softmax(model.score_candidates(without, sentences).float(), -1)[0].numpy()
    assert list(r.scores.values()) == pytest.approx(p_with.tolist(), abs=1e-6)
    assert not np.allclose(p_with, p_without, atol=1e-6)  # the transcript changed what the model saw
    # asr is unchanged (its prompt never carries a transcript); label-only calls still transcribe first
    [asr] = engine.analyze([clip], task="asr", max_new_tokens=4)
    assert asr.transcript.text == r.transcript.text
    [fast] = engine.analyze([clip], max_new_tokens=0)
    assert fast.transcript is not None and fast.explanation == ""
