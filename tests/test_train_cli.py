"""`emoreason train` end to end on the packaged tiny config (real tiny model, generated clips), resume of
a finished run, and one-line errors for bad configs and data."""
import json

import pytest
import yaml

from emoreason.cli import main

TINY = "tiny"  # a packaged config name: `--config` looks it up in emoreason/configs/
# Fewer clips than the shipped config: the same code paths, half the time.
SMALL = ["data.train_manifest=dummy:20"]


def test_tiny_config_trains_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", TINY, "--out", str(out), "--cache-dir", str(tmp_path / "c"), *SMALL]) == 0
    assert {"config.yaml", "metrics.jsonl", "train.log", "final", "checkpoints"} <= {p.name for p in out.iterdir()}
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"]["train_manifest"] == "dummy:20" and cfg["train"]["lr"] == pytest.approx(3e-3)  # fully resolved
    assert cfg["train"]["betas"] == [0.9, 0.999]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert set(rows[0]) == {"step", "epoch", "phase", "task", "loss", "lr", "grad_norm", "samples_per_s"}
    phases = [r["phase"] for r in rows if r["task"] == "all"]
    assert phases[0] == "speech" and phases[-1] == "final" and "emotion" in phases
    assert {r["task"] for r in rows if r["phase"] == "speech"} <= {"asr", "sqa", "all"}
    final = {p.name for p in (out / "final").iterdir()}
    assert {"config.yaml", "trainable.safetensors"} <= final
    from emoreason.model.builder import load_pretrained

    model, processor = load_pretrained(out / "final")  # what inference will do
    assert "emotion_encoder" in model.parameter_groups()  # tiny.yaml trains the emotion encoder
    assert "done" in capsys.readouterr().out

    # rerun: auto-resumes from the last checkpoint, trains nothing more, metrics untouched
    before = (out / "metrics.jsonl").read_text()
    assert main(["train", "--config", TINY, "--out", str(out), "--cache-dir", str(tmp_path / "c"), *SMALL]) == 0
    assert (out / "metrics.jsonl").read_text() == before
    assert "resuming from" in (out / "train.log").read_text()
    # a different config must not continue these checkpoints
    code = main(["train", "--config", TINY, "--out", str(out), "--cache-dir", str(tmp_path / "c"), *SMALL, "train.lr=1"])
    assert code == 1
    assert "different config (train.lr changed)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["train.epochs=3"], "train.epochs=3: the alternating schedule needs epochs >= alternation_epochs + 1 = 5"),
        (["train.nope=1"], "unknown key train.nope"),
        (["train.schedule=zigzag"], "train.schedule='zigzag': expected one of"),
        (["data.train_manifest=/nonexistent/m.jsonl"], "/nonexistent/m.jsonl: manifest not found"),
    ],
)
def test_bad_config_gives_one_line_error(tmp_path, capsys, args, message):
    code = main(["train", "--config", TINY, "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("emoreason: error: ") and message in err and err.count("\n") == 1


def test_bad_manifest_row_names_its_line(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "audio": "a.wav", "task": "asr", "transcript": "hi", "split": "train"}\n'
                        '{"id": "b", "audio": "b.wav", "task": "emotion", "split": "train"}\n')
    assert main(["train", "--config", TINY, "--out", str(tmp_path / "r"), f"data.train_manifest={manifest}"]) == 1
    assert f"{manifest}:2: task 'emotion' needs a 'label'" in capsys.readouterr().err


def test_alternating_without_speech_rows_is_an_error(tmp_path, capsys):
    from emoreason.data.dummy import make_dummy_corpus

    rows = [line for line in make_dummy_corpus(8, tmp_path / "d").read_text().splitlines() if '"emotion"' in line]
    manifest = tmp_path / "emotion-only.jsonl"
    manifest.write_text("\n".join(r.replace('"wav/', f'"{tmp_path}/d/n8-seed0/wav/') for r in rows) + "\n")
    assert main(["train", "--config", TINY, "--out", str(tmp_path / "r"), f"data.train_manifest={manifest}"]) == 1
    assert "the speech phase trains on speech tasks, but the data has none (tasks: emotion)" in capsys.readouterr().err


def test_resume_flag_requires_a_checkpoint(tmp_path, capsys):
    assert main(["train", "--config", TINY, "--out", str(tmp_path / "r"), "--resume"]) == 1
    assert "--resume: no checkpoint in" in capsys.readouterr().err
    assert main(["train", "--config", TINY, "--out", str(tmp_path / "r"), "--resume", str(tmp_path)]) == 1
    assert "not a complete checkpoint directory" in capsys.readouterr().err


def test_train_seed_reproduces_a_run_whatever_used_the_rng_before(tmp_path):
    """The adapters are initialised while the model is built: two runs with the same train.seed are
    identical even when something else drew random numbers before one of them."""
    import torch
    from safetensors.torch import load_file

    losses, weights = [], []
    for i in range(2):
        torch.rand(1000 * (i + 1))  # a different RNG history before each run
        out = tmp_path / f"r{i}"
        assert main(["train", "--config", TINY, "--out", str(out), "--cache-dir", str(tmp_path / "c"), *SMALL]) == 0
        losses.append([json.loads(l)["loss"] for l in (out / "metrics.jsonl").read_text().splitlines()])
        weights.append(load_file(str(out / "final" / "trainable.safetensors")))
    assert losses[0] == losses[1]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
