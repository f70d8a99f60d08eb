"""`eval run` with the engine's transcript and quote modes: a tiny random LLM over the packaged
whisper-tiny.en speech encoder (real Whisper transcripts of espeak-ng clips), pushed to open quotes
often. Constrained answers quote only the engine's transcript; free ones do not; every row records
its mode and transcript; a resumed file keeps its mode; scores carry both groundedness measures,
the disagreement rate and the transcriber's WER."""
import json
import shutil
from pathlib import Path

import pytest

from emoreason.errors import UserError
from emoreason.eval.judges import make_judge
from emoreason.eval.run import GenerationMode, model_predictions
from emoreason.inference.generation import QUOTE_MIN_PROBABILITY
from emoreason.eval.scoring import score_file
from emoreason.testing.fixtures import speak
from emoreason.text.quotes import extract_quotes, is_transcript_span
from emoreason.weights import REGISTRY, is_installed

pytestmark = [
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
    pytest.mark.skipif(not is_installed(REGISTRY["whisper-tiny.en"]), reason="packaged whisper-tiny.en not installed"),
]
CLIPS = [("c1", "I hate this, stop doing that right now", "angry"),
         ("c2", "Thank you so much, this is wonderful", "happy"),
         ("c3", "The meeting starts at three", "neutral")]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for cid, text, label in CLIPS:
        speak(text, root / f"{cid}.wav")
        rows.append({"id": cid, "audio": f"{cid}.wav", "task": "emotion", "label": label, "transcript": text,
                     "instruction": "What emotion do you hear?", "split": "test"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The real engine; its generate pushes '"' up (the constraint, when on, runs after the push),
    so the untrained model quotes in most answers and the test sees what the constraint does."""
    import torch
    from transformers import LogitsProcessor

    from emoreason.inference.engine import Engine
    from emoreason.testing.tiny import save_tiny_whisper_run

    engine = Engine.load(save_tiny_whisper_run(tmp_path_factory.mktemp("run")), device="cpu")
    quote = engine.processor.tokenizer.convert_tokens_to_ids('"')

    class PushQuotes(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            scores = scores.clone()
            scores[:, quote] += 6.0
            return scores

    real = engine.model.generate
    engine.calls = []  # per generate call: the class names of the processors the engine passed

    def generate(batch, max_new_tokens, **kw):
        given = kw.pop("logits_processor", [])
        engine.calls.append([type(p).__name__ for p in given])
        return real(batch, max_new_tokens, logits_processor=[PushQuotes(), *given], **kw)

    engine.model.generate = generate
    return engine


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_constrained_quotes_are_grounded_and_recorded(manifest, engine, tmp_path):
    out = tmp_path / "constrained" / "predictions.jsonl"
    model_predictions("runs/x", manifest, out, max_new_tokens=16, engine=engine, batch_size=3)  # eval run's defaults
    rows = _rows(out)
    assert [r["id"] for r in rows] == ["c1", "c2", "c3"]
    quotes = [(r, q) for r in rows for q in extract_quotes(r["prediction"])]
    assert quotes, [r["prediction"] for r in rows]
    for r, q in quotes:  # every quote is a span of the transcript the engine generated with
        assert is_transcript_span(q, r["engine_transcript"]["text"]), (q, r["engine_transcript"])
    for r in rows:
        assert (r["transcript_mode"], r["quotes_mode"], r["explain"]) == ("auto", "constrained", "free")
        assert r["engine_transcript"]["source"] == "whisper" and r["engine_transcript"]["text"]
        assert "consistent" in r and r["transcript"] == dict((c, t) for c, t, _ in CLIPS)[r["id"]]
    metrics = score_file(out, tmp_path / "constrained", make_judge("offline"), bootstrap=50, report=True)
    emo = metrics["tasks"]["emotion"]
    q = emo["quotes"]
    assert q["mode"] == "constrained" and q["judged_against"] == "said"
    assert q["min_probability"] == QUOTE_MIN_PROBABILITY  # the engine's default, recorded per row
    assert q["groundedness_engine"] == 100.0 and q["n_engine"] == q["n_quoted"] > 0
    assert 0.0 <= q["groundedness"] <= 100.0
    # whisper tiny.en on clear espeak speech: few errors; the CI brackets the value
    t = emo["transcriber"]
    assert t["source"] == "whisper" and t["n"] == 3 and t["wer"] < 40
    assert t["ci"]["wer"]["low"] <= t["wer"] <= t["ci"]["wer"]["high"]
    a = emo["agreement"]
    assert a["n"] == 3 and a["disagree"] == sum(r["consistent"] is False for r in rows)
    report = (tmp_path / "constrained" / "report.md").read_text()
    assert "vs engine transcript" in report and "transcriber WER" in report and "whisper" in report


def test_free_quotes_are_not_held(manifest, engine, tmp_path):
    """--quotes free: the engine generates without the constraint, still with its transcript."""
    out = tmp_path / "free.jsonl"
    engine.calls.clear()
    model_predictions("runs/x", manifest, out, max_new_tokens=4, engine=engine, quotes="free", limit=2)
    assert engine.calls and all("QuoteConstraint" not in names for names in engine.calls)
    rows = _rows(out)
    assert {r["quotes_mode"] for r in rows} == {"free"} and all(r["engine_transcript"]["text"] for r in rows)
    engine.calls.clear()
    model_predictions("runs/x", manifest, tmp_path / "held.jsonl", max_new_tokens=4, engine=engine, limit=2)
    assert any("QuoteConstraint" in names for names in engine.calls)


def test_resume_keeps_the_mode(manifest, engine, tmp_path):
    out = tmp_path / "p.jsonl"
    model_predictions("runs/x", manifest, out, max_new_tokens=4, engine=engine, limit=2)
    calls = len(engine.calls)
    model_predictions("runs/x", manifest, out, max_new_tokens=4, engine=engine, limit=2)
    assert len(engine.calls) == calls and len(_rows(out)) == 2  # nothing regenerated
    before = out.read_text()
    with pytest.raises(UserError, match="--quotes constrained.*not --transcript auto --quotes free"):
        model_predictions("runs/x", manifest, out, max_new_tokens=4, engine=engine, quotes="free")
    with pytest.raises(UserError, match="--transcript none"):
        model_predictions("runs/x", manifest, out, max_new_tokens=4, engine=engine, transcript="none")
    with pytest.raises(UserError, match="not .*--quote-min-probability 0.99;"):  # another threshold: another mode
        model_predictions("runs/x", manifest, out, max_new_tokens=4, engine=engine, quote_min_probability=0.99)
    assert out.read_text() == before and len(engine.calls) == calls  # refused before generating, nothing lost
    model_predictions("runs/x", manifest, out, max_new_tokens=4, engine=engine)  # same mode: the third row
    assert [r["id"] for r in _rows(out)] == ["c1", "c2", "c3"]


def test_rows_from_before_modes_count_as_the_papers_protocol(tmp_path):
    legacy = {"id": "c1", "task": "emotion", "prediction": "x", "label": "angry"}
    assert GenerationMode.of_row(legacy) == GenerationMode.make("none")
    assert GenerationMode.make("none").quotes == "free" and GenerationMode.make("model").quotes == "constrained"
    with pytest.raises(UserError, match="needs a transcript"):
        GenerationMode.make("none", "constrained")
    with pytest.raises(UserError, match="unknown transcript setting"):
        GenerationMode.make("asr")
    # rows from before the threshold was recorded were made without one; free quotes have none
    assert GenerationMode.of_row({**legacy, "quotes_mode": "constrained"}).quote_min_probability == 0.0
    assert GenerationMode.make("auto", "free", quote_min_probability=0.7).quote_min_probability == 0.0
    assert GenerationMode.make("auto", quote_min_probability=0.7).fields()["quote_min_probability"] == 0.7
    with pytest.raises(UserError, match=r"quote_min_probability must be in \[0, 1\]"):
        GenerationMode.make("auto", quote_min_probability=1.5)


def test_the_transcriber_is_part_of_the_mode(tmp_path):
    """Rows record the engine's transcriber; a file made with another one is refused on resume
    (nothing written); it only counts where a Whisper checkpoint transcribes (auto / whisper)."""
    from emoreason.eval.run import check_mode

    base = GenerationMode.make("auto", transcriber="packaged:whisper-base")
    row = {"id": "c1", "task": "emotion", **base.fields()}
    assert row["transcriber"] == "packaged:whisper-base" and GenerationMode.of_row(row) == base
    assert GenerationMode.of_row({k: v for k, v in row.items() if k != "transcriber"}) == GenerationMode.make("auto")
    assert GenerationMode.make("none", transcriber="packaged:whisper-base") == GenerationMode.make("none")
    path = tmp_path / "p.jsonl"
    with pytest.raises(UserError, match="made with --transcriber packaged:whisper-base --transcript auto.*, not --transcript auto"):
        check_mode({"c1": row}, GenerationMode.make("auto"), path)
    check_mode({"c1": row}, GenerationMode.make("auto", transcriber="packaged:whisper-base"), path)


def test_no_reference_transcript_is_judged_against_the_engines(tmp_path):
    """A row without what was said (a corpus without transcripts): the judge holds quotes to the
    engine's transcript, says so, and no transcriber WER is claimed."""
    row = {"id": "r", "task": "emotion", "label": "angry", "prediction": 'They said "stop it" loudly.',
           "engine_transcript": {"text": "stop it now", "source": "whisper"}, "quotes_mode": "constrained",
           "transcript_mode": "auto", "explain": "free", "consistent": None}
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(row) + "\n")
    emo = score_file(path, tmp_path / "s", make_judge("offline"), bootstrap=20, report=False)["tasks"]["emotion"]
    assert emo["quotes"]["judged_against"] == "engine" and emo["quotes"]["groundedness"] == 100.0
    assert "transcriber" not in emo and emo["agreement"]["undecided"] == 1


def test_a_shared_frame_cache_encodes_each_clip_once_across_evaluations(manifest, engine, tmp_path):
    """The demo's variants share one frame cache at evaluation: a second evaluation of the same
    clips with the same frozen encoder reads every clip's frames instead of encoding them."""
    from emoreason.model.frame_cache import FrameCache

    cache = FrameCache(max_memory_mb=64)
    try:
        model_predictions("runs/x", manifest, tmp_path / "a.jsonl", max_new_tokens=4, engine=engine, frame_cache=cache)
        assert engine.model.frame_cache is cache
        served = len(engine.model.cached_encoders)
        assert served >= 1 and (cache.misses, cache.hits) == (served * len(CLIPS), 0)
        model_predictions("runs/x", manifest, tmp_path / "b.jsonl", max_new_tokens=4, engine=engine, frame_cache=cache)
        assert (cache.misses, cache.hits) == (served * len(CLIPS), served * len(CLIPS))
        assert [r["id"] for r in _rows(tmp_path / "b.jsonl")] == [c[0] for c in CLIPS]
    finally:
        engine.model.use_frame_cache(None)
