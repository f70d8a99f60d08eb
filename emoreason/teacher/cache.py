"""Append-only on-disk cache of teacher answers, keyed by request hash (one JSON line each).

Lives next to the output (``T.jsonl.cache.jsonl`` by default) and can be shared between runs with
``--cache``: the same request (model, prompt, sampling) is never paid for twice. A line cut short by
a crash is ignored on load.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def truncate_torn_tail(path: str | Path) -> bool:
    """Cut a file back to its last newline (a process killed mid-write leaves half a line, and the
    next append would glue onto it). Returns whether anything was cut."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return False
        # scan back in blocks for the last newline
        pos = size
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            idx = block.rfind(b"\n")
            if idx >= 0:
                f.truncate(pos + idx + 1)
                return True
        f.truncate(0)
        return True


class ResponseCache:
    """``get(key)`` / ``put(key, value)`` over a JSONL file; values are any JSON value."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._data: dict[str, Any] = {}
        truncate_torn_tail(self.path)
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        item = json.loads(line)
                        self._data[item["key"]] = item["value"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a corrupt line costs one cached answer, never the run
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")
        self.hits = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Any | None:
        value = self._data.get(key)
        if value is not None:
            self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
