"""Transcripts from the speech encoder's own Whisper decoder (``transcript="whisper"``): word
timings on espeak-ng speech with known word boundaries, the encoder run once per batch, window
offsets for long audio, and the fallbacks when there is no decoder. The engine tests load a tiny
random LLM over the packaged whisper-tiny.en encoder (skipped where it is not installed)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emoreason.audio import SAMPLE_RATE, load_audio
from emoreason.errors import UserError
from emoreason.inference.engine import Engine
from emoreason.model.whisper_asr import FRAMES_PER_WINDOW, SHORT_WINDOW_FRAMES, dtw, trim_to_sound
from emoreason.testing.fixtures import speak, tone
from emoreason.weights import REGISTRY, is_installed

needs_tiny_en = pytest.mark.skipif(not is_installed(REGISTRY["whisper-tiny.en"]),
                                   reason=f"{REGISTRY['whisper-tiny.en'].pip_command} not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
WORDS = ["please", "open", "the", "window"]


def _brute_dtw_cost(cost: np.ndarray) -> float:
    n, f = cost.shape
    total = np.full((n + 1, f + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(n):
        for j in range(f):
            total[i + 1, j + 1] = cost[i, j] + min(total[i, j], total[i, j + 1], total[i + 1, j])
    return float(total[n, f])


def test_dtw_finds_the_cheapest_monotone_path():
    rng = np.random.default_rng(0)
    for _ in range(200):
        cost = np.round(rng.random((rng.integers(1, 6), rng.integers(1, 9))), 1)  # ties on purpose
        rows, cols = dtw(cost)
        assert (rows[0], cols[0]) == (0, 0) and (rows[-1], cols[-1]) == (cost.shape[0] - 1, cost.shape[1] - 1)
        steps = np.stack([np.diff(rows), np.diff(cols)], 1)
        assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(1) >= 1).all()
        assert cost[rows, cols].sum() == pytest.approx(_brute_dtw_cost(cost))


def test_trim_to_sound_drops_pauses_inside_word_spans():
    wave = np.zeros(2 * SAMPLE_RATE, np.float32)
    wave[int(0.5 * SAMPLE_RATE):int(0.9 * SAMPLE_RATE)] = tone(0.4)
    words = [{"text": "hi", "start": 0.0, "end": 1.5}, {"text": "uh", "start": 1.5, "end": 2.0}]
    trimmed = trim_to_sound(words, wave)
    assert trimmed[0] == {"text": "hi", "start": 0.5, "end": 0.9}
    assert trimmed[1] == words[1]  # no sound in its span: kept


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose speech encoder is the packaged whisper-tiny.en (frozen, 30 s windows) under a
    tiny random LLM; no emotion encoder."""
    from emoreason.config import EncoderConfig, LLMConfig, LoRAConfig, ModelConfig
    from emoreason.model.builder import build_model, save_pretrained

    if not is_installed(REGISTRY["whisper-tiny.en"]):
        pytest.skip(f"{REGISTRY['whisper-tiny.en'].pip_command} not installed")
    torch.manual_seed(0)
    cfg = ModelConfig(
        speech_encoder=EncoderConfig(type="whisper", path="packaged:whisper-tiny.en", num_tokens=100),
        emotion_encoder=None, fusion="none",
        llm=LLMConfig(path="builtin:tiny", init="random", dtype="float32"),
        lora=LoRAConfig(enabled=True, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )
    model, processor = build_model(cfg)
    out = tmp_path_factory.mktemp("whisper-run")
    save_pretrained(model, cfg, out / "final")
    processor.save_pretrained(out / "final")
    return out


@pytest.fixture(scope="module")
def engine(run_dir: Path) -> Engine:
    return Engine.load(run_dir, device="cpu")


@pytest.fixture(scope="module")
def phrase(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """WORDS spoken one by one by espeak-ng and joined with silences -> (wave, true word spans s)."""
    tmp = tmp_path_factory.mktemp("words")
    parts, spans, offset = [np.zeros(int(0.3 * SAMPLE_RATE), np.float32)], [], int(0.3 * SAMPLE_RATE)
    for i, (word, gap) in enumerate(zip(WORDS, (0.5, 0.35, 0.6, 0.4))):
        wave = load_audio(speak(word, tmp / f"{i}.wav"))
        loud = np.flatnonzero(np.abs(wave) > 0.02 * np.abs(wave).max())
        spans.append(((offset + loud[0]) / SAMPLE_RATE, (offset + loud[-1]) / SAMPLE_RATE))
        parts += [wave, np.zeros(int(gap * SAMPLE_RATE), np.float32)]
        offset += wave.size + parts[-1].size
    return np.concatenate(parts), spans


def _plain(word: str) -> str:
    return re.sub(r"[^a-z']", "", word.lower())


@needs_tiny_en
@needs_espeak
def test_whisper_words_follow_the_speech(engine, phrase):
    """auto picks Whisper; words come back in order, inside the clip, each on its spoken word."""
    wave, spans = phrase
    [r] = engine.analyze([("phrase.wav", wave)], max_new_tokens=4)
    assert engine.has_whisper and r.transcript.source == "whisper"
    words = r.transcript.words
    assert [_plain(w["text"]) for w in words] == WORDS, r.transcript.text
    starts, ends = [w["start"] for w in words], [w["end"] for w in words]
    assert all(0.0 <= s <= e <= r.duration for s, e in zip(starts, ends))
    assert starts == sorted(starts) and all(e <= s for e, s in zip(ends, starts[1:]))
    for w, (s, e) in zip(words, spans):  # within 60 ms of the true boundaries (20 ms frames)
        assert abs(w["start"] - s) <= 0.06 and abs(w["end"] - e) <= 0.06, (w, (s, e))
    # the explanation's quotes are held to this transcript (constrained by default)
    assert all(q.grounded for q in r.quotes)
    assert r.to_dict()["transcript"]["words"] == words


@needs_tiny_en
def test_encoder_runs_once_per_batch(engine):
    """Scoring, explanation and the Whisper decoder (or the model's ASR rows) share one encoder pass."""
    calls = []
    hook = engine.model.speech_encoder.encoder.conv1.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    try:
        clips = [("a.wav", tone(1.0, 150)), ("b.wav", tone(2.0, 220))]
        for transcript, explain in (("whisper", "forced"), ("model", "free"), ("none", "forced")):
            calls.clear()
            engine.analyze(clips, batch_size=2, max_new_tokens=3, transcript=transcript, explain=explain)
            assert calls == [2], (transcript, calls)  # one pass, over the two windows
    finally:
        hook.remove()


@pytest.mark.slow
@needs_tiny_en
@needs_espeak
def test_long_audio_words_are_in_file_time(engine, phrase):
    wave, spans = phrase
    start = 32.0 * SAMPLE_RATE
    long = np.zeros(int(start) + wave.size, np.float32)
    long[int(start):] = wave  # silence, then the phrase in the second window (30 s .. 36.9 s)
    [r] = engine.analyze([("long.wav", long)], task="asr", transcript="whisper")
    assert [(s.start, s.end) for s in r.segments][1][0] == 30.0
    words = r.segments[1].transcript.words
    assert [_plain(w["text"]) for w in words] == WORDS
    assert abs(words[0]["start"] - (32.0 + spans[0][0])) <= 0.06
    assert r.transcript.source == "whisper" and r.transcript.words[-len(words):] == words


def test_no_decoder_means_model_asr(tmp_path):
    """The tiny random encoder has no Whisper decoder: auto uses the model's ASR, whisper is refused."""
    from emoreason.testing.tiny import save_tiny_run

    small = Engine.load(save_tiny_run(tmp_path / "run"), device="cpu")
    assert not small.has_whisper
    [r] = small.analyze([("x.wav", tone(1.0))], max_new_tokens=3)
    assert r.transcript.source == "model-asr" and r.transcript.words == []
    with pytest.raises(UserError, match="transcript 'whisper' needs"):
        small.analyze([("x.wav", tone(1.0))], transcript="whisper")


def test_fine_tuned_or_random_encoders_have_no_decoder():
    from emoreason.model.whisper_asr import encoder_decoder_dir

    assert encoder_decoder_dir("whisper", "preset:whisper-test", "random", False) is None
    assert encoder_decoder_dir("hubert", "packaged:whisper-tiny.en", "pretrained", False) is None
    assert encoder_decoder_dir("whisper", "packaged:whisper-tiny.en", "pretrained", True) is None  # trained encoder


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng and sox")
@pytest.mark.skipif(not is_installed(REGISTRY["whisper-tiny.en"]), reason="packaged whisper-tiny.en not installed")
def test_a_full_window_of_speech_is_not_cut_to_one_word():
    """The page's 65 s example (espeak sentences back to back): greedy decoding without timestamps
    ended its second 30 s window after " I"; the window is decoded again with timestamps, and the
    repeat the timestamped decode adds past the window is cut."""
    from emoreason.audio import split_windows
    from emoreason.inference.server.examples import EXAMPLES, ExampleBank
    from emoreason.model.encoders import WhisperFrames, load_whisper_encoder
    from emoreason.model.whisper_asr import WhisperDecoderASR
    from emoreason.weights.resolve import resolve_packaged

    long = ExampleBank().clips()["long"]
    window = split_windows(load_audio(long.wav), cut="fixed")[1][2]  # the 30-60 s window that was cut
    path = resolve_packaged("whisper-tiny.en")
    asr = WhisperDecoderASR.load(path, WhisperFrames(load_whisper_encoder(path)).eval())
    found = asr.transcribe([window])[0]
    words = [_plain(w) for w in found.text.split()]
    said = {_plain(w) for _, text in EXAMPLES.values() for w in text.split()}
    assert 40 <= len(words) <= 90, found.text  # ~2.3 words a second of espeak speech; not one, not a repeat
    assert sum(w in said for w in words) >= 0.8 * len(words), found.text
    starts = [w["start"] for w in found.words]
    assert starts == sorted(starts) and starts[-1] <= 30.0


@needs_tiny_en
@needs_espeak
def test_word_probabilities_are_the_decoders_own(engine, phrase):
    """Each word's ``probability`` is in [0, 1] and is the least softmax probability of its tokens
    at the step greedy decoding picked them (read from ``generate``'s raw logits here)."""
    from transformers.modeling_outputs import BaseModelOutput

    from emoreason.model.whisper_asr import _words

    wave, _ = phrase
    asr = engine._whisper_asr()
    [found] = asr.transcribe([wave])
    assert [_plain(w["text"]) for w in found.words] == WORDS
    probs = [w["probability"] for w in found.words]
    assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in probs), probs
    with torch.inference_mode():
        frames = asr.encode([wave]).to(asr.dtype)
        out = asr.model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=frames), num_beams=1, do_sample=False,
                                 return_timestamps=False, max_new_tokens=50, return_dict_in_generate=True, output_logits=True)
    eot = asr.model.generation_config.eos_token_id
    picked = out.sequences[0].tolist()[-len(out.logits):]  # the tokens each logits row chose
    token_p = [float(torch.softmax(row[0].float(), -1)[t]) for row, t in zip(out.logits, picked) if t < eot]
    _, bounds = _words(asr.tokenizer, [t for t in picked if t < eot])
    expected = [min(token_p[a:b]) for a, b in bounds]
    assert probs == pytest.approx(expected, abs=2e-3)


@needs_tiny_en
@needs_espeak
def test_low_probability_words_are_never_quoted(engine, phrase, monkeypatch):
    """The tiny random LLM, pushed to open and close quotes, over the phrase's Whisper transcript
    with "open" made unsure: at threshold 0.5 no quote holds "open" (nor crosses it); with every
    word unsure no quote opens at all, and the answer is still written; at 0 "open" is quotable."""
    from transformers import LogitsProcessor

    from emoreason.text.quotes import normalize_quote

    wave, _ = phrase
    asr = engine._whisper_asr()
    real_transcribe, real_generate = asr.transcribe, engine.model.generate
    unsure: set[str] = set()

    def transcribe(waves, frames=None, **kw):
        found = real_transcribe(waves, frames, **kw)
        for t in found:
            t.words = [{**w, "probability": 0.1 if _plain(w["text"]) in unsure else 0.9} for w in t.words]
        return found

    tok = engine.processor.tokenizer
    quote, o = tok.convert_tokens_to_ids('"'), tok.convert_tokens_to_ids("o")  # byte tokens

    class PushQuotes(LogitsProcessor):
        """Pushes '"' and "o": quotes open, and start with "open" whenever that is allowed."""

        def __call__(self, input_ids, scores):
            scores = scores.clone()
            scores[:, quote] += 8.0
            scores[:, o] += 8.0
            return scores

    def generate(batch, max_new_tokens, **kw):
        return real_generate(batch, max_new_tokens, logits_processor=[PushQuotes(), *kw.pop("logits_processor", [])], **kw)

    monkeypatch.setattr(asr, "transcribe", transcribe)
    monkeypatch.setattr(engine.model, "generate", generate)
    clips = [(f"{i}.wav", wave * (0.5 + 0.25 * i)) for i in range(3)]

    def quoted(threshold: float) -> list[list[str]]:
        results = engine.analyze(clips, max_new_tokens=40, batch_size=3, explain="free", quote_min_probability=threshold)
        assert all(r.explanation for r in results)
        assert all(q.grounded for r in results for q in r.quotes)
        return [[normalize_quote(q.text) for q in r.quotes] for r in results]

    unsure.add("open")
    free = [q for qs in quoted(0.0) for q in qs]
    held = [q for qs in quoted(0.5) for q in qs]
    assert free and held, (free, held)
    assert any("open" in q.split() for q in free), free  # without a threshold the fake quotes it
    assert all(q in ("please", "the", "the window", "window") for q in held), held
    unsure.update(WORDS)
    assert quoted(0.5) == [[], [], []]


def _own_whisper(short_windows: bool = True):
    """tiny.en's transcriber with an encoder of its own (what dynamic-length models use)."""
    from emoreason.model.encoders import WhisperFrames, load_whisper_encoder
    from emoreason.model.whisper_asr import WhisperDecoderASR
    from emoreason.weights.resolve import resolve_packaged

    path = resolve_packaged("whisper-tiny.en")
    return WhisperDecoderASR.load(path, WhisperFrames(load_whisper_encoder(path)).eval(), shared=None,
                                  short_windows=short_windows)


@needs_tiny_en
@needs_espeak
def test_short_clips_are_transcribed_in_a_15_s_window(phrase):
    """A clip of at most 8 s is encoded in a 15 s window (1500 mel frames), a longer one in 30 s,
    each on its own: a clip's transcript is the same alone and beside a long clip."""
    wave, _ = phrase
    assert wave.size < 8 * SAMPLE_RATE
    long = np.concatenate([wave, np.zeros(int(1.0 * SAMPLE_RATE), np.float32), wave])  # > 8 s
    assert long.size > 8 * SAMPLE_RATE
    asr = _own_whisper()
    lengths: list[tuple[int, int]] = []
    hook = asr.encoder.encoder.conv1.register_forward_hook(lambda m, i, o: lengths.append((i[0].shape[0], i[0].shape[-1])))
    try:
        alone = asr.transcribe([wave])[0]
        assert lengths == [(1, 1500)]
        lengths.clear()
        both = asr.transcribe([wave, long])
        assert sorted(lengths) == [(1, 1500), (1, 3000)]
    finally:
        hook.remove()
    assert [_plain(w["text"]) for w in alone.words] == WORDS, alone.text
    assert both[0].text == alone.text and both[0].words == alone.words
    assert [_plain(w) for w in both[1].text.split()][:4] == WORDS, both[1].text  # tiny.en may skip the repeat
    assert all(w["end"] <= wave.size / SAMPLE_RATE + 0.02 for w in alone.words)


@needs_tiny_en
@needs_espeak
def test_the_window_mel_is_the_30_s_mel_cut_to_the_window(phrase):
    """``encode`` computes the log-mel of the clip padded to its window only; the frames are those
    of the 30 s log-mel cut to the window (the padding is silence, the clamp set by the speech)."""
    wave, _ = phrase
    asr = _own_whisper()
    waves = [wave, wave[: wave.size // 3], np.concatenate([wave, wave])]
    for window in (SHORT_WINDOW_FRAMES, FRAMES_PER_WINDOW):
        full = asr.features(waves, sampling_rate=SAMPLE_RATE, padding="max_length", return_tensors="pt").input_features
        with torch.inference_mode():
            expected, _ = asr.encoder(full[:, :, : 2 * window])
            got = asr.encode(waves, window)
        assert got.shape == expected.shape == (3, window, expected.shape[-1])
        assert torch.equal(got, expected)


@needs_tiny_en
@needs_espeak
def test_a_short_window_transcript_that_loops_is_read_again_in_30_s(phrase, monkeypatch):
    """A short-window transcript that reaches its token limit (a repetition loop; here the limit is
    made 2 tokens) is replaced by the clip's 30 s window transcript."""
    import emoreason.model.whisper_asr as whisper_asr

    wave, _ = phrase
    full = _own_whisper(short_windows=False).transcribe([wave])[0]
    monkeypatch.setattr(whisper_asr, "short_window_tokens", lambda w: 2)
    asr = _own_whisper()
    lengths: list[int] = []
    hook = asr.encoder.encoder.conv1.register_forward_hook(lambda m, i, o: lengths.append(i[0].shape[-1]))
    try:
        again = asr.transcribe([wave])[0]
    finally:
        hook.remove()
    assert lengths == [1500, 3000]
    assert again.text == full.text and again.words == full.words
