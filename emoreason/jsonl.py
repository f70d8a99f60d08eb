"""Files that survive crashes: append-only, resumable JSON-lines outputs and atomic writes.

Every long-running writer (``data teach``, ``eval run``, ``eval score``, the cascade, ``analyze
--out``, the LLM response cache, training metrics) keeps its results in a JSONL file that grows
one flushed line per finished row, so a kill loses only the rows in flight and a rerun skips what
is done. They all go through :class:`ResumableJsonl`, so they all treat a crash the same way:

- a kill or a full disk can leave half a line at the end of the file: it is cut off on open
  (:func:`cut_torn_tail`), so the next row starts on its own line instead of being glued onto the
  fragment (which would make the file unparsable and lose that row);
- a bad line elsewhere is skipped or reported with its line number, as the writer chooses;
- when a run is complete, the file can be rewritten once, atomically, in input order.

:func:`run_bounded` is the async worker pool the endpoint-bound writers share: at most N rows in
flight, the first failure stops the rest, rows finished before it are already on disk.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from emoreason.errors import UserError

T = TypeVar("T")


class OutputError(UserError):
    """An output file cannot be written (full or read-only disk, no permission); one line."""


def cut_torn_tail(path: str | Path) -> bool:
    """Cut a JSONL file back to its last newline; return whether anything was cut.

    A process killed mid-write leaves a last line without its newline, and the next append would
    glue onto it. The file is scanned backwards in blocks, so a large file costs one block read.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        pos = size
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            idx = f.read(step).rfind(b"\n")
            if idx >= 0:
                f.truncate(pos + idx + 1)
                return True
        f.truncate(0)
        return True


def iter_jsonl(path: str | Path, strict: bool = False, what: str = "a JSON object") -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each line holding a JSON object; blank lines are skipped.

    A line that is not a JSON object raises UserError ``"path:N: not <what>"`` when ``strict``,
    else it is skipped (a cache loses one entry, never the run).
    """
    path = Path(path)
    if not path.is_file():
        return
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                if strict:
                    raise UserError(f"{path}:{lineno}: not UTF-8 text") from None
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                yield lineno, obj
            elif strict:
                raise UserError(f"{path}:{lineno}: not {what}")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    Readers never see half a file, and an exception (or a kill) leaves the old file as it was.
    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        with open(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # full disk mid-write: the old file is untouched
            raise OutputError(f"{path}: cannot write ({e.strerror or e}); the previous version is kept") from None
        raise


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write ``rows`` as a JSONL file atomically; return how many were written."""
    n = 0
    with atomic_open(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


class ResumableJsonl:
    """An append-only JSONL output that a rerun continues.

    On open, a torn last line is cut off and the rows already written are read; ``done`` maps each
    finished row's key to the row (the last one wins when a key repeats). ``append`` writes one
    row and flushes it, so it is on disk before the next one starts.

    Args:
        path: the output file (created on the first append; its folder is created on open).
        key: the field naming a row (``"id"``), or a function row -> key (None: not a row).
        finished: which rows count as done (default: every row with a key); e.g. results that
            are not errors, so failed rows are retried.
        strict: a line that is not a JSON object raises UserError naming its line (a file of
            another kind given by mistake) instead of being skipped.
        what: how such a line is described in that error.
    """

    def __init__(self, path: str | Path, key: str | Callable[[dict], Any] = "id",
                 finished: Callable[[dict], bool] | None = None, strict: bool = False,
                 what: str = "a JSON object") -> None:
        self.path = Path(path)
        self._key = (lambda row: row.get(key)) if isinstance(key, str) else key
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.was_torn = cut_torn_tail(self.path)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write ({e.strerror or e})") from None
        self.done: dict[Any, dict] = {}
        for _, row in iter_jsonl(self.path, strict=strict, what=what):
            k = self._key(row)
            if k is not None and (finished is None or finished(row)):
                self.done[k] = row
        self._file: IO[str] | None = None
        self.appended = 0

    def __contains__(self, key: Any) -> bool:
        return key in self.done

    def append(self, row: dict) -> None:
        """Write one row and flush it (a kill after this call loses nothing of it).

        A full or read-only disk raises :class:`OutputError` (one line); the rows written before
        stay, and a half-written last line is cut off so a rerun continues cleanly.
        """
        try:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as e:
            self._abandon()
            raise OutputError(f"{self.path}: cannot write ({e.strerror or e}); the {len(self.done)} rows "
                              "already written are kept, rerun once the disk has space / is writable") from None
        k = self._key(row)
        if k is not None:
            self.done[k] = row
        self.appended += 1

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as e:  # the last flush hit a full disk
                self._file = None
                self._abandon()
                raise OutputError(f"{self.path}: cannot write ({e.strerror or e}); rerun once the disk has space") from None
            self._file = None

    def _abandon(self) -> None:
        """After a failed write: drop the handle (its buffer cannot reach the disk) and cut any
        half line it left, so the file ends on a complete row."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            cut_torn_tail(self.path)

    def __enter__(self) -> ResumableJsonl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rewrite_in_order(self, order: Iterable[Any]) -> list[dict]:
        """Rewrite the file atomically with the finished rows of ``order`` (keys), in that order,
        and drop anything else (duplicates from retries, rows no longer asked for); return them."""
        self.close()
        rows = [self.done[k] for k in order if k in self.done]
        write_jsonl(self.path, rows)
        return rows


async def run_bounded(items: Iterable[T], work: Callable[[T], Awaitable[None]], concurrency: int) -> int:
    """Run ``await work(item)`` for every item, at most ``concurrency`` at a time; return how many
    finished.

    ``work`` writes its own result (e.g. with :meth:`ResumableJsonl.append`) and handles the
    failures it can recover from. Any exception it raises stops the pool: no new item starts, the
    items in flight are cancelled, and the first exception is re-raised. What finished before is
    already on disk, so a rerun continues from there.
    """
    queue: asyncio.Queue[T] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    finished = 0

    async def worker() -> None:
        nonlocal finished
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await work(item)
            finished += 1

    n = max(1, min(concurrency, queue.qsize()))
    tasks = [asyncio.create_task(worker()) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    # read every finished task's exception (two workers failing at once must not leave one
    # "never retrieved" to be printed as a traceback at exit), raise the first
    errors = [task.exception() for task in done if not task.cancelled() and task.exception() is not None]
    if errors:
        raise errors[0]
    return finished
