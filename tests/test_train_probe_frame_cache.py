"""``train.pooled_head_init: probe`` with ``train.feature_cache``: the probe fit encodes the training
emotion clips through the trainer's frozen-encoder frame cache, so the first pass reuses those
frames instead of encoding each clip a second time."""
from __future__ import annotations

import logging
import re

from emoreason.config import load_config
from emoreason.configs import config_path
from emoreason.train.head_init import _emotion_clips
from emoreason.train.recipe import TrainingRecipe

OVERRIDES = ["data.train_manifest=dummy:20", "train.schedule=joint", "train.epochs=1", "train.save_every_steps=0",
             "model.emotion_pooled_tokens=1", "model.emotion_pooled_kind=labels",
             "model.emotion_encoder.trainable=false",  # frozen, so the cache serves it (tiny trains it)
             "train.pooled_head_init=probe"]


def test_probe_fit_and_first_pass_encode_each_clip_once(tmp_path, caplog):
    cfg = load_config(config_path("tiny"), OVERRIDES)
    recipe = TrainingRecipe(cfg, tmp_path / "run", cache_dir=tmp_path / "cache")
    data = recipe.setup_data()
    model, processor = recipe.setup_model()
    rows = {"speech": [], "emotion": []}  # batch size of every call of each encoder, probe fit included
    for name in rows:
        getattr(model, f"{name}_encoder").register_forward_pre_hook(
            lambda module, args, name=name: rows[name].append(args[0].shape[0]))

    trainer = recipe.setup_trainer(model, processor, data)
    probe_clips = len(_emotion_clips(data.train, list(cfg.model.labels)))
    assert probe_clips >= 4 and len(rows["emotion"]) == probe_clips  # the fit ran, one clip per call (the cache)
    assert rows["speech"] == []
    with caplog.at_level(logging.INFO, logger="emoreason.train"):
        trainer.fit(resume=False)

    line = next(r.getMessage() for r in caplog.records if "frozen-encoder frames" in r.getMessage())
    served, encoded, reused = re.search(r"frames \(([^)]*)\): (\d+) clips encoded \([\d.]+ s\), (\d+) reused", line).groups()
    assert served == "speech_encoder, emotion_encoder"
    # every encoder call of the run, the probe's too, went through the cache and is counted once there
    assert set(rows["speech"]) == set(rows["emotion"]) == {1}
    assert int(encoded) == len(rows["speech"]) + len(rows["emotion"])
    # one pass over rows that each have their own clip: every reuse is a clip the probe encoded
    clips = {str(e.audio) for e in data.train.examples}
    assert len(clips) == len(data.train.examples)
    assert len(rows["speech"]) <= len(clips) and len(rows["emotion"]) <= len(clips)
    assert int(reused) == probe_clips - (len(rows["emotion"]) - len(rows["speech"]))
    assert int(reused) > 0
