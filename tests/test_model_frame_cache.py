"""Frozen-encoder frame cache: same audio tokens as running the encoders, hits on the second pass,
shared on disk between models with the same weights, never used for trainable encoders."""
import dataclasses

import numpy as np
import pytest
import torch

from emoreason.config import DataConfig, TrainConfig
from emoreason.data.dataset import Collator, ManifestDataset
from emoreason.model.builder import build_model
from emoreason.model.frame_cache import FrameCache, encoder_fingerprint
from emoreason.data.dummy import make_dummy_corpus
from emoreason.testing.tiny import tiny_model_config
from emoreason.train.loop import Trainer
from emoreason.train.schedule import build_schedule


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    model, processor = build_model(tiny_model_config(**kw))
    return model.eval(), processor


def _waves(seconds=(1.0, 2.5, 0.6)):
    rng = np.random.default_rng(0)
    return [0.1 * rng.standard_normal(int(s * 16000)).astype(np.float32) for s in seconds]


def _batch(processor, waves=None):
    waves = _waves() if waves is None else waves
    return processor(waves=waves, prompts=["Which emotion?"] * len(waves))


def _tokens(model, batch):
    with torch.no_grad():
        return model.audio_tokens(batch["speech_features"], batch.get("emotion_features"),
                                  batch.get("speech_attention_mask"), batch.get("emotion_attention_mask"))


@pytest.mark.parametrize("dynamic_length", [True, False])
def test_cached_tokens_equal_encoder_tokens_and_second_pass_hits(dynamic_length):
    model, processor = _model(dynamic_length=dynamic_length)
    batch = _batch(processor)
    ref, ref_mask = _tokens(model, batch)
    cache = FrameCache()
    assert model.use_frame_cache(cache) == ["speech_encoder", "emotion_encoder"]
    first, first_mask = _tokens(model, batch)
    assert (cache.misses, cache.hits) == (6, 0)  # 3 clips x 2 encoders, each encoded alone
    assert torch.equal(first_mask, ref_mask)
    torch.testing.assert_close(first[first_mask], ref[ref_mask], atol=1e-5, rtol=1e-4)
    second, second_mask = _tokens(model, batch)
    assert (cache.misses, cache.hits) == (6, 6)
    assert torch.equal(second, first) and torch.equal(second_mask, first_mask)
    # a clip's frames do not depend on its batch neighbours: alone it gets the same (cached) tokens
    tokens, mask = _tokens(model, _batch(processor, _waves()[:1]))
    assert cache.hits == 8
    torch.testing.assert_close(tokens[mask], first[0][first_mask[0]])


def test_disk_cache_is_shared_by_models_with_the_same_weights(tmp_path):
    model, processor = _model(dynamic_length=True)
    batch = _batch(processor)
    model.use_frame_cache(FrameCache(tmp_path / "fc"))
    ref, ref_mask = _tokens(model, batch)
    assert len(list((tmp_path / "fc").rglob("*.safetensors"))) == 6
    assert not list((tmp_path / "fc").rglob("*.tmp"))

    twin, _ = _model(seed=0, dynamic_length=True)  # same weights, new process-like state
    twin.speech_adapter.load_state_dict(model.speech_adapter.state_dict())
    twin.emotion_adapter.load_state_dict(model.emotion_adapter.state_dict())
    cache = FrameCache(tmp_path / "fc")
    twin.use_frame_cache(cache)

    def boom(*args, **kwargs):
        raise AssertionError("the encoder ran although its frames were on disk")

    twin.speech_encoder.forward = boom
    twin.emotion_encoder.forward = boom
    tokens, mask = _tokens(twin, batch)
    assert cache.hits == 6 and cache.misses == 0
    assert torch.equal(tokens, ref) and torch.equal(mask, ref_mask)

    other, _ = _model(seed=1, dynamic_length=True)  # different weights: different keys
    assert encoder_fingerprint(other.speech_encoder) != encoder_fingerprint(model.speech_encoder)
    cache2 = FrameCache(tmp_path / "fc")
    other.use_frame_cache(cache2)
    _tokens(other, batch)
    assert cache2.hits == 0 and cache2.misses == 6


def test_torn_file_is_recomputed_and_memory_is_bounded(tmp_path):
    model, processor = _model(dynamic_length=True)
    batch = _batch(processor)
    model.use_frame_cache(FrameCache(tmp_path / "fc"))
    ref, _ = _tokens(model, batch)
    for path in (tmp_path / "fc").rglob("*.safetensors"):
        path.write_bytes(b"not a safetensors file")
    cache = FrameCache(tmp_path / "fc", max_memory_mb=0.001)  # ~1 KB: at most one entry stays
    model.use_frame_cache(cache)
    tokens, _ = _tokens(model, batch)
    assert cache.misses == 6 and torch.equal(tokens, ref)
    assert len(cache._memory) == 1 and cache.evicted == 5
    tokens, _ = _tokens(model, batch)  # evicted from memory, read back from the rewritten files
    assert cache.hits == 6 and torch.equal(tokens, ref)


def test_a_full_memory_cache_without_a_directory_warns_once(caplog):
    model, processor = _model(dynamic_length=True)
    cache = FrameCache(max_memory_mb=0.001)
    model.use_frame_cache(cache)
    with caplog.at_level("WARNING", logger="emoreason.train"):
        _tokens(model, _batch(processor))
    warnings = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "train.feature_cache_dir" in warnings[0]
    assert cache.evicted == 5


def test_frames_are_computed_outside_autocast():
    model, processor = _model(dynamic_length=True)
    batch = _batch(processor)
    cache = FrameCache()
    model.use_frame_cache(cache)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _tokens(model, batch)
    assert all(f.dtype == torch.float32 for f in cache._memory.values())  # not bf16-rounded
    _tokens(model, batch)  # the same frames serve fp32 and autocast runs
    assert cache.misses == 6 and cache.hits == 6
    plain = FrameCache()
    model.use_frame_cache(plain)
    _tokens(model, batch)
    assert all(torch.equal(a, b) for a, b in zip(cache._memory.values(), plain._memory.values()))


def test_trainable_encoder_always_runs():
    cfg = tiny_model_config(dynamic_length=True)
    cfg = dataclasses.replace(cfg, emotion_encoder=dataclasses.replace(cfg.emotion_encoder, trainable=True))
    torch.manual_seed(0)
    model, processor = build_model(cfg)
    cache = FrameCache()
    assert model.use_frame_cache(cache) == ["speech_encoder"]
    _tokens(model.eval(), _batch(processor))
    assert cache.misses == 3  # the speech encoder's three clips only


def test_trainer_reuses_frames_and_trains_the_same(tmp_path):
    manifest = make_dummy_corpus(12, tmp_path / "corpus")
    dataset = ManifestDataset(manifest, DataConfig().task_groups)
    phases = build_schedule("joint", 2, 1, 1, "speech", True)
    losses = {}
    for cached in (False, True):
        model, processor = _model(dynamic_length=True)
        train = TrainConfig(epochs=2, batch_size=4, lr=1e-2, warmup_ratio=0.0, precision="no",
                            lr_schedule="constant", feature_cache=cached, feature_cache_dir=str(tmp_path / "fc"))
        trainer = Trainer(model, dataset, Collator(processor), phases, train, tmp_path / f"run{cached}")
        losses[cached] = [r.loss for r in trainer.fit(resume=False)]
        if cached:
            clips = len({e.audio for e in dataset.examples})  # rows of several tasks share a clip
            assert trainer.frame_cache.misses == 2 * clips  # every clip once per encoder
            assert trainer.frame_cache.hits >= 2 * len(dataset)  # ... at least the whole second pass reused
            log = (tmp_path / "runTrue" / "train.log").read_text()
            assert "reused from the cache" in log
        else:
            assert trainer.frame_cache is None
    assert len(losses[True]) == 6 and losses[True] == pytest.approx(losses[False], rel=1e-4)
