"""The dual-encoder AudioLLM: encoders -> adapters -> audio tokens spliced into the LLM's input.

The model holds its parts and does not subclass the LLM. It does three things the processor does
not: encode audio, map frames to tokens, and swap those tokens into the ``<audio>`` placeholder
positions (``masked_scatter``), checking that every clip brought exactly as many tokens as the
processor put placeholders in its prompt.

Token order per clip: fusion ``sequence`` -> [speech tokens, emotion tokens]; ``feature`` -> fused
tokens; ``none`` -> speech tokens.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from emoreason.model.adapter import FrameAdapter, FusionAdapter
from emoreason.model.encoders import FRAMES_PER_WINDOW, fit_frames
from emoreason.model.frame_cache import FrameCache

CONFIG_FILE = "config.yaml"
TRAINABLE_FILE = "trainable.safetensors"
RANDOM_BASE_FILE = "random_base.safetensors"
"""Full weights of the parts built with ``init: random`` (they cannot be re-created from an id)."""


class AudioLLM(nn.Module):
    """Speech encoder (+ emotion encoder) + adapters + causal LM.

    Args:
        speech_encoder / emotion_encoder: frame encoders (``emoreason.model.encoders``);
            emotion_encoder is None for fusion ``none``.
        speech_adapter / emotion_adapter / fusion_adapter: see ``emoreason.model.adapter``;
            ``sequence`` uses speech+emotion adapters, ``feature`` only the fusion adapter,
            ``none`` only the speech adapter.
        llm: a transformers causal LM, peft-wrapped when LoRA is on.
        tokenizer: the LLM tokenizer with the audio tokens (used by ``generate`` / scoring).
        audio_token_id: id of ``<audio>``.
        model_config: the ``ModelConfig`` this was built from (saved with the weights).
    """

    def __init__(
        self,
        *,
        speech_encoder: nn.Module,
        emotion_encoder: nn.Module | None,
        speech_adapter: FrameAdapter | None,
        emotion_adapter: FrameAdapter | None,
        fusion_adapter: FusionAdapter | None,
        llm: nn.Module,
        tokenizer: Any,
        audio_token_id: int,
        model_config: Any,
    ):
        super().__init__()
        self.speech_encoder = speech_encoder
        self.emotion_encoder = emotion_encoder
        self.speech_adapter = speech_adapter
        self.emotion_adapter = emotion_adapter
        self.fusion_adapter = fusion_adapter
        self.llm = llm
        self.tokenizer = tokenizer
        self.audio_token_id = audio_token_id
        self.model_config = model_config
        self.fusion: str = model_config.fusion
        self.frame_cache: FrameCache | None = None
        """When set (:meth:`use_frame_cache`), frozen encoders' frames come from this cache."""
        self._cached_encoders: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ structure
    def _trainable_encoders(self) -> dict[str, nn.Module]:
        out = {}
        for name in ("speech_encoder", "emotion_encoder"):
            module, cfg = getattr(self, name), getattr(self.model_config, name)
            if module is not None and cfg is not None and cfg.trainable:
                out[name] = module
        return out

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable-able parameters by group; each parameter is in exactly one group.

        Keys: ``speech_adapter`` / ``emotion_adapter`` (fusion sequence), ``fusion_adapter``
        (feature), ``speech_adapter`` (none), ``lora`` (when LoRA is on), and ``speech_encoder`` /
        ``emotion_encoder`` only for encoders whose config says ``trainable``. Whisper's fixed
        sinusoidal position table is never trainable. Frozen LLM base weights are in no group.
        Groups come from the structure, not from ``requires_grad``, so a training loop may flip
        ``requires_grad`` per phase and still get the same groups.
        """
        groups: dict[str, list[nn.Parameter]] = {}
        for name in ("speech_adapter", "emotion_adapter", "fusion_adapter"):
            module = getattr(self, name)
            if module is not None:
                groups[name] = list(module.parameters())
        for name, module in self._trainable_encoders().items():
            groups[name] = [p for n, p in module.named_parameters() if not n.endswith("embed_positions.weight")]
        lora = [p for n, p in self.llm.named_parameters() if "lora_" in n]
        if lora:
            groups["lora"] = lora
        return groups

    def train(self, mode: bool = True) -> "AudioLLM":
        """Like ``nn.Module.train`` but frozen encoders stay in eval mode (no dropout/layerdrop
        noise in features nobody trains)."""
        super().train(mode)
        trainable = self._trainable_encoders()
        for name in ("speech_encoder", "emotion_encoder"):
            module = getattr(self, name)
            if module is not None and name not in trainable:
                module.eval()
        return self

    def gradient_checkpointing_enable(self) -> None:
        """Activation checkpointing in the LLM and in trainable encoders (non-reentrant, so frozen
        inputs need no ``requires_grad`` tricks)."""
        # transformers 5.x names it activation checkpointing; gradient_checkpointing_enable is a
        # deprecated alias (FutureWarning). peft forwards the call to the wrapped LLM.
        kwargs = {"activation_checkpointing_kwargs": {"use_reentrant": False}}
        self.llm.activation_checkpointing_enable(**kwargs)
        for module in self._trainable_encoders().values():
            inner = getattr(module, "encoder", None) or getattr(module, "model", None)
            if hasattr(inner, "activation_checkpointing_enable"):
                inner.activation_checkpointing_enable(**kwargs)

    def use_frame_cache(self, cache: FrameCache | None) -> list[str]:
        """Serve the frozen encoders' frames from ``cache`` (None: stop). Trainable encoders always
        run. Returns the names of the encoders the cache now serves."""
        self.frame_cache = cache
        trainable = self._trainable_encoders()
        served = [] if cache is None else [n for n in ("speech_encoder", "emotion_encoder")
                                           if getattr(self, n) is not None and n not in trainable]
        self._cached_encoders = frozenset(served)
        return served

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    # ------------------------------------------------------------------ audio -> tokens
    def _encode(self, name: str, features: torch.Tensor, mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """features -> frames (B, T, d) of encoder ``name``, and frame mask (B, T) or None."""
        encoder = getattr(self, name)
        if self.frame_cache is not None and name in self._cached_encoders:
            frames, frame_mask = self.frame_cache.encode(encoder, features, mask)
        else:
            frames, frame_mask = encoder(features, mask)
        if frame_mask is None:  # fixed 30 s window: exactly 1500 frames
            frames = fit_frames(frames, FRAMES_PER_WINDOW)
        return frames, frame_mask

    @staticmethod
    def _token_mask(tokens: torch.Tensor, frame_mask: torch.Tensor | None, k: int) -> torch.Tensor:
        """(B, T/k) bool: which adapter tokens belong to the clip (a token is valid when its first
        frame is: the processor rounds each clip up to whole groups)."""
        if frame_mask is None:
            return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return frame_mask[:, ::k][:, : tokens.shape[1]]

    def audio_tokens(
        self,
        speech_features: torch.Tensor,
        emotion_features: torch.Tensor | None = None,
        speech_attention_mask: torch.Tensor | None = None,
        emotion_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio -> (tokens (B, N, H), mask (B, N) bool). Each clip's valid tokens, in row order,
        are what fills its placeholders."""
        mc = self.model_config
        ks = FRAMES_PER_WINDOW // mc.speech_encoder.num_tokens
        s_frames, s_mask = self._encode("speech_encoder", speech_features, speech_attention_mask)
        if self.fusion == "none":
            tokens = self.speech_adapter(s_frames)
            return tokens, self._token_mask(tokens, s_mask, ks)
        if emotion_features is None:
            raise ValueError(f"fusion {self.fusion!r} needs emotion_features (the processor makes them)")
        ke = FRAMES_PER_WINDOW // mc.emotion_encoder.num_tokens
        e_frames, e_mask = self._encode("emotion_encoder", emotion_features, emotion_attention_mask)
        if self.fusion == "feature":
            tokens = self.fusion_adapter(s_frames, e_frames)
            return tokens, self._token_mask(tokens, s_mask, ks)
        s_tok, e_tok = self.speech_adapter(s_frames), self.emotion_adapter(e_frames)
        tokens = torch.cat([s_tok, e_tok], dim=1)
        mask = torch.cat([self._token_mask(s_tok, s_mask, ks), self._token_mask(e_tok, e_mask, ke)], dim=1)
        return tokens, mask

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Processor batch -> LLM input embeddings (B, L, H) with audio tokens in the placeholders.

        Raises ValueError when a clip's audio token count differs from its placeholder count.
        """
        input_ids = batch["input_ids"]
        tokens, mask = self.audio_tokens(
            batch["speech_features"],
            batch.get("emotion_features"),
            batch.get("speech_attention_mask"),
            batch.get("emotion_attention_mask"),
        )
        is_audio = input_ids == self.audio_token_id
        placeholders, produced = is_audio.sum(dim=1), mask.sum(dim=1)
        if placeholders.shape != produced.shape or not torch.equal(placeholders, produced):
            raise ValueError(
                f"audio token count mismatch: the prompts hold {placeholders.tolist()} <audio> placeholders "
                f"but the audio gives {produced.tolist()} tokens per clip (processor and model configs differ?)"
            )
        embeds = self.llm.get_input_embeddings()(input_ids)
        audio = tokens[mask].to(embeds.dtype)  # (sum N_i, H), row-major = placeholder order
        return embeds.masked_scatter(is_audio.unsqueeze(-1), audio)

    # ------------------------------------------------------------------ LLM
    @staticmethod
    def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
        """Position ids that ignore left padding: (B, L) int64."""
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        speech_features: torch.Tensor,
        emotion_features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        speech_attention_mask: torch.Tensor | None = None,
        emotion_attention_mask: torch.Tensor | None = None,
        **llm_kwargs: Any,
    ):
        """-> transformers ``CausalLMOutputWithPast`` (``.loss`` when labels are given, ``.logits (B, L, V)``).

        input_ids / attention_mask / labels (B, L); speech_features (B, n_mels, M) log-mel or
        (B, S) waveform; emotion_features likewise; ``*_attention_mask`` for dynamic-length mel.
        """
        embeds = self.embed({
            "input_ids": input_ids,
            "speech_features": speech_features,
            "emotion_features": emotion_features,
            "speech_attention_mask": speech_attention_mask,
            "emotion_attention_mask": emotion_attention_mask,
        })
        return self.llm(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=self._positions(attention_mask),
            labels=labels,
            **llm_kwargs,
        )

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        gen_eos = getattr(self.llm.generation_config, "eos_token_id", None)
        for value in (gen_eos, self.tokenizer.eos_token_id):
            for i in value if isinstance(value, (list, tuple)) else [value]:
                if i is not None and i not in ids:
                    ids.append(int(i))
        return ids

    @staticmethod
    def _check_prompt_batch(batch: dict[str, torch.Tensor], what: str) -> None:
        """Generation and scoring continue every row at its end: rows must be left-padded prompts."""
        if "labels" in batch or not bool(batch["attention_mask"][:, -1].all()):
            raise ValueError(f"{what} needs a prompt batch: call the processor without targets (left padding)")

    @torch.no_grad()
    def generate(self, batch: dict[str, torch.Tensor], max_new_tokens: int = 256, **gen_kwargs: Any) -> list[str]:
        """Greedy (unless ``gen_kwargs`` say otherwise) responses for a left-padded processor batch
        (``targets=None``); returns the decoded responses only."""
        self._check_prompt_batch(batch, "generate")
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        embeds = self.embed(batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._eos_ids()[0]
        kwargs = {"do_sample": False, "eos_token_id": self._eos_ids(), "pad_token_id": pad}
        kwargs.update(gen_kwargs)
        out = self.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                                max_new_tokens=max_new_tokens, **kwargs)
        # With inputs_embeds only, decoder-only generate returns just the new tokens.
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in out.tolist()]

    @torch.no_grad()
    def score_candidates(self, batch: dict[str, torch.Tensor], candidates: list[str]) -> torch.Tensor:
        """Log-likelihood of each candidate as the start of the response: (B, C) float32.

        The prompt (left-padded) runs once with a KV cache; the cache is repeated C times and the
        candidate tokens (right-padded, (B*C, lc)) continue from it, so the cost is one prompt
        forward plus B*C short continuations instead of B*C prompt forwards. Audio is encoded once
        per clip. Sums candidate token log-probs with no length normalisation (forced choice among
        the candidates; the engine softmaxes).
        """
        self._check_prompt_batch(batch, "score_candidates")
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        if not candidates:
            raise ValueError("no candidates to score")
        cand = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in candidates]
        if any(not ids for ids in cand):
            raise ValueError(f"a candidate tokenises to nothing: {candidates}")
        b, c, lc = batch["input_ids"].shape[0], len(cand), max(len(ids) for ids in cand)
        cand_ids = torch.zeros((c, lc), dtype=torch.long, device=self.device)
        cand_mask = torch.zeros((c, lc), dtype=torch.long, device=self.device)
        for j, ids in enumerate(cand):
            cand_ids[j, : len(ids)] = torch.tensor(ids)
            cand_mask[j, : len(ids)] = 1
        prompt_mask = batch["attention_mask"]
        prompt_pos = self._positions(prompt_mask)
        out = self.llm(inputs_embeds=self.embed(batch), attention_mask=prompt_mask, position_ids=prompt_pos,
                       use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).repeat_interleave(c, 0)  # (B*C, V): token 0
        target = cand_ids.repeat(b, 1)  # (B*C, lc), row i*C + j = clip i, candidate j
        logp = [first.gather(-1, target[:, :1])]
        if lc > 1:
            cache = out.cache  # transformers 5.x name (``past_key_values`` is a deprecated alias)
            cache.batch_repeat_interleave(c)
            mask = torch.cat([prompt_mask.repeat_interleave(c, 0), cand_mask.repeat(b, 1)], dim=1)
            # Candidate token t sits right after the prompt's last real position (left padding).
            pos = prompt_pos[:, -1:].repeat_interleave(c, 0) + 1 + torch.arange(lc - 1, device=self.device)
            emb = self.llm.get_input_embeddings()
            cont = self.llm(inputs_embeds=emb(target[:, :-1]), attention_mask=mask[:, :-1], position_ids=pos,
                            cache=cache, use_cache=True)
            rest = torch.log_softmax(cont.logits.float(), dim=-1)  # (B*C, lc-1, V): predicts tokens 1..lc-1
            logp.append(rest.gather(-1, target[:, 1:].unsqueeze(-1)).squeeze(-1))
        token_logp = torch.cat(logp, dim=1) * cand_mask.repeat(b, 1)
        return token_logp.sum(-1).view(b, c)

    # ------------------------------------------------------------------ persistence
    def _random_parts(self) -> dict[str, nn.Module]:
        """Parts built with ``init: random``: saved in full (there is no id to reload them from)."""
        mc = self.model_config
        parts: dict[str, nn.Module] = {}
        for name in ("speech_encoder", "emotion_encoder"):
            cfg = getattr(mc, name)
            if getattr(self, name) is not None and cfg is not None and cfg.init == "random":
                parts[name] = getattr(self, name)
        if mc.llm.init == "random" or mc.llm.path == "builtin:tiny":
            parts["llm"] = self.llm
        return parts

    def save_pretrained(self, directory: str | Path, groups: list[str] | None = None) -> None:
        """Write ``config.yaml``, ``trainable.safetensors`` and, when some parts were randomly
        initialised, ``random_base.safetensors``; plus the tokenizer files.

        Args:
            groups: parameter-group keys to save (default: every group of ``parameter_groups()``,
                i.e. adapters + LoRA + encoders whose config says trainable).
        """
        import yaml
        from safetensors.torch import save_file

        from emoreason.config import to_dict

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        all_groups = self.parameter_groups()
        keys = list(all_groups) if groups is None else groups
        unknown = [k for k in keys if k not in all_groups]
        if unknown:
            raise ValueError(f"unknown parameter groups {unknown} (have {sorted(all_groups)})")
        wanted = {id(p) for k in keys for p in all_groups[k]}
        trainable = {n: p for n, p in self.named_parameters() if id(p) in wanted}
        save_file(_plain(trainable), str(directory / TRAINABLE_FILE), metadata={"groups": ",".join(keys)})
        random_parts = self._random_parts()
        if random_parts:
            state = {f"{name}.{k}": v for name, part in random_parts.items() for k, v in part.state_dict().items()}
            save_file(_plain(state), str(directory / RANDOM_BASE_FILE))
        (directory / CONFIG_FILE).write_text(yaml.safe_dump(to_dict(self.model_config), sort_keys=False))
        self.tokenizer.save_pretrained(str(directory))

    def load_weights(self, path: str | Path) -> list[str]:
        """Load a safetensors file written by :meth:`save_pretrained` into this model.

        Every key in the file must exist here (a mismatch means a different architecture).
        Returns the loaded key names.
        """
        from safetensors.torch import load_file

        state = load_file(str(path), device=str(self.device))
        own = self.state_dict(keep_vars=True)
        unexpected = [k for k in state if k not in own]
        if unexpected:
            raise ValueError(f"{path}: {len(unexpected)} weights do not fit this model, e.g. {unexpected[:3]}")
        with torch.no_grad():
            for k, v in state.items():
                if own[k].shape != v.shape:
                    raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, the model has {tuple(own[k].shape)}")
                own[k].copy_(v.to(own[k].dtype))
        return list(state)


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous, unshared CPU copies (safetensors refuses tied/shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
