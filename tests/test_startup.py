"""The collector paused and the start-up heap frozen, only for command lines (emoreason/startup.py).

Run in child processes: freezing pytest's own heap would keep every later test's garbage cycles.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from emoreason import startup


def _child(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_paused_block_freezes_what_it_built_and_restores_the_collector():
    found = _child("""
        import gc, json
        from emoreason.startup import gc_paused
        before = gc.get_freeze_count()
        with gc_paused(enabled=True):
            inside = gc.isenabled()
            made = [[i] for i in range(1000)]
        after_on = gc.isenabled()
        frozen = gc.get_freeze_count() - before
        gc.disable()  # a caller that had it off keeps it off
        with gc_paused(enabled=True):
            pass
        still_off = not gc.isenabled()
        try:
            with gc_paused(enabled=True):
                raise KeyError("x")
        except KeyError:
            pass
        print(json.dumps({"inside": inside, "after_on": after_on, "frozen": frozen, "still_off": still_off}))
    """)
    assert found["inside"] is False and found["after_on"] is True and found["still_off"] is True
    assert found["frozen"] >= 1000  # the lists made inside (and everything alive) are frozen


def test_only_a_command_line_opts_in():
    found = _child("""
        import gc, json
        from emoreason import startup
        from emoreason.cli import main
        with startup.gc_paused():  # a library caller: nothing changes
            library = gc.isenabled()
        try:
            main(["--help"])  # a caller in process passes argv: still nothing
        except SystemExit:
            pass
        with startup.gc_paused():
            in_process = gc.isenabled()
        import sys
        sys.argv = ["emoreason", "--help"]
        try:
            main()  # the command line itself
        except SystemExit:
            pass
        with startup.gc_paused():
            command = gc.isenabled()
        print(json.dumps({"library": library, "in_process": in_process, "command": command}))
    """)
    assert found == {"library": True, "in_process": True, "command": False}


def test_import_ml_stack_is_a_no_op_once_imported(monkeypatch):
    import transformers.modeling_utils  # noqa: F401  (imported: the call must not pause or freeze)

    calls = []
    monkeypatch.setattr(startup, "gc_paused", lambda *a, **k: calls.append(1) or pytest.fail("paused"))
    startup.import_ml_stack()
    assert calls == []
