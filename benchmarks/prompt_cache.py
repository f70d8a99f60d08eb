"""The explanation's reuse of the forced choice's prompt KV cache, side by side with running the
prompt again, in one process: wall seconds of one engine batch, and whether the answers are the same.

    PYTHONPATH=. python benchmarks/prompt_cache.py --model RUN_DIR [--seconds 25] [--clips 4] [--reps 2]

Clips: the model's demo test clips (serve_load's), joined and cut to ``--seconds`` each, analysed
in one ``Engine.analyze`` call (emotion, the engine's defaults, 48 new tokens), alternating "cache"
(the engine as it is) and "no cache" (``generation._forced_choice`` made to return no cache, so
``generate`` runs the whole prompt, as before the reuse) ``--reps`` times. Also prints the
prompt's length in LLM positions (audio tokens + text). Absolute numbers depend on the machine's
load; compare the rows of one run.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a trained run directory (the demo's runs/detailed-dual)")
    p.add_argument("--seconds", type=float, default=25.0, help="clip length (default: 25)")
    p.add_argument("--clips", type=int, default=4, help="clips in the batch (default: 4)")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=48)
    args = p.parse_args()

    import numpy as np
    import soundfile as sf

    from emoreason.inference import generation
    from emoreason.inference.engine import Engine

    sys.path.insert(0, str(Path(__file__).parent))
    from serve_load import clips

    # serve_load pads or cuts each test clip to --seconds: take 5 s pieces and join them instead
    pieces = [sf.read(io.BytesIO(b), dtype="float32")[0] for b in clips(args.model, 5.0, args.clips * int(args.seconds // 5 + 1))]
    per = int(args.seconds // 5 + 1)
    waves = [(f"clip{i}", np.concatenate(pieces[i * per:(i + 1) * per])[: int(args.seconds * 16000)]) for i in range(args.clips)]
    engine = Engine.load(args.model)
    shapes: list[tuple[int, ...]] = []
    forward = engine.model.llm.forward

    def spy(*a, **k):  # the first LLM forward of a batch is the prompt's
        x = k.get("inputs_embeds")
        shapes.append(tuple((x if x is not None else k.get("input_ids")).shape))
        return forward(*a, **k)

    engine.model.llm.forward = spy
    engine.analyze(waves[:1], max_new_tokens=args.max_new_tokens)  # warm-up
    engine.model.llm.forward = forward
    real = generation._forced_choice

    def no_cache(*a, **k):
        return real(*a, **k)[0], None

    seconds: dict[str, list[float]] = {"cache": [], "no cache": []}
    answers: dict[str, list[str]] = {}
    try:
        for _ in range(args.reps):
            for name, choice in (("cache", real), ("no cache", no_cache)):
                generation._forced_choice = choice
                t0 = time.perf_counter()
                out = engine.analyze(waves, max_new_tokens=args.max_new_tokens)
                seconds[name].append(time.perf_counter() - t0)
                answers[name] = [(r.label, r.explanation) for r in out]
    finally:
        generation._forced_choice = real
    print(f"model {args.model} | {args.clips} clips of {args.seconds:g} s in one batch | prompt: {shapes[0][1]} LLM positions "
          f"| {args.max_new_tokens} new tokens")
    print("| explanation after the forced choice | wall s per batch (each rep) | mean |")
    print("|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {sum(values) / len(values):.2f} |")
    print(f"answers (label, explanation) the same: {answers['cache'] == answers['no cache']}")


if __name__ == "__main__":
    main()
