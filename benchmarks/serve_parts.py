"""Where the time of one request and of one batch of requests goes in the engine (what
``emoreason serve`` runs per batch), to see what batching across requests shares and what it does not.

    .venv/bin/python benchmarks/serve_parts.py --model /work/demo-quick-ref/runs/detailed-dual
    .venv/bin/python benchmarks/serve_parts.py --model RUN --clips 4 --decode-threads 0   # torch's threads

Loads the run once (``Engine.load``, the server's defaults: transcript ``auto``, constrained quotes,
``--max-new-tokens`` 48 like ``benchmarks/serve_load.py``), takes the same clips as serve_load (the
demo's held-out test clips cut or padded to ``--seconds``), warms up on one, then runs them one
engine call each (concurrency 1) and all in one engine call (one batch), timing each part by
wrapping it: the LLM's encoders, Whisper's encoder over the padded 30 s window, Whisper's decoder
(generation, then the word-alignment pass per clip), the forced choice (prompt prefill + label
continuations), the explanation's ``generate`` split into LLM forwards over more than one position
(prefills) and decode steps, the quote constraint, the processor and the cue tracks. Prints one
table per mode and whether the answers of the two modes are the same. Not a test: absolute
numbers depend on the machine's load (2 shared cores here); compare the columns of one run.
"""
from __future__ import annotations

import argparse
import collections
import io
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable


class Timer:
    """Seconds and calls per part, filled by :meth:`wrap`ped callables."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] += seconds
        self.calls[part] += 1

    def wrap(self, owner: Any, name: str, part: str, classify: Callable[..., str] | None = None) -> None:
        """Replace ``owner.name`` by a timed call of itself (``classify(*args, **kwargs)`` may name
        the part per call)."""
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.add(classify(*args, **kwargs) if classify else part, time.perf_counter() - t0)

        setattr(owner, name, timed)


def _llm_part(*args: Any, **kwargs: Any) -> str:
    x = kwargs.get("inputs_embeds")
    x = x if x is not None else kwargs.get("input_ids")
    return "LLM forward, > 1 position (prefills)" if x.shape[1] > 1 else "LLM decode step"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("/work/demo-quick-ref/runs/detailed-dual"))
    p.add_argument("--clips", type=int, default=8, help="requests (clips): run one by one, then as one batch (default: 8)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--decode-threads", default="auto", help="Engine.load decode_threads: auto | N | 0 (torch's setting)")
    args = p.parse_args()

    import soundfile as sf
    import torch

    import emoreason.cues as cues
    from emoreason.inference import quote_constraint
    from emoreason.inference.engine import Engine

    sys.path.insert(0, str(Path(__file__).parent))
    from serve_load import clips

    waves = [sf.read(io.BytesIO(b), dtype="float32")[0] for b in clips(args.model, args.seconds, args.clips)]
    threads = args.decode_threads if args.decode_threads == "auto" else (int(args.decode_threads) or None)
    engine = Engine.load(args.model, decode_threads=threads)
    model, whisper = engine.model, (engine._whisper_asr() if engine.has_whisper else None)
    timer = Timer()
    timer.wrap(model, "encode", "LLM encoders (clip length)")
    timer.wrap(model, "score_candidates", "forced choice (score_candidates)")
    timer.wrap(model, "generate", "explanation generate (total)")
    timer.wrap(model.llm, "forward", "", classify=_llm_part)
    timer.wrap(quote_constraint.QuoteConstraint, "__call__", "quote constraint")
    timer.wrap(type(engine.processor), "__call__", "processor")
    timer.wrap(cues.TrackStream, "feed", "cue tracks (pitch, loudness)")
    if whisper is not None:
        timer.wrap(whisper, "encode", "Whisper encoder (padded 30 s)")
        timer.wrap(whisper.model, "generate", "Whisper decoder generate")
        timer.wrap(whisper, "_align", "Whisper word alignment (per clip)")
    kwargs = dict(task="emotion", max_new_tokens=args.max_new_tokens, transcript="auto", batch_size=max(8, args.clips))

    def run(groups: list[list[int]]) -> tuple[list[Any], float, dict[str, float], dict[str, int]]:
        timer.seconds.clear()
        timer.calls.clear()
        t0 = time.perf_counter()
        out = [r for g in groups for r in engine.analyze([(f"clip{i}", waves[i]) for i in g], **kwargs)]
        return out, time.perf_counter() - t0, dict(timer.seconds), dict(timer.calls)

    run([[0]])  # warm-up
    n = len(waves)
    one, one_wall, one_s, one_n = run([[i] for i in range(n)])
    batch, batch_wall, batch_s, batch_n = run([list(range(n))])
    print(f"model {args.model} | {n} clips of {args.seconds:g} s | max_new_tokens {args.max_new_tokens} | "
          f"torch threads {torch.get_num_threads()} | decode threads {engine.decode_threads} | "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"| part | {n} calls of 1 clip: s (calls) | 1 call of {n} clips: s (calls) | one / batch |")
    print("|---|---|---|---|")
    for part in sorted(set(one_s) | set(batch_s), key=lambda k: -one_s.get(k, 0.0)):
        a, b = one_s.get(part, 0.0), batch_s.get(part, 0.0)
        print(f"| {part} | {a:.2f} ({one_n.get(part, 0)}) | {b:.2f} ({batch_n.get(part, 0)}) | {a / b if b else float('nan'):.2f}x |")
    print(f"| **wall** | {one_wall:.2f} | {batch_wall:.2f} | **{one_wall / batch_wall:.2f}x** |")
    same = [(a.label, a.explanation, a.transcript.text if a.transcript else None)
            == (b.label, b.explanation, b.transcript.text if b.transcript else None) for a, b in zip(one, batch)]
    print(f"answers (label, explanation, transcript) the same one by one and batched: {sum(same)} / {n}")


if __name__ == "__main__":
    main()
