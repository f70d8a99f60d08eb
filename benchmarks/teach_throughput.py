"""Teach throughput against a local OpenAI-compatible server that answers in 50 ms.

Sequential (concurrency 1) vs concurrent (default 32) runs of the real pipeline (HTTP client,
retries, cache, checks, append-only output). The server runs in its own process, so it does not
compete with the client for the GIL. Target: concurrent >= 20x sequential.

    .venv/bin/python benchmarks/teach_throughput.py [--delay 0.05] [--concurrency 32] [--rows 960]
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emoreason.testing.fixtures import make_manifest
from emoreason.teacher.generate import make_teacher, teach


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "emoreason.testing.fakeserver", "--delay", str(delay)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"fake server did not start: {line!r}")
    return proc, line.split()[1]


def run(manifest: Path, url: str, concurrency: int, rows: int, workdir: Path) -> tuple[float, int]:
    out = workdir / f"out-c{concurrency}.jsonl"
    teacher = make_teacher(url, model="fake-teacher", concurrency=concurrency, timeout=30)
    t0 = time.perf_counter()
    summary = teach(manifest, out, teacher, concurrency=concurrency, limit=rows, progress=False)
    seconds = time.perf_counter() - t0
    assert summary.taught == rows and summary.errors == 0, summary.format()
    return seconds, summary.taught


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delay", type=float, default=0.05, help="server answer latency (s)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight for the concurrent run")
    p.add_argument("--rows", type=int, default=960, help="rows in the concurrent run")
    p.add_argument("--seq-rows", type=int, default=40, help="rows in the sequential run")
    p.add_argument("--min-speedup", type=float, default=20.0, help="exit 1 below this speedup")
    args = p.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    proc, url = start_server(args.delay)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            n = max(args.rows, args.seq_rows)
            rows = [(f"b{i:05d}", f"Row {i}: I can't believe how well this went, thank you!", "happy", "emotion", "s0") for i in range(n)]
            manifest = make_manifest(tmp / "D", rows=rows, audio=False)
            seq_s, seq_n = run(manifest, url, 1, args.seq_rows, tmp)
            con_s, con_n = run(manifest, url, args.concurrency, args.rows, tmp)
    finally:
        proc.terminate()
        proc.wait(5)
    seq_rate, con_rate = seq_n / seq_s, con_n / con_s
    speedup = con_rate / seq_rate
    ideal = args.concurrency / args.delay
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"server latency {args.delay * 1000:.0f} ms, {os.cpu_count()} CPUs, load average {load} (client + server share them)")
    print(f"| run | rows | seconds | rows/s |")
    print(f"|---|---|---|---|")
    print(f"| sequential (concurrency 1) | {seq_n} | {seq_s:.2f} | {seq_rate:.1f} |")
    print(f"| concurrency {args.concurrency} | {con_n} | {con_s:.2f} | {con_rate:.1f} |")
    print(f"speedup {speedup:.1f}x (ideal {ideal / (1 / args.delay):.0f}x; target >= {args.min_speedup:g}x)")
    return 0 if speedup >= args.min_speedup else 1


if __name__ == "__main__":
    sys.exit(main())
