"""``auto`` precision and the engine's ``auto`` dtype: bf16 only where the CPU multiplies bf16 in hardware."""
import numpy as np
import pytest
import torch

from emoreason import hardware
from emoreason.errors import UserError
from emoreason.inference.engine import Engine
from emoreason.testing.tiny import save_tiny_run
from emoreason.train.loop import resolve_precision


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    """Point the detection at a fake /proc/cpuinfo with the given flags."""
    def use(flags: str):
        fake = tmp_path / "cpuinfo"
        fake.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: fpu sse2 avx2 {flags}\n\n")
        real = hardware.Path

        monkeypatch.setattr(hardware, "Path", lambda p: fake if p == "/proc/cpuinfo" else real(p))
        monkeypatch.delenv("EMOREASON_CPU_BF16", raising=False)
        hardware.cpu_has_native_bf16.cache_clear()

    yield use
    hardware.cpu_has_native_bf16.cache_clear()


@pytest.mark.parametrize("flags, native", [("avx512f avx512_bf16", True), ("amx_tile amx_bf16", True),
                                           ("avx512f avx512bw", False), ("", False)])
def test_native_bf16_detection(cpuinfo, monkeypatch, flags, native):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpuinfo(flags)
    assert hardware.cpu_has_native_bf16() is native
    assert resolve_precision("auto") == ("bf16" if native else "no")
    assert resolve_precision("no") == "no" and resolve_precision("bf16") == "bf16"


def test_environment_overrides_detection(cpuinfo, monkeypatch):
    cpuinfo("avx512_bf16")
    monkeypatch.setenv("EMOREASON_CPU_BF16", "0")
    hardware.cpu_has_native_bf16.cache_clear()
    assert hardware.cpu_has_native_bf16() is False
    monkeypatch.setenv("EMOREASON_CPU_BF16", "1")
    hardware.cpu_has_native_bf16.cache_clear()
    assert hardware.cpu_has_native_bf16() is True


def test_engine_dtypes(tmp_path, monkeypatch):
    run = save_tiny_run(tmp_path / "run")
    monkeypatch.setenv("EMOREASON_CPU_BF16", "0")
    hardware.cpu_has_native_bf16.cache_clear()
    fp32 = Engine.load(run)  # auto without native bf16: as trained
    assert next(fp32.model.llm.parameters()).dtype == torch.float32
    bf16 = Engine.load(run, dtype="bfloat16")
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    monkeypatch.setenv("EMOREASON_CPU_BF16", "1")
    hardware.cpu_has_native_bf16.cache_clear()
    assert next(Engine.load(run).model.parameters()).dtype == torch.bfloat16  # auto with native bf16
    hardware.cpu_has_native_bf16.cache_clear()
    wave = (0.1 * np.sin(np.arange(32000) / 20)).astype(np.float32)
    a, b = fp32.analyze([("clip", wave)], max_new_tokens=4)[0], bf16.analyze([("clip", wave)], max_new_tokens=4)[0]
    assert sum(b.scores.values()) == pytest.approx(1.0)
    assert b.scores == pytest.approx(a.scores, abs=0.05)  # bf16 rounding, same model
    with pytest.raises(UserError, match="unknown dtype"):
        Engine.load(run, dtype="int8")


@pytest.mark.parametrize("flags, native", [("avx512_bf16", True), ("", False)])
def test_one_auto_rule(cpuinfo, monkeypatch, flags, native):
    """Every ``auto`` asks hardware.auto_dtype; built weights stay fp32 on a CPU-only machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpuinfo(flags)
    expected = torch.bfloat16 if native else torch.float32
    assert hardware.auto_dtype("cpu") == hardware.resolve_dtype("auto", "cpu") == expected
    assert hardware.resolve_dtype("auto") == torch.float32  # builder: fp32 master weights for CPU training
    assert hardware.resolve_dtype("bfloat16") == torch.bfloat16
    assert hardware.auto_mixed_precision() == ("bf16" if native else "no")
    with pytest.raises(UserError, match="unknown dtype"):
        hardware.resolve_dtype("int8")


@pytest.mark.parametrize("gpu_bf16", [True, False])
def test_inference_casts_gpu_models_to_one_dtype(cpuinfo, monkeypatch, gpu_bf16):
    """On a GPU the builder leaves encoders and adapters fp32 (master weights for training) beside
    a bf16 LLM; an engine's ``auto`` casts the whole model to bf16 there (fp32 GEMMs in both encoders
    were a third of a paper-scale analyze's GPU time), on a CPU only with native bf16."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: gpu_bf16)
    assert hardware.inference_dtype("auto", "cuda") == (torch.bfloat16 if gpu_bf16 else None)
    assert hardware.inference_dtype("auto", torch.device("cuda", 0)) == (torch.bfloat16 if gpu_bf16 else None)
    cpuinfo("avx512_bf16" if gpu_bf16 else "")
    assert hardware.inference_dtype("auto", "cpu") == (torch.bfloat16 if gpu_bf16 else None)
    assert hardware.inference_dtype("float32", "cuda") == torch.float32  # a forced dtype always wins
    assert hardware.inference_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(UserError, match="unknown dtype"):
        hardware.inference_dtype("int8", "cpu")
