"""The inference engine: load a trained AudioLLM once, analyse many clips in batches.

    engine = Engine.load("runs/x")                 # RUN_DIR or RUN_DIR/final
    for result in engine.iter_analyze(["a.wav", "b.wav"], task="emotion"):
        print(result.to_dict())                    # AnalysisResult | AnalysisError, input order

Per clip: the label is a forced choice (each candidate's label sentence, e.g. "The speaker sounds
angry.", is scored under the model; softmax over candidates -> ``scores``), so every answer
carries a confidence even when the generated explanation wanders; the explanation is generated
greedily from the same prompt. Clips longer than one 30 s window are split; each window is
analysed on its own (``segments``) and the clip's scores are the duration-weighted mean.

Windows of different files share batches; results still come out in input order, each as soon as
its last window is done (so a caller can append it to a file and resume after a crash).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoreason.audio import MAX_SECONDS, SAMPLE_RATE, AudioError, load_audio, split_windows, validate_wave
from emoreason.errors import UserError
from emoreason.text.quotes import extract_quotes
from emoreason.inference.results import AnalysisError, AnalysisResult, Quote, Segment

log = logging.getLogger(__name__)

TASKS = ("emotion", "sentiment")
AudioSource = str | Path | bytes | tuple[str, bytes | np.ndarray]
"""A path, encoded file bytes, or (name, encoded bytes | float32 16 kHz mono waveform (T,))."""


def default_prompt(task: str) -> str:
    """The instruction asked when the caller gives none: the first question of the task's training
    pool (the paper's own example), so inference sees a phrasing the model was trained on."""
    from emoreason.data.questions import EMOTION_POOL, SENTIMENT_POOL

    return (SENTIMENT_POOL if task == "sentiment" else EMOTION_POOL)[0]


def measure_cues(wave: np.ndarray) -> dict[str, Any]:
    """Acoustic delivery cues of a 16 kHz clip (the teacher's ``measure_cues``)."""
    from emoreason.cues import measure_cues as teacher_cues

    return teacher_cues(wave, SAMPLE_RATE, None)  # no transcript at inference: rate fields stay None


def resolve_model_dir(path: str | Path) -> Path:
    """``RUN_DIR`` or ``RUN_DIR/final`` (or any save_pretrained directory) -> the directory holding
    ``config.yaml``; UserError when neither has one."""
    path = Path(path)
    for candidate in (path / "final", path):
        if (candidate / "config.yaml").is_file():
            return candidate
    if not path.exists():
        raise UserError(f"{path}: model directory not found")
    if (path / "checkpoints").is_dir():
        raise UserError(f"{path}: no final/ model yet (training unfinished? rerun `emoreason train` to resume it)")
    raise UserError(f"{path}: not a trained model (no config.yaml here or in {path / 'final'})")


@dataclass
class _Clip:
    """A loaded clip waiting for its windows' outputs."""

    name: str
    wave: np.ndarray | None = None
    windows: list[tuple[float, float, np.ndarray]] = field(default_factory=list)
    outputs: dict[int, tuple[np.ndarray, str]] = field(default_factory=dict)
    """window index -> (probabilities (C,), generated text)."""
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.error is not None or len(self.outputs) == len(self.windows)


INFERENCE_DTYPES = ("auto", "float32", "bfloat16")


def config_labels(model_config: Any) -> dict[str, list[str]]:
    """A ``ModelConfig``'s candidate labels per task, as :class:`Engine` takes them."""
    return {"emotion": list(model_config.labels), "sentiment": list(model_config.sentiment_labels)}


class Engine:
    """A loaded model + processor, ready to analyse clips.

    Args:
        model: ``AudioLLM`` (``generate``, ``score_candidates``).
        processor: ``AudioProcessor`` for the same model.
        labels: task -> candidate labels scored for it (``emotion``: the model config's ``labels``,
            ``sentiment``: its ``sentiment_labels``; see :func:`config_labels`).
        name: what results report as ``model`` (the directory it was loaded from).
        max_seconds: longer inputs are refused as a mistake (an "absurd length").
    """

    def __init__(self, model: Any, processor: Any, labels: Mapping[str, Sequence[str]], name: str = "model",
                 max_seconds: float = MAX_SECONDS):
        self.model = model
        self.processor = processor
        self.candidate_labels = {task: list(values) for task, values in labels.items()}
        self.name = name
        self.max_seconds = max_seconds
        # One forward at a time: the server calls from a thread pool; torch modules are not
        # re-entrant-safe with generation caches, and two concurrent forwards on 2 cores gain nothing.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, max_seconds: float = MAX_SECONDS,
             dtype: str = "auto") -> "Engine":
        """Load ``RUN_DIR`` or ``RUN_DIR/final`` once (on ``device``, default cuda when available).

        ``dtype``: ``auto`` follows :mod:`emoreason.hardware`'s rule for ``device``: on a GPU the
        weights stay as the builder made them (it applied the rule already), on a CPU with native
        bf16 everything runs in bf16 (generation 1.8x faster for the demo model,
        benchmarks/demo_speed.py --dtypes; scores are still softmaxed in fp32), elsewhere as built;
        ``float32`` / ``bfloat16`` force one.
        """
        import torch

        from emoreason.hardware import auto_dtype, default_device, resolve_dtype
        from emoreason.model.builder import load_pretrained, read_config

        if dtype not in INFERENCE_DTYPES:
            raise UserError(f"unknown dtype {dtype!r} (expected one of {', '.join(INFERENCE_DTYPES)})")
        directory = resolve_model_dir(path)
        device = torch.device(device) if device is not None else default_device()
        model, processor = load_pretrained(directory, device=device)
        if dtype != "auto":
            model.to(resolve_dtype(dtype))
        elif device.type == "cpu" and auto_dtype(device) != torch.float32:
            model.to(auto_dtype(device))  # CPU weights are built fp32 (for training): cast for inference
        model.eval()
        return cls(model, processor, config_labels(read_config(directory)), name=str(path), max_seconds=max_seconds)

    # ------------------------------------------------------------------ vocabulary
    def labels(self, task: str = "emotion") -> list[str]:
        """Candidate labels of ``task`` (``emotion`` | ``sentiment``)."""
        if task not in TASKS:
            raise UserError(f"unknown task {task!r} (expected one of {list(TASKS)})")
        labels = list(self.candidate_labels.get(task, ()))
        if not labels:
            raise UserError(f"the model config has no candidate labels for task {task!r}")
        return labels

    # ------------------------------------------------------------------ analysis
    def analyze(self, sources: Iterable[AudioSource], **kwargs: Any) -> list[AnalysisResult | AnalysisError]:
        """All of :meth:`iter_analyze` as a list."""
        return list(self.iter_analyze(sources, **kwargs))

    def iter_analyze(
        self,
        sources: Iterable[AudioSource],
        task: str = "emotion",
        prompt: str | None = None,
        batch_size: int = 4,
        max_new_tokens: int = 128,
        progress: Any = None,
    ) -> Iterator[AnalysisResult | AnalysisError]:
        """Analyse clips; yield one result per source, in input order.

        Args:
            sources: paths, encoded bytes, or (name, bytes | waveform) pairs.
            task: ``emotion`` | ``sentiment`` (which candidate labels are scored).
            prompt: the instruction (default: :func:`default_prompt`).
            batch_size: windows per forward pass (windows of different files are batched together).
            max_new_tokens: explanation length; 0 skips generation (label + scores only, fast).
            progress: optional tqdm-like object; ``update(n)`` is called per finished window.
        """
        labels = self.labels(task)
        from emoreason.labels import label_sentence

        sentences = [label_sentence(task, label) for label in labels]
        prompt = prompt or default_prompt(task)
        if batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        pending: list[_Clip] = []  # in input order; popped from the front when done
        queue: list[tuple[_Clip, int]] = []  # windows waiting for a batch
        for source in sources:
            clip = self._load(source)
            pending.append(clip)
            queue.extend((clip, i) for i in range(len(clip.windows)))
            while len(queue) >= batch_size:
                self._run(queue[:batch_size], prompt, sentences, max_new_tokens, progress)
                queue = queue[batch_size:]
            yield from self._pop_done(pending, labels, task)
        while queue:
            self._run(queue[:batch_size], prompt, sentences, max_new_tokens, progress)
            queue = queue[batch_size:]
        yield from self._pop_done(pending, labels, task)

    def _load(self, source: AudioSource) -> _Clip:
        """Read + validate one source and split it into windows; errors become ``clip.error``."""
        if isinstance(source, tuple):
            name, data = source
        else:
            name, data = ("<upload>" if isinstance(source, (bytes, bytearray)) else str(source)), source
        try:
            if isinstance(data, np.ndarray):
                wave = validate_wave(np.asarray(data, dtype=np.float32), name, self.max_seconds)
            else:
                wave = load_audio(data, max_seconds=self.max_seconds)
        except AudioError as e:
            # load_audio names encoded bytes "<bytes>"; say which upload it was instead
            return _Clip(name=name, error=str(e).replace("<bytes>", name))
        return _Clip(name=name, wave=wave, windows=split_windows(wave))

    def _run(self, items: list[tuple[_Clip, int]], prompt: str, sentences: list[str], max_new_tokens: int, progress: Any) -> None:
        """One batch of windows -> probabilities (B, C) and texts, stored on their clips."""
        import torch

        waves = [clip.windows[i][2] for clip, i in items]
        with self._lock, torch.inference_mode():
            batch = self.processor(waves=waves, prompts=[prompt] * len(waves))
            logp = self.model.score_candidates(batch, sentences)  # (B, C) log-likelihoods
            probs = torch.softmax(logp.float(), dim=-1).cpu().numpy()
            texts = self.model.generate(batch, max_new_tokens=max_new_tokens) if max_new_tokens > 0 else [""] * len(waves)
        for (clip, i), p, text in zip(items, probs, texts):
            clip.outputs[i] = (p.astype(np.float64), text.strip())
        if progress is not None:
            progress.update(len(items))

    def _pop_done(self, pending: list[_Clip], labels: list[str], task: str) -> Iterator[AnalysisResult | AnalysisError]:
        while pending and pending[0].done:
            clip = pending.pop(0)
            yield AnalysisError(clip.name, clip.error) if clip.error is not None else self._finish(clip, labels, task)

    def _finish(self, clip: _Clip, labels: list[str], task: str) -> AnalysisResult:
        """Windows -> one result; long clips keep per-window segments and a weighted summary."""
        assert clip.wave is not None
        duration = clip.wave.size / SAMPLE_RATE
        if len(clip.windows) == 1:
            probs, text = clip.outputs[0]
            return AnalysisResult(
                file=clip.name, model=self.name, task=task, duration=round(duration, 3),
                label=labels[int(np.argmax(probs))], scores=_scores(labels, probs), explanation=text,
                quotes=[Quote(q) for q in extract_quotes(text)], cues=measure_cues(clip.wave),
            )
        segments = []
        weights = np.array([end - start for start, end, _ in clip.windows])
        stacked = np.stack([clip.outputs[i][0] for i in range(len(clip.windows))])  # (W, C)
        for i, (start, end, chunk) in enumerate(clip.windows):
            probs, text = clip.outputs[i]
            segments.append(Segment(
                start=round(start, 3), end=round(end, 3), label=labels[int(np.argmax(probs))],
                scores=_scores(labels, probs), explanation=text,
                quotes=[Quote(q, round(start, 3), round(end, 3)) for q in extract_quotes(text)],
                cues=measure_cues(chunk),
            ))
        overall = (stacked * weights[:, None]).sum(0) / weights.sum()  # duration-weighted mean (C,)
        best = int(np.argmax(overall))
        # The clip's explanation is that of the window that most supports the overall label
        # (weighted by its length); every window's own explanation stays in `segments`.
        lead = int(np.argmax(stacked[:, best] * weights))
        return AnalysisResult(
            file=clip.name, model=self.name, task=task, duration=round(duration, 3),
            label=labels[best], scores=_scores(labels, overall), explanation=segments[lead].explanation,
            quotes=[q for s in segments for q in s.quotes], cues=measure_cues(clip.wave), segments=segments,
        )


def _scores(labels: list[str], probs: np.ndarray) -> dict[str, float]:
    """label -> probability (renormalised in float64 so the JSON values sum to 1)."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    return {label: float(v) for label, v in zip(labels, p)}
