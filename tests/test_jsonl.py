"""emoreason.jsonl: the one resumable-JSONL helper and atomic writes every writer uses."""
from __future__ import annotations

import asyncio
import json

import pytest

from emoreason.errors import UserError
from emoreason.jsonl import ResumableJsonl, atomic_open, atomic_write, cut_torn_tail, run_bounded


def test_resume_cuts_the_torn_tail_and_appends_on_a_new_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a", "v": 1}\n{"id": "b", "v": 2}\n{"id": "c", "v"')
    with ResumableJsonl(path) as out:
        assert out.was_torn and set(out.done) == {"a", "b"} and "c" not in out
        out.append({"id": "c", "v": 3})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b", "c"]
    assert not cut_torn_tail(path)


def test_finished_rows_only_and_in_order_rewrite(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"file": "x", "error": "bad"}\n{"file": "y"}\nnot json\n{"file": "x"}\n')
    out = ResumableJsonl(path, key="file", finished=lambda r: "error" not in r)
    assert set(out.done) == {"x", "y"}  # the failed try of x does not count, its retry does
    assert [r["file"] for r in out.rewrite_in_order(["y", "x", "z"])] == ["y", "x"]
    assert path.read_text() == '{"file": "y"}\n{"file": "x"}\n'  # duplicates and junk dropped


def test_strict_names_the_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\n[1, 2]\n')
    with pytest.raises(UserError, match=r"out.jsonl:2: not a manifest row"):
        ResumableJsonl(path, strict=True, what="a manifest row")


def test_atomic_open_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "m.json"
    atomic_write(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write("half of the new")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp file left behind


def test_run_bounded_stops_at_the_first_failure_and_keeps_what_finished(tmp_path):
    out = ResumableJsonl(tmp_path / "o.jsonl")
    in_flight = 0
    peak = 0

    async def work(i: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01 * (i % 3))
            if i == 5:
                raise UserError("endpoint died")
            out.append({"id": str(i)})
        finally:
            in_flight -= 1

    with pytest.raises(UserError, match="endpoint died"):
        asyncio.run(run_bounded(range(40), work, concurrency=3))
    out.close()
    assert peak == 3
    kept = ResumableJsonl(tmp_path / "o.jsonl").done
    assert "5" not in kept and 3 <= len(kept) < 40  # rows before the failure are on disk, the rest never started


def test_run_bounded_counts_every_item():
    seen: list[int] = []

    async def work(i: int) -> None:
        seen.append(i)

    assert asyncio.run(run_bounded(range(7), work, concurrency=32)) == 7
    assert sorted(seen) == list(range(7))
