"""Running the CLI in a child process with faults: killed with SIGKILL at a seeded point, a file
size limit (a full disk, RLIMIT_FSIZE), another user (a read-only output directory); and the
child's own peak memory."""
from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "EMOREASON_CPU_BF16": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "emoreason", *args]


def kill_when(cmd: list[str], ready: Callable[[], bool], seed: int, max_extra_s: float = 0.5,
              timeout_s: float = 300) -> bool:
    """Start ``cmd``; once ``ready()`` is true (e.g. the output has k rows), wait a seeded random
    0..max_extra_s more and SIGKILL it. Returns whether it was killed (False: it finished first)."""
    extra = random.Random(seed).uniform(0, max_extra_s)
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    try:
        while proc.poll() is None and not ready():
            if time.time() > deadline:
                raise TimeoutError(f"{cmd} never reached the kill point")
            time.sleep(0.02)
        time.sleep(extra)
        if proc.poll() is not None:
            return False
        proc.kill()
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_limited(cmd: list[str], max_file_bytes: int | None = None, as_nobody: bool = False,
                timeout_s: float = 300) -> tuple[int, str, int]:
    """Run ``cmd`` with files capped at ``max_file_bytes`` (writes past it fail with EFBIG, like a
    full disk) and/or as user ``nobody`` (so a root test run still meets a read-only directory).
    Returns (exit code, stderr, the child's peak RSS in kB)."""
    def limit() -> None:
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
        if as_nobody and os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)

    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limit)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err, 0


def peak_rss_kb(cmd: list[str], timeout_s: float = 600) -> tuple[int, int]:
    """Run ``cmd``; return (exit code, its own peak RSS in kB, from wait4)."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss
        if time.time() > deadline:
            proc.kill()
            raise TimeoutError(cmd)
        time.sleep(0.1)


def rows(path: Path) -> list[dict]:
    """Every line of a JSONL file parsed (raises on a torn or glued line)."""
    import json

    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
