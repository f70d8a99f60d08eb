"""Peak memory of `emoreason analyze` on long audio: the clip-dependent part alone, the whole CLI, the server.

    python benchmarks/long_audio_memory.py cues FILE.wav [--cues-module PATH]
    python benchmarks/long_audio_memory.py analyze FILE.wav --model RUN_DIR [--time-limit S] [-- ANALYZE ARGS...]
    python benchmarks/long_audio_memory.py server FILE.wav --model RUN_DIR [--port P] [-- FORM FIELDS k=v ...]

``cues``: decoding, windows and the acoustic cues of every window and of the whole clip (what the
engine computes besides the model) in this process; ``--cues-module`` measures another version of
``emoreason/cues.py`` (e.g. the pre-block one from ``git show 799403e:emoreason/cues.py >
/tmp/old_cues.py``; it is then given the file read whole, as the old loader did).

``analyze``: runs ``python -m emoreason analyze --model RUN_DIR FILE --json ARGS`` as a child and
prints its peak RSS (``wait4``), its wall time, and a timeline sampled every ``--sample-s`` seconds:
RSS and how far into FILE the child has read (its file offset, from /proc: the engine decodes long
files one window at a time, so this is the progress). ``--time-limit``: stop the child after S
seconds and report what it reached (for multi-hour files on slow machines).

``server``: starts ``python -m emoreason serve --model RUN_DIR`` on ``--port``, waits for /health,
POSTs FILE to /analyze (form fields ``k=v`` after ``--``, default ``max_new_tokens=0
transcript=none``) and prints the server's RSS before the request and its peak during it (VmHWM
minus RSS at rest: what one request added).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _status_kb(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` field in kB (VmRSS, VmHWM); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _file_pos(pid: int, path: Path) -> int | None:
    """Offset of ``pid``'s open descriptor on ``path`` (None when it has none open)."""
    target = str(path.resolve())
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
                        if line.startswith("pos:"):
                            return int(line.split()[1])
            except OSError:
                continue
    except OSError:
        pass
    return None


def cues(args: argparse.Namespace) -> None:
    from emoreason.audio import SAMPLE_RATE, split_windows

    if args.cues_module:
        import soundfile as sf

        spec = importlib.util.spec_from_file_location("other_cues", args.cues_module)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        data, _ = sf.read(args.file, dtype="float32")  # whole file at once, like the old loader
        wave = data if data.ndim == 1 else data.mean(1)
    else:
        from emoreason import cues as module
        from emoreason.audio import load_audio

        wave = load_audio(args.file)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.time()
    for _, _, chunk in split_windows(wave):  # per-window cues (segments), then the whole clip's
        module.measure_cues(chunk, SAMPLE_RATE, None)
    module.measure_cues(wave, SAMPLE_RATE, None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.file}: {wave.size / SAMPLE_RATE:.0f} s, peak RSS {peak:.0f} MB (after loading {loaded:.0f} MB), "
          f"cues {time.time() - start:.1f} s")


def analyze(args: argparse.Namespace) -> None:
    path = Path(args.file)
    size = path.stat().st_size
    cmd = [sys.executable, "-m", "emoreason", "analyze", "--model", args.model, str(path), "--json", *args.rest]
    print("$", " ".join(cmd), flush=True)
    start = time.time()
    with open(args.out or os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, env=ENV, stdout=out, stderr=subprocess.DEVNULL)
        next_sample, killed = start, False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.time()
            if now >= next_sample:
                pos = _file_pos(proc.pid, path)
                read = "-" if pos is None else f"{100 * pos / size:5.1f} %"
                print(f"  {now - start:7.0f} s  RSS {_status_kb(proc.pid, 'VmRSS') / 1024:6.0f} MB  "
                      f"peak {_status_kb(proc.pid, 'VmHWM') / 1024:6.0f} MB  file read {read}", flush=True)
                next_sample = now + args.sample_s
            if args.time_limit and now - start > args.time_limit and not killed:
                print(f"  time limit: peak so far {_status_kb(proc.pid, 'VmHWM') / 1024:.0f} MB, stopping", flush=True)
                proc.send_signal(signal.SIGTERM)
                killed = True
            time.sleep(0.5)
    code = os.waitstatus_to_exitcode(status)
    print(f"{path.name}: exit {code}{' (stopped at the time limit)' if killed else ''}, peak RSS "
          f"{usage.ru_maxrss / 1024:.0f} MB, wall {time.time() - start:.0f} s")


def server(args: argparse.Namespace) -> None:
    import httpx

    cmd = [sys.executable, "-m", "emoreason", "serve", "--model", args.model, "--port", str(args.port),
           "--request-timeout", "36000"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        rest = _status_kb(proc.pid, "VmRSS")
        peak = [_status_kb(proc.pid, "VmHWM")]
        done = threading.Event()

        def sample() -> None:  # the peak during the request (VmHWM is monotone; RSS for the timeline)
            while not done.wait(args.sample_s):
                print(f"  RSS {_status_kb(proc.pid, 'VmRSS') / 1024:6.0f} MB  peak {_status_kb(proc.pid, 'VmHWM') / 1024:6.0f} MB",
                      flush=True)

        threading.Thread(target=sample, daemon=True).start()
        fields = dict(kv.split("=", 1) for kv in (args.rest or ["max_new_tokens=0", "transcript=none"]))
        start = time.time()
        with open(args.file, "rb") as f:
            reply = httpx.post(url + "/analyze", files={"file": (Path(args.file).name, f, "audio/wav")}, data=fields,
                               timeout=36000)
        done.set()
        after = _status_kb(proc.pid, "VmHWM")
        print(f"{Path(args.file).name}: HTTP {reply.status_code} in {time.time() - start:.0f} s; server RSS at rest "
              f"{rest / 1024:.0f} MB (peak before the request {peak[0] / 1024:.0f} MB), peak during it "
              f"{after / 1024:.0f} MB: the request added {(after - max(rest, peak[0])) / 1024:.0f} MB")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["cues", "analyze", "server"])
    p.add_argument("file")
    p.add_argument("--cues-module", default=None, help="cues: path of another cues.py to measure")
    p.add_argument("--model", help="analyze / server: the run directory")
    p.add_argument("--sample-s", type=float, default=30.0, help="seconds between timeline samples (default: 30)")
    p.add_argument("--time-limit", type=float, default=None, help="analyze: stop the child after this many seconds")
    p.add_argument("--out", help="analyze: keep the child's JSON output here")
    p.add_argument("--port", type=int, default=8765)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    args.rest = argv[cut + 1 :]  # after --: analyze arguments / server form fields
    {"cues": cues, "analyze": analyze, "server": server}[args.mode](args)


if __name__ == "__main__":
    main()
