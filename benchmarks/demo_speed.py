"""Demo timings: the whole demo (``--quick`` or full) and ``emoreason analyze`` on a 5 s clip.

    .venv/bin/python benchmarks/demo_speed.py --mode quick --out /tmp/demo-bench
    .venv/bin/python benchmarks/demo_speed.py --analyze-only --out demo_out   # reuse a finished demo
    .venv/bin/python benchmarks/demo_speed.py --analyze-only --out demo_out --variant detailed-dual --dtypes
    .venv/bin/python benchmarks/demo_speed.py --mode full --emulate-avx2 --out /tmp/demo-avx2   # like a laptop

Prints wall times (whole demo as a subprocess; per stage from the DONE markers), the accuracies,
and for analyze on one 5 s held-out clip (label scoring + generated explanation): imports, model
load and the median of 3 analyses in process; 3 fresh ``emoreason analyze --model`` commands; and 3
``emoreason analyze --server`` commands against an ``emoreason serve`` it starts. Not a test: the
numbers depend on the machine's load (see docs/demo.md for the ones measured here).

``--emulate-avx2`` runs all of it in a child process that sees an AVX2-only CPU without native
bf16 on any x86 machine (:data:`AVX2_ENV`: PyTorch's and oneDNN's kernels limited to AVX2, and
emoreason's bf16 detection off, so training and inference run in fp32 as on most laptops).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "EMOREASON_CPU_BF16": "0"}
"""Environment of ``--emulate-avx2``: read by torch and oneDNN at start-up, hence a child process."""


def stage_table(out: Path) -> list[str]:
    """One line per finished demo stage (its DONE marker's seconds), slowest stages visible at a glance."""
    rows = [(str(m.parent.relative_to(out)), json.loads(m.read_text())["seconds"]) for m in sorted(out.rglob("DONE.json"))]
    total = sum(s for _, s in rows) or 1.0
    lines = [f"  {'stage':<28} {'seconds':>8} {'share':>6}"]
    lines += [f"  {name:<28} {sec:8.1f} {sec / total:6.0%}" for name, sec in rows]
    lines.append(f"  {'sum of stages':<28} {total:8.1f}")
    return lines


def cpu_line() -> str:
    """What the kernels may use: torch's CPU capability, and whether emoreason picks bf16."""
    import torch

    from emoreason.hardware import cpu_has_native_bf16

    return (f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16 "
            f"{'on' if cpu_has_native_bf16() else 'off'}, {torch.get_num_threads()} threads "
            f"(ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '-')}, "
            f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '-')})")


def run_demo(mode: str, out: Path, threads: int | None, time_budget: str = "auto") -> float:
    cmd = [sys.executable, "-m", "emoreason", "demo", "--out", str(out), "--time-budget", time_budget]
    if mode == "quick":
        cmd.append("--quick")
    if threads:
        cmd += ["--threads", str(threads)]
    tic = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - tic


def five_second_clip(out: Path) -> Path:
    """A 5.0 s held-out clip: the first test clip, padded with silence or cut to 5 s."""
    import numpy as np

    from emoreason.audio import SAMPLE_RATE, load_audio, save_audio
    from emoreason.data.manifest import read_manifest, resolve_audio

    test = out / "testset" / "test.jsonl"
    row = read_manifest(test)[0]
    wave = load_audio(resolve_audio(row, test))
    n = 5 * SAMPLE_RATE
    wave = np.pad(wave, (0, max(0, n - wave.size)))[:n]
    path = out / "bench_5s.wav"
    save_audio(path, wave)
    return path


def bench_dtypes(run: Path, clip: Path, max_new_tokens: int = 48) -> None:
    """In-process analysis of ``clip`` by ``run`` in fp32 and in bf16 (median of 3 each), with the
    label and the start of the explanation: what ``Engine.load(dtype="auto")`` trades."""
    from emoreason.inference.engine import Engine

    for dtype in ("float32", "bfloat16"):
        engine = Engine.load(run, dtype=dtype)
        engine.analyze([str(clip)], max_new_tokens=max_new_tokens)  # warm-up
        times = []
        for _ in range(3):
            tic = time.perf_counter()
            res = engine.analyze([str(clip)], max_new_tokens=max_new_tokens)[0]
            times.append(time.perf_counter() - tic)
        print(f"{run.name} {dtype:8s} 5 s clip, {max_new_tokens}-token explanation: median {statistics.median(times):.2f} s "
              f"-> {res.label} | {res.explanation[:70]!r}")
        del engine


def bench_analyze(out: Path, threads: int | None, variant: str | None = None, dtypes: bool = False) -> dict[str, float]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from emoreason.inference.engine import Engine

    best = variant or json.loads((out / "analysis" / "analysis.json").read_text())["variant"]
    run = out / "runs" / best
    clip = five_second_clip(out)
    tic = time.perf_counter()
    import transformers.modeling_utils  # noqa: F401  (after torch: what every model load imports first)

    imports = time.perf_counter() - tic
    if dtypes:
        bench_dtypes(run, clip)
    tic = time.perf_counter()
    engine = Engine.load(run)
    load = time.perf_counter() - tic
    times = []
    for _ in range(3):
        tic = time.perf_counter()
        res = engine.analyze([str(clip)], task="emotion")[0]
        times.append(time.perf_counter() - tic)
    del engine  # its idle OpenMP threads would compete with the commands below
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    emoreason = [sys.executable, "-m", "emoreason"]
    cli = [_timed([*emoreason, "analyze", "--model", str(run), str(clip)], env) for _ in range(3)]
    server = _served_analyze(emoreason, run, clip, env)
    print(f"analyze ({best}, 5 s clip): imports {imports:.1f} s, Engine.load {load:.1f} s; analysis in process median "
          f"{statistics.median(times):.2f} s (runs {', '.join(f'{t:.2f}' for t in times)})")
    print(f"  whole `emoreason analyze --model` command: median {statistics.median(cli):.1f} s "
          f"(runs {', '.join(f'{t:.1f}' for t in cli)})")
    print(f"  `emoreason analyze --server` against a running `emoreason serve`: median {statistics.median(server):.2f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in server)})")
    print(f"  -> label {res.label}, explanation: {res.explanation}")
    return {"imports_s": imports, "load_s": load, "analyze_median_s": statistics.median(times),
            "cli_s": statistics.median(cli), "server_s": statistics.median(server)}


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    tic = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - tic


def _served_analyze(emoreason: list[str], run: Path, clip: Path, env: dict[str, str]) -> list[float]:
    """Start `emoreason serve` on a free port, wait for /health, time 3 `analyze --server` commands."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([*emoreason, "serve", "--model", str(run), "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).read()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("emoreason serve did not come up") from None
                time.sleep(0.3)
        return [_timed([*emoreason, "analyze", "--server", url, str(clip)], env) for _ in range(3)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["quick", "full"], default="quick", help="which demo to time")
    ap.add_argument("--out", type=Path, default=Path("/tmp/emoreason-demo-bench"), help="demo output directory")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--time-budget", default="auto", metavar="MIN|auto|none",
                    help="the demo's --time-budget (default auto: 15 min for the full plan on a CPU without native "
                    "bf16, so --emulate-avx2 fits it; none: the full plan)")
    ap.add_argument("--analyze-only", action="store_true", help="skip the demo run; time analyze on --out")
    ap.add_argument("--variant", help="which trained variant to time (default: the one the demo analysed, its best)")
    ap.add_argument("--dtypes", action="store_true", help="also time the in-process analysis in fp32 and in bf16")
    ap.add_argument("--emulate-avx2", action="store_true", help="run everything as on an AVX2-only CPU without "
                    "native bf16 (a child process with ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, EMOREASON_CPU_BF16=0)")
    ap.add_argument("--stages-only", action="store_true", help="print the per-stage table of a finished demo in --out and stop")
    args = ap.parse_args()
    if args.emulate_avx2 and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
        argv = [a for a in sys.argv[1:] if a != "--emulate-avx2"]
        sys.exit(subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv], env={**os.environ, **AVX2_ENV}).returncode)
    print(cpu_line())
    if args.stages_only:
        print("\n".join(stage_table(args.out)))
        return
    if not args.analyze_only:
        wall = run_demo(args.mode, args.out, args.threads, args.time_budget)
        print(f"demo {args.mode}: {wall:.0f} s wall ({wall / 60:.1f} min)")
        print("\n".join(stage_table(args.out)))
    bench_analyze(args.out, args.threads, args.variant, args.dtypes)


if __name__ == "__main__":
    main()
