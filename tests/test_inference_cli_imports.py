"""Import guard of ``emoreason analyze``: building its command line, and a whole run against a
server, import none of what only a local analysis (torch, transformers), ``--out`` (asyncio, with
emoreason.jsonl), ``--timings`` (psutil) or a terminal's progress bar (tqdm) needs.

Each check runs in a fresh interpreter and looks at the modules the command added to
``sys.modules`` (what the interpreter had loaded before it started is not the command's doing)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAZY = ["torch", "transformers", "asyncio", "psutil", "tqdm", "emoreason.jsonl", "emoreason.inference.engine"]

PROBE = """
import json, sys
before = set(sys.modules)
{body}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _new_modules(body: str) -> set[str]:
    """Modules that running ``body`` in a fresh interpreter (stderr not a terminal) imported."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True, stdin=subprocess.DEVNULL)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_building_the_analyze_command_line_imports_nothing_heavy():
    new = _new_modules("from emoreason.cli import build_parser\n"
                       "build_parser(only='analyze').parse_args(['analyze', '--model', 'runs/x', 'a.wav'])")
    assert "emoreason.inference.cli" in new  # the probe really built the analyze verb
    assert not new & set(LAZY), sorted(new & set(LAZY))
    assert "importlib.metadata" not in new  # --version looks the version up only when asked


def test_an_analysis_through_a_server_imports_nothing_heavy(tmp_path):
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")  # never read: the (closed) server is asked first
    url = f"http://127.0.0.1:{_closed_port()}"
    new = _new_modules("from emoreason.cli import main\n"
                       f"assert main(['analyze', '--server', {url!r}, {str(clip)!r}]) == 1")
    assert "httpx" in new  # it did try the server
    assert not new & set(LAZY), sorted(new & set(LAZY))


def test_process_age_is_within_the_wall_time_the_parent_saw():
    """--timings counts the interpreter's start-up into "import" from the process start; that start
    must not be read early (psutil's create_time read up to ~0.8 s early on Linux)."""
    import subprocess
    import sys
    import time

    code = "import time; time.sleep(0.3); from emoreason.inference.cli import process_age; print(process_age())"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    assert 0.3 <= float(out) <= wall
