"""benchmarks/paper_scale.py: the paper-scale GPU check, run here at tiny sizes on CPU (same code path:
preset build in a device context, emotion-phase Trainer steps, batched Engine analyze)."""
import json
import math

import pytest
import torch

from emoreason.config import load_config
from emoreason.configs import config_path
from emoreason.errors import UserError
from emoreason.testing.benchmarks import load_benchmark



def load_bench():
    return load_benchmark("paper_scale")


@pytest.fixture
def bench():
    threads = torch.get_num_threads()
    yield load_bench()
    torch.set_num_threads(threads)  # --tiny pins one thread; give the rest of the session its own


def test_paper_configs_map_to_random_presets(bench):
    cfg = load_config(config_path("paper/table3-alt4-whisper-large-v3"))
    assert bench.random_overrides(cfg, tiny=False) == [
        "model.speech_encoder.path=preset:whisper-large-v3", "model.speech_encoder.init=random",
        "model.emotion_encoder.path=preset:whisper-large-v3", "model.emotion_encoder.init=random",
        "model.llm.path=preset:gemma-2-9b", "model.llm.init=random",
    ]
    e2v = load_config(config_path("paper/table3-alt4-emotion2vec-plus-large"))
    assert "model.emotion_encoder.path=preset:emotion2vec-plus-large" in bench.random_overrides(e2v, tiny=False)
    assert "model.emotion_encoder.path=preset:emotion2vec-test" in bench.random_overrides(e2v, tiny=True)
    single = load_config(config_path("paper/table2-none-joint"))
    assert not any("emotion_encoder" in o for o in bench.random_overrides(single, tiny=False))
    cfg.model.llm.path = "someone/unknown-llm"
    with pytest.raises(UserError, match="no preset"):
        bench.random_overrides(cfg, tiny=False)


def test_tiny_run_writes_step_time_and_finite_loss(bench, tmp_path, capsys):
    out = tmp_path / "ps.json"
    rc = bench.main(["--tiny", "--steps", "2", "--warmup", "1", "--batch", "3", "--gen-tokens", "3",
                     "--decode-modes", "off,static", "--out", str(out)])
    assert rc == 0
    R = json.loads(out.read_text())
    # training: the emotion phase of alternating training, through the Trainer
    assert R["phase"] == "emotion" and R["phases_run"] == ["emotion"]
    assert R["phase_groups"] == ["emotion_encoder", "emotion_adapter", "lora"]
    assert len(R["losses"]) == 3 and R["loss_finite"] and all(math.isfinite(x) for x in R["losses"])
    for key in ("step_s", "samples_per_s", "model_step_s", "model_samples_per_s", "data_s", "build_s"):
        assert isinstance(R[key], float) and R[key] > 0, key
    assert R["samples_per_s"] == pytest.approx(3 / R["step_s"], rel=0.02)
    assert R["model_step_s"] < R["step_s"]
    # shapes: 30 s padding -> 100 speech + 10 emotion tokens; ~160 text tokens; bf16 LLM, fp32 trainable parts
    assert R["audio_tokens"] == 110 and R["seq_len"] == R["audio_tokens"] + R["text_tokens"]
    assert abs(R["text_tokens"] - 160) <= 8
    assert R["llm_dtype"] == "bfloat16" and set(R["dtypes"]) == {"bfloat16", "float32"}
    # one batched analyze through the Engine
    assert R["analyze_ok"] == 3 and R["analyze_errors"] == [] and R["analyze_scores_valid"]
    assert R["analyze_s"] > 0 and R["analyze_score_only_s"] > 0
    # the served model's decode steps in each mode; the static cache gives the dynamic one's answers
    modes = R["decode_modes"]
    assert list(modes) == ["off", "static"]
    for row in modes.values():
        assert "error" not in row and row["ok"] == 3 and row["same_explanations_as_off"] == 3, row
        assert row["first_call_s"] > 0 and row["same_tokens_every_call"]
        assert row["compiled_graphs"] == row["graph_breaks"] == row["cudagraph_skips"] == 0  # nothing compiled
    printed = capsys.readouterr().out
    assert "| train step (loop, incl. data) |" in printed and "RESULT {" in printed
    assert "| decode mode static (as served) |" in printed


def test_full_size_refuses_cpu(bench, capsys):
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    assert bench.main(["--steps", "1"]) == 2
    assert "need a GPU" in capsys.readouterr().err


def test_out_of_memory_retries_with_gradient_checkpointing(bench, tmp_path, monkeypatch):
    """The H100 has less memory than the H200 the reference ran on: an OOM in training must not end
    the (one-shot) GPU check but retry once with checkpointing, and say so in the JSON."""
    from emoreason.train.loop import Trainer

    real_fit, calls = Trainer.fit, []

    def fit(self, *args, **kwargs):
        calls.append(self.train.gradient_checkpointing)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", fit)
    out = tmp_path / "ps.json"
    assert bench.main(["--tiny", "--steps", "1", "--warmup", "0", "--batch", "2", "--gen-tokens", "0", "--out", str(out)]) == 0
    R = json.loads(out.read_text())
    assert calls == [False, True]
    assert R["gradient_checkpointing"] is True
    assert [a["ok"] for a in R["train_attempts"]] == [False, True]
    assert "out of memory" in R["train_attempts"][0]["error"]
    assert R["loss_finite"] and len(R["losses"]) == 1
