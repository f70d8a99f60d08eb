"""Load on ``emoreason serve``: requests/s and latency at concurrency 1 and 8 (batching across requests).

    .venv/bin/python benchmarks/serve_load.py --model /work/demo-quick-ref/runs/detailed-dual
    .venv/bin/python benchmarks/serve_load.py --model RUN --requests 16 --concurrency 1 4 8 --transcript none

Starts ``emoreason serve`` as a subprocess on a free 127.0.0.1 port, then for each concurrency c
sends ``--requests`` chat completions (``POST /v1/chat/completions``, one ``input_audio`` part, a
``--seconds`` clip, ``max_tokens`` ``--max-tokens``) from c client threads, and prints requests/s,
p50 / p99 latency and the mean batch size the server ran (from ``/health``'s counters). Clips are
the demo's held-out test clips (padded or cut to ``--seconds``) when the run sits in a demo
output directory, else a synthetic voice-like tone. Bounded: a fixed number of requests, and
``--timeout`` seconds per request; the server is stopped at the end. Not a test: the numbers
depend on the machine's load (see docs/inference.md for the ones measured here).
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np


def clips(run: Path, seconds: float, count: int = 8) -> list[bytes]:
    """Up to ``count`` WAV files of exactly ``seconds``: the demo's test clips when found."""
    import soundfile as sf

    from emoreason.audio import SAMPLE_RATE, load_audio

    n = int(seconds * SAMPLE_RATE)
    waves = []
    test = run.parent.parent / "testset" / "test.jsonl"
    if test.is_file():
        from emoreason.data.manifest import read_manifest, resolve_audio

        for row in read_manifest(test)[:count]:
            waves.append(load_audio(resolve_audio(row, test)))
    if not waves:  # a pitch-gliding tone with a 4 Hz syllable-like envelope
        t = np.arange(n) / SAMPLE_RATE
        waves = [0.3 * np.sin(2 * np.pi * (150 + 20 * k + 30 * np.sin(t)) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
                 for k in range(count)]
    out = []
    for wave in waves:
        buf = io.BytesIO()
        sf.write(buf, np.pad(wave, (0, max(0, n - wave.size)))[:n].astype(np.float32), SAMPLE_RATE, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    return out


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "emoreason", "serve", "--model", str(args.model), "--port", str(port),
           "--batch-size", str(args.batch_size), "--batch-wait-ms", str(args.batch_wait_ms),
           "--batch-regather-ms", str(args.batch_regather_ms),
           "--max-new-tokens", str(args.max_tokens), "--max-queue", str(max(64, 2 * max(args.concurrency)))]
    if args.dtype:
        cmd += ["--dtype", args.dtype]
    if args.decode_threads:
        cmd += ["--decode-threads", args.decode_threads]
    server = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"emoreason serve exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("emoreason serve did not start within 300 s")


def one_request(client: httpx.Client, url: str, model: str, wav: bytes, args: argparse.Namespace) -> float:
    body = {"model": model, "max_tokens": args.max_tokens, "transcript": args.transcript,
            "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}]}]}
    t0 = time.perf_counter()
    r = client.post(f"{url}/v1/chat/completions", json=body, timeout=args.timeout)
    r.raise_for_status()
    return time.perf_counter() - t0


def run_level(url: str, model: str, data: list[bytes], c: int, args: argparse.Namespace) -> dict[str, float]:
    before = httpx.get(f"{url}/health").json()["batches"]
    with httpx.Client() as client, ThreadPoolExecutor(c) as pool:
        t0 = time.perf_counter()
        latencies = list(pool.map(lambda i: one_request(client, url, model, data[i % len(data)], args), range(args.requests)))
        wall = time.perf_counter() - t0
    after = httpx.get(f"{url}/health").json()["batches"]
    lat = sorted(latencies)
    return {"rps": args.requests / wall, "p50": statistics.median(lat), "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "wall": wall, "mean_batch": (after["requests"] - before["requests"]) / max(1, after["runs"] - before["runs"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("/work/demo-quick-ref/runs/detailed-dual"))
    p.add_argument("--requests", type=int, default=64, help="requests per concurrency level (default: 64)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    p.add_argument("--seconds", type=float, default=5.0, help="clip length (default: 5)")
    p.add_argument("--max-tokens", type=int, default=48, help="explanation budget (default: 48)")
    p.add_argument("--transcript", choices=["auto", "model", "whisper", "none"], default="auto",
                   help="transcript source per request (default auto, the server's own default: the speech "
                        "encoder's Whisper decoder when it has one, else the model's ASR)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batch-wait-ms", type=float, default=10.0)
    p.add_argument("--batch-regather-ms", type=float, default=2000.0, help="the server's (0: gather for --batch-wait-ms only)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--decode-threads", help="the server's --decode-threads (auto | N | 0 = torch's default; default: the server's, auto)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request (default: 600)")
    args = p.parse_args()
    data = clips(args.model, args.seconds)
    server, url = start_server(args)
    try:
        model = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
        with httpx.Client() as client:
            for wav in data[:2]:  # warm-up
                one_request(client, url, model, wav, args)
        print(f"model {args.model} | {args.requests} requests per level | {args.seconds:g} s clips | max_tokens {args.max_tokens} | "
              f"transcript {args.transcript} | batch {args.batch_size} | regather {args.batch_regather_ms:g} ms | "
              f"decode threads {args.decode_threads or 'auto'} | load average {os.getloadavg()[0]:.1f} at start")
        results = {}
        for c in args.concurrency:
            r = results[c] = run_level(url, model, data, c, args)
            print(f"concurrency {c:>2}: {r['rps']:.3f} requests/s | p50 {r['p50']:.2f} s | p99 {r['p99']:.2f} s | "
                  f"mean batch {r['mean_batch']:.1f} | {r['wall']:.0f} s | load average {os.getloadavg()[0]:.1f}")
        low, high = min(results), max(results)
        if low != high:
            print(f"throughput c{high} / c{low}: {results[high]['rps'] / results[low]['rps']:.2f}x")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
