"""Two CPU processes (torchrun, gloo DDP) with micro batch b/2 train exactly like one process with
micro batch b: same per-step losses and the same trained weights (tolerance for float reduction order)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from emoreason.data.dummy import make_dummy_corpus

WORKER = Path(__file__).parent / "train_ddp_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as e:  # the worker's own 120 s watchdog should have fired first
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(f"timed out; stderr tail:\n{err[-4000:]}") from None
    assert proc.returncode == 0, proc.stderr[-6000:]


def test_two_processes_equal_one_process_on_the_same_global_batch(tmp_path):
    manifest = str(make_dummy_corpus(20, tmp_path / "dummy"))
    _run([sys.executable, str(WORKER), str(tmp_path / "one"), manifest, "4"])
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
          "--master_port", str(_free_port()), str(WORKER), str(tmp_path / "two"), manifest, "2"])
    one = json.loads((tmp_path / "one" / "result.json").read_text())
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    assert (one["world"], two["world"]) == (1, 2)
    assert len(one["losses"]) == 6  # S E S E passes of one step each, 2 final steps (grad_accum 2)
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=0, atol=1e-6)
    assert set(one["weights"]) == set(two["weights"])
    for name, w in one["weights"].items():
        np.testing.assert_allclose(two["weights"][name], w, rtol=0, atol=1e-6, err_msg=name)
    # both wrote checkpoints the same way (rank 0 weights, one RNG file per rank)
    ckpt = sorted((tmp_path / "two" / "run" / "checkpoints").iterdir())[-1]
    assert {p.name for p in ckpt.iterdir()} >= {"rng-0.pt", "rng-1.pt", "trainable.safetensors", "state.json"}
