"""metrics.jsonl rows, truncation on resume, train.log, and what the experiment tracker gets."""
import json
import logging

from emoreason.train.metrics import MetricsWriter, attach_file_log


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_per_task_and_truncation_on_resume(tmp_path):
    w = MetricsWriter(tmp_path)
    for step in (1, 2, 3):
        w.write(step, 0, "speech", 1e-4, 10.0, {"asr": 2.0, "all": 2.0})
    rows = _rows(tmp_path / "metrics.jsonl")
    assert len(rows) == 6 and rows[0] == {"step": 1, "epoch": 0, "phase": "speech", "task": "asr", "loss": 2.0,
                                          "lr": 1e-4, "samples_per_s": 10.0}
    MetricsWriter(tmp_path, resume_step=2)  # resumed from step-2: step 3 will be logged again
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl")] == [1, 1, 2, 2]
    MetricsWriter(tmp_path)  # fresh run: empty file
    assert (tmp_path / "metrics.jsonl").read_text() == ""
    MetricsWriter(tmp_path / "other", enabled=False).write(1, 0, "x", 0.0, 0.0, {"all": 1.0})  # non-main rank
    assert not (tmp_path / "other").exists()


def test_train_log_gets_emoreason_records(tmp_path):
    handler = attach_file_log(tmp_path)
    try:
        logging.getLogger("emoreason.train").info("hello %d", 7)
    finally:
        logging.getLogger("emoreason").removeHandler(handler)
        handler.close()
    assert "INFO emoreason.train: hello 7" in (tmp_path / "train.log").read_text()


def test_tracker_gets_the_same_values(tmp_path):
    logged = []
    w = MetricsWriter(tmp_path, tracker=lambda values, step: logged.append((step, values)))
    w.write(3, 0, "speech", 1e-4, 10.0, {"asr": 2.0, "all": 2.0}, grad_norm=0.75)
    w.write_validation(3, 0, "speech", {"asr": 1.5, "all": 1.5})
    w.close()
    assert logged == [(3, {"loss/asr": 2.0, "loss/all": 2.0, "lr": 1e-4, "samples_per_s": 10.0, "grad_norm": 0.75}),
                      (3, {"val_loss/asr": 1.5, "val_loss/all": 1.5})]
    assert [r.get("grad_norm") for r in _rows(tmp_path / "metrics.jsonl")] == [0.75, 0.75, None, None]
