"""Resumable stages: each writes its outputs, then a ``DONE.json`` marker holding its parameters.

    runner = StageRunner(out_dir)
    result = runner.run("corpus", {"n": 240, "seed": 0}, lambda d: make_corpus(d))

A stage directory holds ``PARAMS.json`` (written when the stage starts) and ``DONE.json``
(written when it finished: parameters, the stage's result dict and its wall time).

- Same parameters and a ``DONE.json``: the stage is skipped and its recorded result returned.
- Same parameters, no ``DONE.json`` (interrupted): the stage runs again in the same directory, so
  work that resumes by itself (training checkpoints, appended predictions) continues.
- Different parameters: the directory is emptied first (stale outputs must not leak into the new
  run), then the stage runs.

Parameters are compared as JSON, and a stage that depends on another includes
:meth:`StageRunner.digest` of it, so a change upstream reruns everything downstream.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from emoreason.jsonl import atomic_write

PARAMS = "PARAMS.json"
DONE = "DONE.json"


def _canonical(params: dict[str, Any]) -> Any:
    """JSON round trip: tuples become lists, so a reloaded marker compares equal."""
    return json.loads(json.dumps(params, sort_keys=True))


def _write_json(path: Path, data: Any) -> None:
    """Atomic write (temp file + rename): a killed process never leaves half a marker."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class StageRunner:
    """Runs named stages under ``out_dir`` (one sub-directory each; see module docstring).

    Args:
        out_dir: the demo's output directory.
        log: called with one human-readable line per stage event (default: print).
    """

    def __init__(self, out_dir: str | Path, log: Callable[[str], None] = print) -> None:
        self.out = Path(out_dir)
        self.log = log
        self.timings: dict[str, float] = {}
        """stage name -> seconds it took when it last ran (also for reused stages)."""
        self.reused: list[str] = []

    def path(self, name: str) -> Path:
        return self.out / name

    def digest(self, name: str) -> str:
        """Short hash of a finished stage's parameters (for downstream stages' parameters)."""
        marker = _read_json(self.path(name) / DONE)
        if not isinstance(marker, dict):
            raise RuntimeError(f"stage {name} has not finished")
        blob = json.dumps(marker["params"], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def run(self, name: str, params: dict[str, Any], fn: Callable[[Path], dict[str, Any] | None]) -> dict[str, Any]:
        """Run ``fn(stage_dir)`` unless it already finished with ``params``; return its result."""
        directory = self.path(name)
        params = _canonical(params)
        marker = _read_json(directory / DONE)
        if isinstance(marker, dict) and marker.get("params") == params:
            self.timings[name] = float(marker.get("seconds", 0.0))
            self.reused.append(name)
            self.log(f"[demo] {name}: done earlier with the same parameters, reusing {directory}")
            return marker.get("result") or {}
        started = _read_json(directory / PARAMS)
        if directory.exists() and started != params:
            if started is not None or marker is not None:
                self.log(f"[demo] {name}: parameters changed, starting this stage again")
            shutil.rmtree(directory)
        elif started == params:
            self.log(f"[demo] {name}: resuming an interrupted run")
        directory.mkdir(parents=True, exist_ok=True)
        _write_json(directory / PARAMS, params)
        tic = time.perf_counter()
        result = fn(directory) or {}
        seconds = time.perf_counter() - tic
        self.timings[name] = seconds
        _write_json(directory / DONE, {"params": params, "result": result, "seconds": round(seconds, 2)})
        self.log(f"[demo] {name}: done in {seconds:.1f} s")
        return result
