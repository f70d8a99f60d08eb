"""Worker for tests/test_train_ddp.py: trains the stand-in model on a dummy corpus and writes the
per-step losses and trained weights to OUT_DIR (run under `accelerate launch` or plain python).

    python tests/train_ddp_worker.py OUT_DIR CORPUS_MANIFEST MICRO_BATCH
"""
import faulthandler
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from train_fakes import FakeAudioLLM, FakeProcessor  # noqa: E402

from emoreason.config import DataConfig, TrainConfig  # noqa: E402
from emoreason.data.dataset import Collator, ManifestDataset  # noqa: E402
from emoreason.train.loop import Trainer  # noqa: E402
from emoreason.train.schedule import build_schedule  # noqa: E402


def main() -> None:
    out, manifest, micro = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    # A run takes seconds; one still going after 120 s hangs: print every thread's stack (which
    # collective, which rank) and exit, so the test fails with that instead of its own timeout.
    faulthandler.dump_traceback_later(120, exit=True)
    torch.set_num_threads(1)
    train = TrainConfig(epochs=3, alternation_epochs=2, batch_size=micro, grad_accum=2, lr=1e-2, warmup_ratio=0.0,
                        weight_decay=0.01, precision="no")
    phases = build_schedule("alternating", 3, 1, 2, "speech", True, True, True)
    dataset = ManifestDataset(manifest, DataConfig().task_groups)
    trainer = Trainer(FakeAudioLLM(dropout=0.0), dataset, Collator(FakeProcessor()), phases, train, out / "run")
    results = trainer.fit()
    rank = trainer.acc.process_index
    print(f"rank {rank}: trained", file=sys.stderr, flush=True)
    trainer.close()
    print(f"rank {rank}: process group closed", file=sys.stderr, flush=True)
    if trainer.acc.is_main_process:
        weights = {k: v.tolist() for k, v in trainer.trainable_state().items()}
        (out / "result.json").write_text(json.dumps({
            "world": trainer.acc.num_processes, "losses": [r.loss for r in results], "weights": weights,
        }))
    faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    main()
