"""A stand-in AudioLLM + processor following docs/core-api.md, small enough that a training step
takes milliseconds. The training tests use it for schedule / resume / multi-process checks, so
they do not depend on (or pay for) the real model; the CLI test uses the real tiny model.

Parts mirror the contract: two encoders, two adapters, an LLM whose base weights are frozen and
whose "LoRA" is a low-rank delta with dropout (dropout makes RNG restore matter on resume).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

VOCAB = 260  # bytes + a few specials
N_FEAT = 8


class FakeProcessor:
    """waves / prompts / targets -> input_ids, attention_mask, labels, speech_/emotion_features."""

    def __call__(self, waves, prompts, targets=None, transcripts=None):  # transcripts: not rendered
        rows, labels = [], []
        for prompt, target in zip(prompts, targets or [""] * len(prompts)):
            p = list(prompt.encode()[:12]) + [256]
            t = list((target or "").encode()[:12]) + [257]
            rows.append(p + t)
            labels.append([-100] * len(p) + t)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), 258)
        lab = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (r, l) in enumerate(zip(rows, labels)):
            ids[i, : len(r)] = torch.tensor(r)
            lab[i, : len(l)] = torch.tensor(l)
            mask[i, : len(r)] = 1
        feats = torch.tensor(np.stack([_stats(w) for w in waves]), dtype=torch.float32)
        out = {"input_ids": ids, "attention_mask": mask, "speech_features": feats, "emotion_features": feats.flip(-1)}
        if targets is not None:
            out["labels"] = lab
        return out

    def save_pretrained(self, path):
        Path(path, "processor.json").write_text(json.dumps({"fake": True}))


def _stats(wave: np.ndarray) -> np.ndarray:
    """(T,) -> (N_FEAT,) crude frame statistics."""
    frames = np.array_split(np.asarray(wave, dtype=np.float32), N_FEAT)
    return np.array([np.sqrt(np.mean(f**2) + 1e-8) * 10 for f in frames], dtype=np.float32)


class FakeLoRALM(nn.Module):
    def __init__(self, hidden: int = 32, rank: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, hidden)
        self.mix = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, VOCAB)
        self.lora_a = nn.Linear(hidden, rank, bias=False)
        self.lora_b = nn.Linear(rank, hidden, bias=False)
        nn.init.normal_(self.lora_b.weight, std=0.02)  # non-zero so lora_a gets gradients at step 1
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.mix(h)) + self.lora_b(self.lora_a(self.dropout(h)))
        return self.head(h)


class FakeAudioLLM(nn.Module):
    """Contract-shaped model: forward(input_ids, attention_mask, speech_features, emotion_features)."""

    def __init__(self, hidden: int = 32, seed: int = 0, dropout: float = 0.1) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.speech_encoder = nn.Linear(N_FEAT, hidden)
        self.emotion_encoder = nn.Linear(N_FEAT, hidden)
        self.speech_adapter = nn.Linear(hidden, hidden)
        self.emotion_adapter = nn.Linear(hidden, hidden)
        self.llm = FakeLoRALM(hidden, dropout=dropout)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        lora = [self.llm.lora_a.weight, self.llm.lora_b.weight]
        return {
            "speech_encoder": list(self.speech_encoder.parameters()),
            "speech_adapter": list(self.speech_adapter.parameters()),
            "emotion_encoder": list(self.emotion_encoder.parameters()),
            "emotion_adapter": list(self.emotion_adapter.parameters()),
            "lora": lora,
        }

    def forward(self, input_ids, attention_mask, speech_features, emotion_features=None, labels=None, logits_to_keep=0):
        audio = self.speech_adapter(torch.tanh(self.speech_encoder(speech_features)))
        audio = audio + self.emotion_adapter(torch.tanh(self.emotion_encoder(emotion_features)))
        h = self.llm.embed(input_ids) + audio[:, None, :]
        # transformers' convention: keep the last N positions' logits (0 = all).
        return CausalLMOutputWithPast(logits=self.llm(h[:, -logits_to_keep:]))

    def save_pretrained(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        names = {id(p): n for n, p in self.named_parameters()}
        weights = {names[id(p)]: p.detach().clone() for ps in self.parameter_groups().values() for p in ps}
        save_file(weights, str(Path(path) / "trainable.safetensors"))
