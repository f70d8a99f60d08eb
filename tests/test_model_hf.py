"""Hugging Face-native runs: config.json + AutoConfig/AutoModel after `import emoreason`, the LoRA as a
PEFT adapter folder, and `emoreason export` (self-contained, --merge) round trips with the same
forced-choice scores. The run uses local "pretrained" parts (Whisper, HuBERT and LLM folders written
here) so the export really has to carry their architectures and weights."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import emoreason  # noqa: F401  registers model_type emoreason with transformers
from emoreason.cli import main as cli_main
from emoreason.config import EncoderConfig, LLMConfig, LoRAConfig, ModelConfig
from emoreason.errors import UserError
from emoreason.model.builder import build_llm, build_model, load_pretrained, save_pretrained

CANDIDATES = ["happy", "sad", "angry", "neutral"]
REPORT = "| dataset | task | score |\n|---|---|---|\n| iemocap | emotion | 61.5 |\n"


def _local_parts(root):
    """Tiny Whisper, HuBERT and LLM checkpoints as local folders (what a hub download looks like)."""
    from transformers import HubertConfig, HubertModel, WhisperConfig, WhisperModel

    from emoreason.model.presets import encoder_preset

    torch.manual_seed(1)
    WhisperModel(WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                               vocab_size=100, max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                               decoder_start_token_id=1)).save_pretrained(root / "whisper")
    kwargs = encoder_preset("hubert-test", "hubert")
    kwargs.pop("model_type", None)
    HubertModel(HubertConfig(**kwargs)).save_pretrained(root / "hubert")
    llm, tokenizer = build_llm(LLMConfig(path="builtin:tiny", init="random", dtype="float32"))
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    return ModelConfig(
        speech_encoder=EncoderConfig(type="whisper", path=str(root / "whisper"), num_tokens=100),
        emotion_encoder=EncoderConfig(type="hubert", path=str(root / "hubert"), num_tokens=10),
        fusion="sequence",
        llm=LLMConfig(path=str(root / "llm"), dtype="float32"),
        lora=LoRAConfig(enabled=True, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run directory whose final/ has non-trivial LoRA and adapters, a config.yaml and an eval report."""
    root = tmp_path_factory.mktemp("hf")
    cfg = _local_parts(root / "parts")
    torch.manual_seed(0)
    model, processor = build_model(cfg)
    with torch.no_grad():  # "training": LoRA B starts at zero, make it matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    run_dir = root / "run"
    save_pretrained(model, cfg, run_dir / "final")
    processor.save_pretrained(run_dir / "final")
    (run_dir / "config.yaml").write_text("model:\n  fusion: sequence\ntrain:\n  lr: 0.0001\n")
    (run_dir / "eval" / "iemocap").mkdir(parents=True)
    (run_dir / "eval" / "iemocap" / "report.md").write_text(REPORT)
    return run_dir


def _scores(model, processor) -> torch.Tensor:
    rng = np.random.default_rng(0)
    waves = [rng.normal(0, 0.1, 16000).astype(np.float32), rng.normal(0, 0.1, 24000).astype(np.float32)]
    with torch.no_grad():
        return model.score_candidates(processor(waves, ["Which emotion?", "How does the speaker feel?"]), CANDIDATES)


@pytest.fixture(scope="module")
def reference(run):
    return _scores(*load_pretrained(run / "final"))


def test_autoconfig_and_automodel_open_final(run, reference):
    from transformers import AutoConfig, AutoModel

    from emoreason.model.hf import EmoReasonConfig, EmoReasonModel

    config = AutoConfig.from_pretrained(run / "final")
    assert isinstance(config, EmoReasonConfig) and config.model_type == "emoreason"
    assert config.emoreason["fusion"] == "sequence" and config.emoreason["lora"]["r"] == 4
    model = AutoModel.from_pretrained(run / "final")
    assert isinstance(model, EmoReasonModel)
    torch.testing.assert_close(_scores(model.audiollm, model.processor), reference, rtol=0, atol=0)


def test_registration_needs_only_import_emoreason(run):
    # a fresh interpreter: emoreason first (torch-free), transformers afterwards, then AutoConfig works
    # (an availability check first, as accelerate and peft do, must not use up the registration)
    code = ("import sys, importlib.util, emoreason; assert 'torch' not in sys.modules\n"
            "assert importlib.util.find_spec('transformers') is not None\n"
            "from transformers import AutoConfig\n"
            f"print(type(AutoConfig.from_pretrained({str(run / 'final')!r})).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "EmoReasonConfig"


def test_peft_loads_the_adapter_on_the_base_llm(run):
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    adapter = run / "final" / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert PeftConfig.from_pretrained(adapter).r == 4
    base = AutoModelForCausalLM.from_pretrained(run.parent / "parts" / "llm", dtype=torch.float32)
    peft_llm = PeftModel.from_pretrained(base, adapter).eval()
    ours, _ = load_pretrained(run / "final")
    ids = torch.tensor([[5, 17, 99, 42, 7]])
    with torch.no_grad():
        torch.testing.assert_close(peft_llm(input_ids=ids).logits, ours.llm(input_ids=ids).logits)
        # and the adapter is not a no-op: without it the logits differ
        with peft_llm.disable_adapter():
            assert not torch.allclose(peft_llm(input_ids=ids).logits, ours.llm(input_ids=ids).logits)


@pytest.mark.parametrize("merge", [False, True])
def test_export_round_trip(run, reference, tmp_path, merge):
    from safetensors.torch import load_file
    from transformers import AutoModel

    from emoreason.model.export import export_run

    out = export_run(run, tmp_path / "export", merge=merge)
    # self-contained: moved elsewhere, it loads without the original parts' folders
    moved = tmp_path / "elsewhere" / "model"
    shutil.move(str(out), str(moved))
    config_text = (moved / "config.yaml").read_text()
    assert str(run.parent) not in config_text and "./llm" in config_text and "./speech_encoder" in config_text
    model, processor = load_pretrained(moved)
    torch.testing.assert_close(_scores(model, processor), reference, rtol=0, atol=1e-4)
    hf = AutoModel.from_pretrained(moved)
    torch.testing.assert_close(_scores(hf.audiollm, hf.processor), reference, rtol=0, atol=1e-4)
    weights = {**load_file(str(moved / "random_base.safetensors")), **load_file(str(moved / "trainable.safetensors"))}
    assert any(k.startswith("speech_encoder.") for k in weights) and any(k.startswith("llm.") for k in weights)
    assert any("lora_" in k for k in weights) is (not merge)
    assert (moved / "adapter").is_dir() is (not merge)
    card = (moved / "README.md").read_text()
    assert "| iemocap | emotion | 61.5 |" in card and "lr: 0.0001" in card
    assert ("merged into its weights" in card) is merge


def test_old_run_directory_loads_and_export_converts_it(run, reference, tmp_path):
    from transformers import AutoConfig

    from emoreason.model.hf import EmoReasonModel

    old = tmp_path / "old"
    shutil.copytree(run / "final", old / "final")
    (old / "final" / "config.json").unlink()  # what runs saved before config.json existed look like
    shutil.rmtree(old / "final" / "adapter")
    torch.testing.assert_close(_scores(*load_pretrained(old / "final")), reference, rtol=0, atol=0)
    # transformers' AutoConfig needs config.json; our own class opens the old layout directly
    with pytest.raises((OSError, ValueError)):
        AutoConfig.from_pretrained(old / "final")
    hf = EmoReasonModel.from_pretrained(old / "final")
    torch.testing.assert_close(_scores(hf.audiollm, hf.processor), reference, rtol=0, atol=0)
    with pytest.raises(UserError, match="emoreason export RUN --out DIR"):
        EmoReasonModel.from_pretrained(old)  # the run directory, not its final/
    assert cli_main(["export", str(old), "--out", str(tmp_path / "converted")]) == 0
    assert AutoConfig.from_pretrained(tmp_path / "converted").model_type == "emoreason"


def test_export_errors_are_one_line(run, tmp_path, capsys):
    from emoreason.model.export import export_run

    with pytest.raises(UserError, match="no saved model here"):
        export_run(tmp_path / "nothing", tmp_path / "out")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not empty"):
        export_run(run, busy)
    assert (busy / "keep.txt").read_text() == "mine"
    assert cli_main(["export", str(run), "--out", str(tmp_path / "x"), "--eval", str(tmp_path / "none.md")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such report" in err
