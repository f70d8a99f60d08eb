"""Where a training step's time goes, fp32 vs bf16 autocast, with and without the frame cache.

    .venv/bin/python benchmarks/train_step_parts.py                      # packaged config mini, 4 batches
    .venv/bin/python benchmarks/train_step_parts.py --config tiny --batches 2   # plumbing check

Synthesizes a small corpus (espeak-ng) into a temporary directory, builds the model once, then for
each precision times, per batch of emotion rows: the encoders (no grad), the same from a warm
frame cache, the forward (encoders + LLM, logits from the first target position) and the backward.
Prints medians in a table. Not a test: absolute numbers depend on the machine and its load; compare
rows of one run. bf16 rows are only meaningful on a CPU with native bf16 (``emoreason.hardware``)
or a GPU.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="mini", help="a config file or packaged name (default: mini)")
    ap.add_argument("--batches", type=int, default=4, help="timed batches per precision (default 4)")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    import torch

    from emoreason.config import load_config
    from emoreason.configs import find_config
    from emoreason.data.dataset import Collator, ManifestDataset
    from emoreason.data.synth import synth_corpus
    from emoreason.hardware import cpu_has_native_bf16
    from emoreason.model.builder import build_model
    from emoreason.model.frame_cache import FrameCache
    from emoreason.train.loop import first_target_position, token_losses

    tmp = Path(tempfile.mkdtemp(prefix="emoreason-step-parts-"))
    n = args.batches * args.batch_size * 2
    manifest = synth_corpus(tmp / "corpus", n=max(n, 24), seed=0).manifest
    cfg = load_config(find_config(args.config), [f"data.train_manifest={manifest}"])
    model, processor = build_model(cfg.model)
    dataset = ManifestDataset(manifest, cfg.data.task_groups, split=None)
    collate = Collator(processor, cfg.data.max_target_tokens)
    rows = [i for i, e in enumerate(dataset.examples) if e.task == "emotion"]
    need = args.batches * args.batch_size
    if len(rows) < need:
        print(f"only {len(rows)} emotion rows for {need}; lower --batches", file=sys.stderr)
        return 1
    batches = [collate([dataset[i] for i in rows[b * args.batch_size:(b + 1) * args.batch_size]]) for b in range(args.batches)]
    for p in model.parameters():
        p.requires_grad_(False)
    for params in model.parameter_groups().values():
        for p in params:
            p.requires_grad_(True)
    model.train()

    def audio(batch):
        return (batch["speech_features"], batch.get("emotion_features"),
                batch.get("speech_attention_mask"), batch.get("emotion_attention_mask"))

    results: dict[str, dict[str, list[float]]] = {}
    precisions = ["fp32", "bf16"]
    for precision in precisions:
        times: dict[str, list[float]] = {"encoders": [], "encoders (cache hit)": [], "forward (encoders + LLM)": [], "backward": []}
        cache = FrameCache()
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k not in ("labels", "tasks", "ids")}
            labels = batch["labels"]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                model.use_frame_cache(None)
                tic = time.perf_counter()
                with torch.no_grad():
                    model.audio_tokens(*audio(batch))
                times["encoders"].append(time.perf_counter() - tic)
                model.use_frame_cache(cache)
                with torch.no_grad():
                    model.audio_tokens(*audio(batch))  # fill
                tic = time.perf_counter()
                with torch.no_grad():
                    model.audio_tokens(*audio(batch))
                times["encoders (cache hit)"].append(time.perf_counter() - tic)
                model.use_frame_cache(None)
                start = first_target_position(labels)
                tic = time.perf_counter()
                logits = model(**inputs, logits_to_keep=labels.shape[1] - start).logits
                sums, _ = token_losses(logits.float(), labels[:, start:])
                times["forward (encoders + LLM)"].append(time.perf_counter() - tic)
            tic = time.perf_counter()
            sums.sum().backward()
            times["backward"].append(time.perf_counter() - tic)
            model.zero_grad(set_to_none=True)
        results[precision] = times

    print(f"\n{args.config}, batch {args.batch_size}, median of {args.batches} batches "
          f"(CPU native bf16: {cpu_has_native_bf16()}, torch threads {torch.get_num_threads()})\n")
    print("| part of a step | " + " | ".join(precisions) + " |")
    print("|---|" + "---|" * len(precisions))
    for part in results["fp32"]:
        cells = [f"{statistics.median(results[p][part]):.3f} s" for p in precisions]
        print(f"| {part} | " + " | ".join(cells) + " |")
    step = {p: statistics.median(results[p]["forward (encoders + LLM)"]) + statistics.median(results[p]["backward"]) for p in precisions}
    print(f"\nforward + backward: fp32 {step['fp32']:.2f} s, bf16 {step['bf16']:.2f} s -> {step['fp32'] / step['bf16']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
