"""Paper-scale check on a GPU: our builder, Trainer and Engine at the seed paper's shapes, random weights.

    python benchmarks/paper_scale.py --out paper_scale.json          # GPU: Whisper-large x2 + Gemma-2-9B, bf16
    python benchmarks/paper_scale.py --tiny --out /tmp/ps.json       # CPU: same code path, tiny sizes (~10 s)
    bash benchmarks/run_gpu_check.sh                                 # the one command a GPU session runs

What it does (no downloads: every part is a ``preset:NAME`` with ``init: random``):

1. builds the paper config (default: packaged ``paper/table3-alt4-whisper-large-v3``: dual Whisper-large-v3
   encoders, sequence fusion, Gemma-2-9B + LoRA r16) through ``emoreason.model.builder.build_model``
   inside a ``torch.device(...)`` context, so the 9.3B random weights are created on the GPU directly;
2. runs ``--steps`` optimizer steps of the *emotion phase* of alternating training through our
   ``Trainer`` (emotion encoder + emotion adapter + LoRA trainable, speech side frozen; bf16 autocast,
   token-mean loss, clipping, AdamW over the parameter groups), batch ``--batch`` of synthetic 5-10 s clips
   (zero-padded to 30 s, as the paper does) with ~``--text-tokens`` text tokens;
3. analyses ``--batch`` clips in one batch through ``emoreason.inference.engine.Engine`` (label scoring
   alone, then scoring + a ``--gen-tokens`` greedy explanation), on the training model as it is and
   then as ``Engine.load`` serves it (LoRA merged, everything in the device's inference dtype).

MFU counts model FLOPs as ``tools/gpu_anchor.py`` does (``model_flops_per_step``) against a bf16
matrix-product rate measured in the same run. ``--profile DIR`` writes torch.profiler tables of two
training steps and of each analyze.

Reports median step time (the loop's own wall time, data collation included, and without it),
samples/s, peak GPU memory (``torch.cuda.max_memory_allocated``), analyze times; prints a markdown
table beside the FACTS.md H200 numbers of ``tools/gpu_anchor.py`` and writes JSON to ``--out``.
Not a test: ``tests/test_bench_paper_scale.py`` runs ``--tiny``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

STARTED = time.perf_counter()  # this module's import: the process's start, near enough

DEFAULT_CONFIG = "paper/table3-alt4-whisper-large-v3"  # a packaged config name (emoreason.configs)

# Hub ids used by the paper configs -> the preset with the same architecture (emoreason.model.presets).
HUB_PRESETS = {
    "openai/whisper-large-v3": "whisper-large-v3",
    "openai/whisper-small": "whisper-small",
    "openai/whisper-tiny": "whisper-tiny",
    "facebook/hubert-xlarge-ll60k": "hubert-xlarge",
    "emotion2vec/emotion2vec_plus_large": "emotion2vec-plus-large",
    "emotion2vec/emotion2vec_plus_base": "emotion2vec-plus-base",
    "google/gemma-2-9b-it": "gemma-2-9b",
}
TINY_ENCODER = {"whisper": "whisper-test", "hubert": "hubert-test", "emotion2vec": "emotion2vec-test"}
# --tiny keeps the paper LLM's family (Gemma-2: soft-capping, eager attention, 256-wide heads,
# a vocabulary larger than the byte tokenizer) at a width a CPU runs in milliseconds.
TINY_LLM = ["model.llm.hidden_size=64", "model.llm.num_layers=2", "model.llm.num_heads=4",
            "model.llm.num_kv_heads=2", "model.llm.ffn_size=128", "model.llm.vocab_size=512"]
# FACTS.md "Reference cost at paper scale": tools/gpu_anchor.py on one H200 (random weights, bf16).
FACTS_H200 = {"step_s": 0.509, "samples_per_s": 11.8, "peak_mem_GiB": 64.0}


def random_overrides(cfg: Any, tiny: bool) -> list[str]:
    """Dotted overrides that turn every pretrained part of ``cfg.model`` into ``preset:NAME`` + ``init: random``
    (paper sizes, or tiny test sizes with ``tiny``)."""
    from emoreason.errors import UserError
    from emoreason.model.presets import preset_name

    out: list[str] = []
    parts = [("speech_encoder", cfg.model.speech_encoder), ("emotion_encoder", cfg.model.emotion_encoder),
             ("llm", cfg.model.llm)]
    for role, part in parts:
        if part is None or (role == "emotion_encoder" and cfg.model.fusion == "none"):
            continue
        if tiny and role != "llm":
            if part.type not in TINY_ENCODER:
                raise UserError(f"--tiny: no tiny preset for encoder type {part.type!r}")
            name = TINY_ENCODER[part.type]
        else:
            name = preset_name(part.path) or HUB_PRESETS.get(part.path)
            if name is None:
                raise UserError(f"model.{role}.path={part.path!r}: no preset of that architecture "
                                f"(known: {', '.join(sorted(HUB_PRESETS))}); pass --set model.{role}.path=preset:NAME")
        out += [f"model.{role}.path=preset:{name}", f"model.{role}.init=random"]
    if tiny:
        out += TINY_LLM
    return out


class SyntheticRows:
    """Map-style dataset the ``Trainer`` accepts: speech (asr) and emotion rows alternating, synthetic
    voiced-looking waves of 5-10 s (16 kHz float32), one prompt and a fixed-length target.

    Items: ``{"id", "wave" (T,), "prompt", "target", "task", "group"}``; ``groups`` / ``tasks`` as
    ``ManifestDataset`` has them.
    """

    def __init__(self, n: int, prompt: str, target: str, seed: int = 0):
        self.n, self.prompt, self.target, self.seed = n, prompt, target, seed
        self.groups = ["speech" if i % 2 == 0 else "emotion" for i in range(n)]
        self.tasks = ["asr", "emotion"]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"id": f"syn{i}", "wave": synthetic_wave(self.seed * 1_000_003 + i), "prompt": self.prompt,
                "target": self.target, "task": "asr" if self.groups[i] == "speech" else "emotion",
                "group": self.groups[i]}


def synthetic_wave(seed: int) -> np.ndarray:
    """A 5-10 s clip (T,) float32: a pitch-gliding harmonic tone in noise (content is irrelevant to cost)."""
    rng = np.random.default_rng(seed)
    sr = 16000
    t = np.arange(int(rng.uniform(5.0, 10.0) * sr)) / sr
    f0 = rng.uniform(100, 250) * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 5)) * 0.2 + rng.normal(0, 0.01, t.size)
    return wave.astype(np.float32)


def target_text(tokenizer: Any, n_tokens: int) -> str:
    """A response of about ``n_tokens`` tokens under ``tokenizer`` (at least 8)."""
    words = ("the speaker sounds frustrated because the voice rises and the words come quickly while "
             "saying that nothing ever works out ").split()
    text = " ".join(words[i % len(words)] for i in range(4 * max(n_tokens, 8)))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max(n_tokens, 8)]
    return tokenizer.decode(ids).strip()


class TimedCollator:
    """Wraps a collate function and records how long each call took (seconds, in call order)."""

    def __init__(self, collate: Any):
        self.collate, self.times = collate, []

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        tic = time.perf_counter()
        out = self.collate(examples)
        self.times.append(time.perf_counter() - tic)
        return out


def gib(n_bytes: float) -> float:
    return round(n_bytes / 2**30, 2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole check; returns the result dict (also what ``--out`` gets)."""
    import torch
    import transformers

    from emoreason.config import load_config, to_dict
    from emoreason.configs import find_config
    from emoreason.errors import UserError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and not args.tiny:
        raise UserError("paper-scale shapes need a GPU (about 70 GiB); on a CPU run with --tiny")
    cuda = device.startswith("cuda")
    if args.tiny:
        # Tiny matrices gain nothing from threads, and on a shared 2-core machine thread contention
        # made a tiny step 10x slower (8 s instead of 0.6 s).
        torch.set_num_threads(1)
    torch.manual_seed(0)
    config = find_config(args.config)
    overrides = random_overrides(load_config(config), args.tiny) + [
        f"train.batch_size={args.batch}", "train.grad_accum=1", "train.first_group=emotion",  # emotion phase first
        "train.max_steps=0", "train.save_every_steps=0", "train.report_to=none",
    ] + list(args.set)
    cfg = load_config(config, overrides)
    R: dict[str, Any] = {
        "config": str(args.config), "overrides": overrides, "tiny": args.tiny, "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
        "transformers": transformers.__version__, "batch": args.batch, "steps": args.steps, "warmup_steps": args.warmup,
    }
    if cuda:
        R["device_mem_GiB"] = gib(torch.cuda.get_device_properties(device).total_memory)
    if cuda:
        R["bf16_matmul_tflops"] = matmul_peak_tflops(device)
    model, processor = build_on_device(cfg.model, device, R)
    R["startup_s"] = round(time.perf_counter() - STARTED, 2)  # process start (imports) -> model ready on device
    train_steps(model, processor, cfg, args, R)
    utilisation(model, args.batch, R)
    analyze_batch(model, processor, cfg.model, args, R)
    R["model_config"] = to_dict(cfg.model)
    save_partial(R, args.out)
    if args.served:
        analyze_served(model, processor, cfg.model, args, R)
        save_partial(R, args.out)
        if args.decode_modes:
            compare_decode_modes(model, processor, cfg.model, args, R)
    return R


def save_partial(R: dict[str, Any], out: Path | None) -> None:
    """Write what is measured so far to ``out`` (a later stage cut short by a timeout leaves it)."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(R, indent=1) + "\n")


def matmul_peak_tflops(device: str, n: int = 8192, repeats: int = 10) -> float:
    """Measured bf16 matrix-product rate (TFLOP/s) of an ``n``-cube product on ``device``: the
    ceiling MFU is read against, as ``tools/gpu_anchor.py`` measures it (median of ``repeats``)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn_like(a)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        tic = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        times.append(time.perf_counter() - tic)
    del a, b
    return round(2 * n**3 / statistics.median(times) / 1e12, 1)


def model_flops_per_step(model: Any, batch: int, seq_len: int, trained: set[str], frames: int = 1500) -> float | None:
    """Model FLOPs of one emotion-phase training step, counted as ``tools/gpu_anchor.py`` counts them
    (so the two MFUs compare): per example, each encoder's forward over ``frames`` (30 s padded) is
    ``2 N T + 4 L T^2 d``; an encoder frozen in this phase runs forward only (1x), one in ``trained``
    (names: ``"emotion"``) forward + backward (3x); the LLM runs forward and the backward of its activations
    (2 x ``2 N tok``, LM head included), LoRA's own small matrices left out. None when an encoder
    is not a Whisper encoder (the count assumes its 1500 frames of 30 s)."""
    f_enc = 0.0
    for name, encoder in model.encoders.items():
        cfg = getattr(getattr(encoder, "encoder", None), "config", None)
        if cfg is None or not hasattr(cfg, "encoder_layers"):
            return None
        n_params = sum(p.numel() for n, p in encoder.named_parameters() if not n.endswith("embed_positions.weight"))
        one = 2 * n_params * frames + 4 * cfg.encoder_layers * frames * frames * cfg.d_model
        f_enc += one * (3 if name in trained else 1)
    base = sum(p.numel() for n, p in model.llm.named_parameters() if "lora_" not in n)
    head = model.llm.get_output_embeddings().weight
    tied = head.data_ptr() == model.llm.get_input_embeddings().weight.data_ptr()
    # the anchor's count: every base parameter (embedding included) as a matmul, plus the LM head
    f_llm = 2 * base * seq_len + (2 * head.numel() * seq_len if tied else 0)
    return float(batch * (f_enc + 2 * f_llm))


def utilisation(model: Any, batch: int, R: dict[str, Any]) -> None:
    """Adds ``model_tflop_per_step`` and, with a measured peak, ``mfu`` (model step, collation left
    out) and ``mfu_loop`` (the loop's own step time) to R."""
    trained = {g.removesuffix("_encoder") for g in R["phase_groups"] if g.endswith("_encoder")}
    flops = model_flops_per_step(model, batch, R["seq_len"], trained)
    if flops is None:
        R["model_tflop_per_step"] = "n/a (not Whisper encoders)"
        return
    R["model_tflop_per_step"] = round(flops / 1e12, 2)
    if R.get("bf16_matmul_tflops"):
        R["mfu"] = round(flops / R["model_step_s"] / 1e12 / R["bf16_matmul_tflops"], 3)
        R["mfu_loop"] = round(flops / R["step_s"] / 1e12 / R["bf16_matmul_tflops"], 3)


def build_on_device(model_cfg: Any, device: str, R: dict[str, Any]) -> tuple[Any, Any]:
    """``build_model`` inside a ``torch.device`` context: factory calls allocate on the device, so the
    9.3B random weights never take a CPU detour (37 GB and minutes of CPU init)."""
    import torch

    from emoreason.model.builder import build_model

    tic = time.perf_counter()
    with torch.device(device):
        model, processor = build_model(model_cfg)
    model.to(device)  # safety net for anything created with an explicit CPU device
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        R["mem_after_build_GiB"] = gib(torch.cuda.memory_allocated())
    R["build_s"] = round(time.perf_counter() - tic, 2)
    groups = model.parameter_groups()
    R["params_M"] = {k: round(sum(p.numel() for p in v) / 1e6, 2) for k, v in groups.items()}
    R["params_M"]["total"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
    R["dtypes"] = sorted({str(p.dtype).replace("torch.", "") for p in model.parameters()})
    R["llm_dtype"] = str(model.llm.get_input_embeddings().weight.dtype).replace("torch.", "")
    return model, processor


def train_steps(model: Any, processor: Any, cfg: Any, args: argparse.Namespace, R: dict[str, Any]) -> None:
    """``args.warmup + args.steps`` optimizer steps of the schedule's first phase (emotion) through the
    ``Trainer``; on CUDA out-of-memory, one retry with gradient checkpointing. Fills step times into R."""
    import torch

    from emoreason.data.dataset import Collator
    from emoreason.inference.engine import default_prompt
    from emoreason.train.recipe import TrainData, TrainingRecipe

    m, t = cfg.model, cfg.train
    cuda = R["device"].startswith("cuda")
    prompt = default_prompt("emotion")
    probe = processor.render(prompt, None, 0)[0]  # template + prompt tokens, no audio
    target = target_text(processor.tokenizer, args.text_tokens - len(probe) - 2)
    dataset = SyntheticRows(2 * args.batch * (args.steps + args.warmup + 1), prompt, target)
    collate = TimedCollator(Collator(processor, cfg.data.max_target_tokens))
    sample = collate([dataset[1]])
    R["seq_len"] = int(sample["input_ids"].shape[1])
    R["audio_tokens"] = int((sample["input_ids"] == model.audio_token_id).sum())
    R["text_tokens"] = R["seq_len"] - R["audio_tokens"]
    phases = TrainingRecipe(cfg, tempfile.gettempdir()).phases
    R["phase"] = phases[0].name
    R["phase_groups"] = [k for k in phases[0].param_groups if k in model.parameter_groups()]
    steps, attempts = [], []
    with tempfile.TemporaryDirectory(prefix="paper-scale-") as run_dir:
        for ckpt in dict.fromkeys([t.gradient_checkpointing, True]):
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            collate.times.clear()
            trainer = None
            try:
                # the library's recipe with this benchmark's parts: synthetic rows, a timed collator
                run_cfg = dataclasses.replace(cfg, train=dataclasses.replace(t, gradient_checkpointing=ckpt))
                trainer = TrainingRecipe(run_cfg, run_dir).setup_trainer(model, processor, TrainData(dataset), collate)
                R["mixed_precision"] = str(trainer.acc.mixed_precision)
                tic = time.perf_counter()
                steps = trainer.fit(resume=False, stop_after=args.warmup + args.steps)
                R["train_wall_s"] = round(time.perf_counter() - tic, 2)
                attempts.append({"gradient_checkpointing": ckpt, "ok": True})
                if args.profile is not None:  # two more steps under the profiler, kernels already warm
                    with profiled(args.profile / "train_profile.txt", cuda):
                        trainer.fit(resume=False, stop_after=2)
                break
            except torch.OutOfMemoryError as e:  # full size on a smaller card: retry with checkpointing
                attempts.append({"gradient_checkpointing": ckpt, "ok": False, "error": str(e).splitlines()[0][:200]})
                if cuda:
                    R["peak_mem_oom_GiB"] = gib(torch.cuda.max_memory_allocated())
            finally:
                if trainer is not None:  # drop optimizer state and gradients before a retry / the analyze
                    trainer.optimizer.zero_grad(set_to_none=True)
                del trainer
                for p in model.parameters():
                    p.grad = None
                gc.collect()
    R["train_attempts"] = attempts
    if not steps:
        raise RuntimeError(f"training did not run: {attempts}")
    R["gradient_checkpointing"] = attempts[-1]["gradient_checkpointing"]
    # StepResult.samples_per_s is the loop's own wall time per optimizer step, collation included.
    step_s = [args.batch / s.samples_per_s for s in steps][args.warmup:]
    data_s = collate.times[args.warmup: len(steps)]
    R["step_s"] = round(statistics.median(step_s), 4)
    R["samples_per_s"] = round(args.batch / R["step_s"], 2)
    R["data_s"] = round(statistics.median(data_s), 4)
    R["model_step_s"] = round(statistics.median([a - b for a, b in zip(step_s, data_s)]), 4)
    R["model_samples_per_s"] = round(args.batch / R["model_step_s"], 2)
    R["losses"] = [round(s.loss, 4) for s in steps]
    R["phases_run"] = sorted({s.phase for s in steps})
    R["loss_finite"] = all(math.isfinite(s.loss) for s in steps)
    if cuda:
        R["peak_mem_GiB"] = gib(torch.cuda.max_memory_allocated())
        R["peak_reserved_GiB"] = gib(torch.cuda.max_memory_reserved())


def analyze_batch(model: Any, processor: Any, model_cfg: Any, args: argparse.Namespace, R: dict[str, Any]) -> None:
    """One batch of ``args.batch`` clips through the ``Engine`` (built from the model in hand, not from
    disk): a short warm-up, label scoring alone, then scoring + ``args.gen_tokens`` generated tokens."""
    import torch

    from emoreason.inference.engine import Engine, config_labels
    from emoreason.inference.results import AnalysisResult

    cuda = R["device"].startswith("cuda")
    model.eval()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    engine = Engine(model, processor, config_labels(model_cfg), name="paper-scale-random")

    def analyze(max_new_tokens: int) -> tuple[float, list[Any]]:
        return timed_analyze(engine, args.batch, max_new_tokens, cuda)

    analyze(min(2, args.gen_tokens))  # warm-up: first-call kernels and allocator growth
    R["analyze_score_only_s"] = analyze(0)[0]
    R["analyze_s"], results = analyze(args.gen_tokens)
    if args.profile is not None:
        with profiled(args.profile / "analyze_profile.txt", cuda):
            analyze(args.gen_tokens)
    R["analyze_gen_tokens"] = args.gen_tokens
    R["analyze_decode_ms_per_token"] = decode_ms(R["analyze_s"], R["analyze_score_only_s"], args.gen_tokens)
    ok = [r for r in results if isinstance(r, AnalysisResult)]
    R["analyze_ok"] = len(ok)
    R["analyze_errors"] = [r.to_dict() for r in results if not isinstance(r, AnalysisResult)]
    R["analyze_labels"] = [r.label for r in ok]
    R["analyze_scores_valid"] = all(abs(sum(r.scores.values()) - 1) < 1e-6 and all(map(math.isfinite, r.scores.values()))
                                    for r in ok)
    if cuda:
        R["analyze_peak_mem_GiB"] = gib(torch.cuda.max_memory_allocated())


@contextlib.contextmanager
def profiled(path: Path, cuda: bool, rows: int = 40) -> Iterator[None]:
    """Runs the block under ``torch.profiler`` and writes its operator table (``rows`` rows, by device
    time on CUDA, else CPU time) to ``path``: where a step's time goes."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        yield
        if cuda:
            torch.cuda.synchronize()
    path.parent.mkdir(parents=True, exist_ok=True)
    sort = "cuda_time_total" if cuda else "cpu_time_total"
    path.write_text(prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=70) + "\n")


def decode_ms(with_tokens_s: float, score_only_s: float, tokens: int) -> float:
    """Milliseconds per generated token: the analyze's time beyond label scoring, per token."""
    return round(1000 * (with_tokens_s - score_only_s) / max(tokens, 1), 1)


def timed_analyze(engine: Any, batch: int, max_new_tokens: int, cuda: bool) -> tuple[float, list[Any]]:
    """(seconds, results) of one ``engine.analyze`` of ``batch`` synthetic clips in one batch, the
    device synchronised around it. transcript="none": the emotion answer alone, as the anchors in
    FACTS.md measure decoding."""
    import torch

    clips = [(f"clip{i}", synthetic_wave(10_000 + i)) for i in range(batch)]
    if cuda:
        torch.cuda.synchronize()
    tic = time.perf_counter()
    out = engine.analyze(clips, task="emotion", batch_size=batch, max_new_tokens=max_new_tokens, transcript="none")
    if cuda:
        torch.cuda.synchronize()
    return round(time.perf_counter() - tic, 3), out


def analyze_served(model: Any, processor: Any, model_cfg: Any, args: argparse.Namespace, R: dict[str, Any]) -> None:
    """The same analyze on the model as ``Engine.load`` serves it: LoRA folded into the LLM's weights
    and everything cast to the device's inference dtype (``emoreason.hardware.inference_dtype``:
    bf16 encoders and adapters on a GPU instead of their fp32 training copies). The last step of the
    check: it leaves the model merged and cast. Adds ``served_score_only_s``, ``served_analyze_s``,
    ``served_decode_ms_per_token`` and ``served_dtypes``."""
    from emoreason.hardware import inference_dtype
    from emoreason.inference.engine import Engine, config_labels

    if hasattr(model.llm, "merge_and_unload"):
        model.llm = model.llm.merge_and_unload()
    cast = inference_dtype("auto", R["device"])
    if cast is not None:
        model.to(cast)
    model.eval()
    R["served_dtypes"] = sorted({str(p.dtype).replace("torch.", "") for p in model.parameters()})
    engine = Engine(model, processor, config_labels(model_cfg), name="paper-scale-served")
    cuda = R["device"].startswith("cuda")
    # warm-up, scoring only, with tokens
    times = {tokens: timed_analyze(engine, args.batch, tokens, cuda)[0] for tokens in (min(2, args.gen_tokens), 0, args.gen_tokens)}
    R["served_score_only_s"] = times[0]
    R["served_analyze_s"] = times[args.gen_tokens]
    R["served_decode_ms_per_token"] = decode_ms(times[args.gen_tokens], times[0], args.gen_tokens)
    if args.profile is not None:
        with profiled(args.profile / "served_profile.txt", cuda):
            timed_analyze(engine, args.batch, args.gen_tokens, cuda)


def compare_decode_modes(model: Any, processor: Any, model_cfg: Any, args: argparse.Namespace, R: dict[str, Any]) -> None:
    """The served model's decode steps in each of ``args.decode_modes``
    (:mod:`emoreason.model.static_decode`), one after the other in this process: the first analyze
    (``gen_tokens + 1`` tokens, compiling where the mode compiles), then the median of two analyses
    with 1 and with ``gen_tokens + 1`` tokens: their difference over ``gen_tokens`` is the time of
    one decode step (label scoring and the prompt's prefill cancel out). Also whether each clip's
    explanation equals the first mode's, and, where the first call took under a minute, the first
    call at half the batch (a new shape: what a server pays once per batch size). Adds
    ``decode_modes`` (mode -> numbers, or the error), saved after each mode."""
    import statistics

    import torch

    from emoreason.inference.engine import Engine, config_labels

    cuda = R["device"].startswith("cuda")
    engine = Engine(model, processor, config_labels(model_cfg), name="paper-scale-served")
    n = args.gen_tokens
    results: dict[str, Any] = {}
    R["decode_modes"] = results
    reference: list[str] | None = None
    from torch._dynamo.utils import counters

    for mode in args.decode_modes:
        model.decode_compile = mode
        torch._dynamo.reset()
        counters.clear()
        row: dict[str, Any] = {}
        results[mode] = row
        try:
            row["first_call_s"], out = timed_analyze(engine, args.batch, n + 1, cuda)
            one = statistics.median(timed_analyze(engine, args.batch, 1, cuda)[0] for _ in range(2))
            many = [timed_analyze(engine, args.batch, n + 1, cuda) for _ in range(2)]
            row["analyze_1_token_s"] = round(one, 3)
            row["analyze_s"] = round(statistics.median(t for t, _ in many), 3)
            row["decode_ms_per_step"] = round(1000 * (row["analyze_s"] - one) / n, 2)
            texts = [getattr(r, "explanation", None) for r in many[-1][1]]
            row["ok"] = sum(t is not None for t in texts)
            if reference is None:
                reference = texts
            row["same_explanations_as_" + args.decode_modes[0]] = sum(a == b for a, b in zip(texts, reference))
            row["same_tokens_every_call"] = [getattr(r, "explanation", None) for r in out] == texts
            if row["first_call_s"] < 60 and args.batch > 1:
                row["first_call_half_batch_s"] = timed_analyze(engine, args.batch // 2, n + 1, cuda)[0]
        except Exception as exc:  # noqa: BLE001 (a benchmark: record the failure, try the next mode)
            row["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        # what the compiled modes compiled: graphs, graph breaks, graphs CUDA graphs left out
        row["compiled_graphs"] = counters["stats"]["unique_graphs"]
        row["graph_breaks"] = sum(counters["graph_break"].values())
        row["cudagraph_skips"] = counters["inductor"]["cudagraph_skips"]
        print(f"decode mode {mode}: {row}", flush=True)
        save_partial(R, args.out)
    model.decode_compile = "off"
    torch._dynamo.reset()


def table(R: dict[str, Any]) -> str:
    """Markdown table of the main numbers, beside FACTS' H200 anchor where one exists."""
    show_ref = not R["tiny"]  # tiny sizes are not comparable with anything
    rows = [
        ("device", R["device_name"], "H200 (FACTS)"),
        ("model build (random, on device) / process start to model ready", f"{R['build_s']} s / {R['startup_s']} s",
         "start-up goal <= 30 s"),
        ("params total / trainable in phase", f"{R['params_M']['total']}M / "
         f"{sum(R['params_M'][k] for k in R['phase_groups']):.1f}M", "9.3B LLM + 2 x 637M + 320M adapters"),
        ("sequence (audio + text tokens)", f"{R['seq_len']} ({R['audio_tokens']} + {R['text_tokens']})", "270 (110 + 160)"),
        ("gradient checkpointing", str(R["gradient_checkpointing"]), "off"),
        ("train step (loop, incl. data)", f"{R['step_s']} s", f"{FACTS_H200['step_s']} s (SDPA encoders)"),
        ("train step (without collation)", f"{R['model_step_s']} s (data {R['data_s']} s)", f"{FACTS_H200['step_s']} s"),
        ("samples/s (loop / without collation)", f"{R['samples_per_s']} / {R['model_samples_per_s']}", f"{FACTS_H200['samples_per_s']}"),
        ("peak memory (train)", f"{R.get('peak_mem_GiB', 'n/a')} GiB", f"{FACTS_H200['peak_mem_GiB']:.0f} GiB"),
        ("losses finite", str(R["loss_finite"]), ""),
        (f"analyze {R['batch']} clips: scoring only", f"{R['analyze_score_only_s']} s", ""),
        (f"analyze {R['batch']} clips: scoring + {R['analyze_gen_tokens']} tokens", f"{R['analyze_s']} s "
         f"(~{R['analyze_decode_ms_per_token']} ms/token)", "93 ms/token (generate, inputs_embeds + PEFT)"),
        ("analyze results ok", f"{R['analyze_ok']}/{R['batch']}", ""),
        ("model FLOPs per step (anchor's count)", f"{R['model_tflop_per_step']} TFLOP", "120.5 TFLOP"),
        ("MFU (model step / loop step) vs measured bf16 peak",
         f"{R.get('mfu', 'n/a')} / {R.get('mfu_loop', 'n/a')} of {R.get('bf16_matmul_tflops', 'n/a')} TFLOP/s",
         "0.31 of 765 (goal 0.55)"),
    ]
    if "served_decode_ms_per_token" in R:
        rows += [("as served (LoRA merged, " + "/".join(R["served_dtypes"]) + "): scoring only / + tokens",
                  f"{R['served_score_only_s']} s / {R['served_analyze_s']} s (~{R['served_decode_ms_per_token']} ms/token)",
                  "decode goal <= 7 ms/token")]
    for mode, row in R.get("decode_modes", {}).items():
        value = row.get("error") or (f"{row['decode_ms_per_step']} ms/step; first call {row['first_call_s']} s; "
                                     f"{row.get('same_explanations_as_' + next(iter(R['decode_modes'])), '?')}/{R['batch']} "
                                     "explanations as the first mode")
        rows.append((f"decode mode {mode} (as served)", value, "decode goal <= 7 ms/step"))
    lines = ["| measure | this run | reference |", "|---|---|---|"]
    for name, value, reference in rows:
        lines.append(f"| {name} | {value} | {reference if show_ref else '-'} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE|NAME",
                   help="paper config to build, a file or packaged name (default: %(default)s); hub paths become preset:NAME + init: random")
    p.add_argument("--tiny", action="store_true", help="tiny sizes on CPU: the same code path in seconds (what the test runs)")
    p.add_argument("--steps", type=int, default=8, help="timed optimizer steps (default %(default)s)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before them (default %(default)s)")
    p.add_argument("--batch", type=int, default=6, help="micro batch for training and clips per analyze batch (default %(default)s)")
    p.add_argument("--text-tokens", type=int, default=160, help="text tokens per training example, template included (default %(default)s)")
    p.add_argument("--gen-tokens", type=int, default=32, help="explanation tokens generated by the analyze (default %(default)s)")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="also profile two training steps and one analyze (torch.profiler); tables go to DIR")
    p.add_argument("--no-served", dest="served", action="store_false",
                   help="skip the last analyze on the model as Engine.load serves it (LoRA merged, one inference dtype)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu, which needs --tiny)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra dotted config overrides applied last, e.g. model.llm.attn_implementation=sdpa")
    p.add_argument("--decode-modes", type=lambda text: [m for m in text.split(",") if m], default=[], metavar="M1,M2",
                   help="also time the served model's decode steps in each of these decode_compile modes "
                   "(off, static, cudagraphs, inductor; emoreason.model.static_decode), in this order (default: none)")
    p.add_argument("--out", type=Path, default=None, help="write the result JSON here (also after each stage)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from emoreason.errors import UserError

    if args.steps < 1 or args.batch < 1 or args.warmup < 0:
        print("paper_scale: --steps and --batch must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    try:
        R = run(args)
    except UserError as e:
        print(f"paper_scale: {e}", file=sys.stderr)
        return 2
    print(table(R), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(R, indent=1) + "\n")
    print("RESULT " + json.dumps({k: v for k, v in R.items() if k not in ("model_config", "overrides")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
