"""The AudioLLM: encoders -> adapters -> audio tokens spliced into the LLM's input.

The model holds its parts and does not subclass the LLM (torchtune's ``EarlyFusionModel`` idea):
a dict of encoders, an ordered dict of adapters, the LLM and its tokenizer. It does three things
the processor does not: encode audio, map frames to tokens, and swap those tokens into the
``<audio>`` placeholder positions (``masked_scatter``), checking that every clip brought exactly as
many tokens as the processor put placeholders in its prompt.

Fusion is not a switch here: each adapter names the encoder(s) that feed it (``adapter.sources``),
and a clip's placeholders are filled with the adapters' tokens in adapter order. The builder picks
the adapters: ``sequence`` = speech adapter then emotion adapter, ``feature`` = one fusion adapter
over both encoders' frames, ``none`` = the speech adapter alone.

Names: encoder ``x`` is the submodule ``x_encoder`` and reads the batch's ``x_features`` /
``x_attention_mask``; adapter ``y`` is the submodule ``y_adapter``. Those submodule names are the
parameter-group names (``emoreason.config.PARAMETER_GROUPS``) and the prefixes of saved weights.
Saving and loading are the builder's (``emoreason.model.builder``), which knows the config.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from emoreason.config import PARAMETER_GROUPS
from emoreason.model.encoders import FRAMES_PER_WINDOW, fit_frames
from emoreason.model.frame_cache import FrameCache
from emoreason.model.static_decode import static_generate_kwargs

ENCODER_INPUTS = ("speech", "emotion")
"""Encoder names ``forward`` has inputs for (``speech_features``, ``emotion_features``, ...)."""


@dataclass
class AudioLLMOutput(CausalLMOutputWithPast):
    """What :meth:`AudioLLM.forward` returns: the LLM's output (``loss``, ``logits`` (B, L, V), ...)
    and what the audio side computed on the way.

    A ``ModelOutput`` subclass, so DDP (which flattens and rebuilds outputs) keeps every field.
    """

    label_logits: torch.FloatTensor | None = None
    """(B, n, K) float32 logits of the label-anchored pooled tokens' head
    (``model.emotion_pooled_kind: labels``) over the model's K emotion labels; None without one."""


class AudioLLM(nn.Module):
    """Encoders + adapters + causal LM.

    Args:
        encoders: name (``speech`` | ``emotion``) -> frame encoder (``emoreason.model.encoders``):
            ``encoder(features, mask) -> frames (B, T, d), frame_mask (B, T) | None``.
        adapters: name (``speech`` | ``emotion`` | ``fusion``) -> adapter
            (``emoreason.model.adapter``) with ``sources`` (encoder names whose frames it takes, in
            order) and ``k`` (frames per token); their order is the order their tokens fill each
            clip's placeholders.
        llm: a transformers causal LM, peft-wrapped when LoRA is on.
        tokenizer: the LLM tokenizer with the audio tokens (used by ``generate`` / scoring).
        audio_token_id: id of ``<audio>``, the placeholder every adapter's tokens fill.
        trainable_encoders: names of the encoders that are trained (they get a parameter group,
            train mode and activation checkpointing; the others are frozen and may be cached).
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        adapters: Mapping[str, nn.Module],
        llm: nn.Module,
        tokenizer: Any,
        audio_token_id: int,
        trainable_encoders: Iterable[str] = (),
    ):
        super().__init__()
        unknown = [n for n in encoders if n not in ENCODER_INPUTS]
        unknown += [f"{n}_adapter" for n in adapters if f"{n}_adapter" not in PARAMETER_GROUPS]
        if unknown:
            raise ValueError(f"unknown part names {unknown} (parameter groups are {PARAMETER_GROUPS})")
        if not adapters:
            raise ValueError("an AudioLLM needs at least one adapter")
        for name, adapter in adapters.items():
            missing = [s for s in adapter.sources if s not in encoders]
            if missing:
                raise ValueError(f"the {name} adapter reads encoders {missing}, which are not given")
        self.trainable_encoders = frozenset(trainable_encoders)
        if not self.trainable_encoders <= set(encoders):
            raise ValueError(f"trainable_encoders {sorted(self.trainable_encoders - set(encoders))} are not given")
        # Registered under their group names (not in a ModuleDict), so parameter names, and with
        # them every saved trainable.safetensors and checkpoint, read speech_adapter.*, llm.*, ...
        self.encoder_names: tuple[str, ...] = tuple(encoders)
        self.adapter_names: tuple[str, ...] = tuple(adapters)
        for name, module in encoders.items():
            self.add_module(f"{name}_encoder", module)
        for name, module in adapters.items():
            self.add_module(f"{name}_adapter", module)
        self.llm = llm
        self.tokenizer = tokenizer
        self.audio_token_id = audio_token_id
        self.decode_compile = "off"
        """How :meth:`generate` decodes: a concrete mode of :mod:`emoreason.model.static_decode`
        (``off``: transformers' dynamic cache; ``static`` / ``cudagraphs`` / ``inductor``: a static
        cache, compiled into CUDA graphs by the last two). ``Engine.load`` sets it."""
        self.frame_cache: FrameCache | None = None
        """When set (:meth:`use_frame_cache`), frozen encoders' frames come from this cache."""
        self._cached_encoders: frozenset[str] = frozenset()
        self.emotion_frame_affine: torch.Tensor | None = None
        """(B, 2, d) per-row (scale, shift) the adapters apply to the emotion encoder's frames
        (``frames * scale + shift``; speaker normalisation, :mod:`emoreason.inference.speaker_norm`),
        or None. Set for one batch of B clips by the caller (``Engine``); a batch of k * B rows (the
        same clips repeated, as the model's ASR rows are) repeats it. The encoder outputs
        (:meth:`encode`) stay raw."""

    # ------------------------------------------------------------------ structure
    @property
    def encoders(self) -> dict[str, nn.Module]:
        """name -> encoder, in construction order."""
        return {n: getattr(self, f"{n}_encoder") for n in self.encoder_names}

    @property
    def adapters(self) -> dict[str, nn.Module]:
        """name -> adapter, in placeholder order."""
        return {n: getattr(self, f"{n}_adapter") for n in self.adapter_names}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable-able parameters by group; each parameter is in exactly one group.

        Keys (in ``PARAMETER_GROUPS`` order): ``<name>_adapter`` per adapter, ``<name>_encoder``
        only for trainable encoders, ``lora`` when LoRA is on. Whisper's fixed sinusoidal position
        table is never trainable. Frozen LLM base weights are in no group. Groups come from the
        structure, not from ``requires_grad``, so a training loop may flip ``requires_grad`` per
        phase and still get the same groups.
        """
        groups: dict[str, list[nn.Parameter]] = {}
        for name, module in self.adapters.items():
            groups[f"{name}_adapter"] = list(module.parameters())
        for name, module in self.encoders.items():
            if name in self.trainable_encoders:
                groups[f"{name}_encoder"] = [p for n, p in module.named_parameters()
                                             if not n.endswith("embed_positions.weight")]
        lora = [p for n, p in self.llm.named_parameters() if "lora_" in n]
        if lora:
            groups["lora"] = lora
        return {k: groups[k] for k in PARAMETER_GROUPS if k in groups}

    def train(self, mode: bool = True) -> "AudioLLM":
        """Like ``nn.Module.train`` but frozen encoders stay in eval mode (no dropout/layerdrop
        noise in features nobody trains)."""
        super().train(mode)
        for name, module in self.encoders.items():
            if name not in self.trainable_encoders:
                module.eval()
        return self

    def gradient_checkpointing_enable(self) -> None:
        """Activation checkpointing in the LLM and in trainable encoders (non-reentrant, so frozen
        inputs need no ``requires_grad`` tricks)."""
        # transformers 5.x names it activation checkpointing; gradient_checkpointing_enable is a
        # deprecated alias (FutureWarning). peft forwards the call to the wrapped LLM.
        kwargs = {"activation_checkpointing_kwargs": {"use_reentrant": False}}
        self.llm.activation_checkpointing_enable(**kwargs)
        for name, module in self.encoders.items():
            inner = getattr(module, "encoder", None) or getattr(module, "model", None)
            if name in self.trainable_encoders and hasattr(inner, "activation_checkpointing_enable"):
                inner.activation_checkpointing_enable(**kwargs)

    def use_frame_cache(self, cache: FrameCache | None) -> list[str]:
        """Serve the frozen encoders' frames from ``cache`` (None: stop). Trainable encoders always
        run. Returns the submodule names (``speech_encoder``, ...) of the encoders the cache serves."""
        self.frame_cache = cache
        served = [] if cache is None else [n for n in self.encoder_names if n not in self.trainable_encoders]
        self._cached_encoders = frozenset(served)
        return [f"{n}_encoder" for n in served]

    @property
    def cached_encoders(self) -> list[str]:
        """Submodule names (``speech_encoder``, ...) of the encoders the frame cache serves now."""
        return [f"{n}_encoder" for n in self.encoder_names if n in self._cached_encoders]

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    # ------------------------------------------------------------------ audio -> tokens
    def _encode(self, name: str, features: torch.Tensor, mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """features -> frames (B, T, d) of encoder ``name``, and frame mask (B, T) or None."""
        encoder = getattr(self, f"{name}_encoder")
        if self.frame_cache is not None and name in self._cached_encoders:
            frames, frame_mask = self.frame_cache.encode(encoder, features, mask)
        else:
            frames, frame_mask = encoder(features, mask)
        if frame_mask is None:  # fixed 30 s window: exactly FRAMES_PER_WINDOW frames
            frames = fit_frames(frames, FRAMES_PER_WINDOW)
        return frames, frame_mask

    def encode_frames(self, name: str, features: torch.Tensor, mask: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One encoder alone: its features (B, n_mels, M) or (B, S) -> frames (B, T, d) and frame
        mask (B, T) or None (the frame cache serves it when set)."""
        return self._encode(name, features, mask)

    def _affine_emotion(self, frames: torch.Tensor) -> torch.Tensor:
        """:attr:`emotion_frame_affine` applied to (B', T, d) emotion frames (B' = k * B); out of place."""
        affine = self.emotion_frame_affine
        if affine is None:
            return frames
        rows, b = frames.shape[0], affine.shape[0]
        if rows % b:
            raise ValueError(f"emotion_frame_affine has {b} rows for a batch of {rows}")
        affine = affine.to(device=frames.device, dtype=torch.float32).repeat(rows // b, 1, 1)
        return (frames.float() * affine[:, :1] + affine[:, 1:]).to(frames.dtype)

    @staticmethod
    def _token_mask(tokens: torch.Tensor, frame_mask: torch.Tensor | None, k: int) -> torch.Tensor:
        """(B, T/k) bool: which adapter tokens belong to the clip (a token is valid when its first
        frame is: the processor rounds each clip up to whole groups)."""
        if frame_mask is None:
            return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return frame_mask[:, ::k][:, : tokens.shape[1]]

    def audio_tokens(
        self,
        speech_features: torch.Tensor | None,
        emotion_features: torch.Tensor | None = None,
        speech_attention_mask: torch.Tensor | None = None,
        emotion_attention_mask: torch.Tensor | None = None,
        precomputed: Mapping[str, tuple[torch.Tensor, torch.Tensor | None]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio -> (tokens (B, N, H), mask (B, N) bool). N sums the adapters' token counts, in
        adapter order; each clip's valid tokens, in row order, are what fills its placeholders.

        ``*_features``: (B, n_mels, M) log-mel or (B, S) waveform per encoder; ``*_attention_mask``
        (B, M) for dynamic-length mel. ``precomputed``: encoder name -> (frames, frame mask) already
        computed (:meth:`encode`); those encoders do not run. Raises ValueError when an encoder's
        features are missing.
        """
        tokens, mask, _ = self._audio_tokens(speech_features, emotion_features, speech_attention_mask,
                                             emotion_attention_mask, precomputed)
        return tokens, mask

    def _audio_tokens(
        self,
        speech_features: torch.Tensor | None,
        emotion_features: torch.Tensor | None,
        speech_attention_mask: torch.Tensor | None,
        emotion_attention_mask: torch.Tensor | None,
        precomputed: Mapping[str, tuple[torch.Tensor, torch.Tensor | None]] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`audio_tokens` plus the label-anchored head's (B, n, K) logits (None without one)."""
        inputs = {"speech": (speech_features, speech_attention_mask),
                  "emotion": (emotion_features, emotion_attention_mask)}
        frames: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = dict(precomputed or {})
        for name in self.encoder_names:
            if name in frames:
                continue
            features, mask = inputs[name]
            if features is None:
                raise ValueError(f"the model's {name} encoder needs {name}_features (the processor makes them)")
            frames[name] = self._encode(name, features, mask)
        if "emotion" in frames and self.emotion_frame_affine is not None:
            frames["emotion"] = (self._affine_emotion(frames["emotion"][0]), frames["emotion"][1])
        tokens, masks = [], []
        label_logits = None
        for adapter in self.adapters.values():
            frame_mask = frames[adapter.sources[0]][1]
            extra = getattr(adapter, "extra_tokens", 0)
            if not extra:
                out = adapter(*(frames[s][0] for s in adapter.sources))
                tokens.append(out)
                masks.append(self._token_mask(out, frame_mask, adapter.k))
                continue
            # Clip-level tokens follow the frame tokens and are always valid; the padded frame
            # tokens between them are dropped by the mask, so each clip's tokens stay contiguous.
            out, logits = adapter(*(frames[s][0] for s in adapter.sources), frame_mask=frame_mask,
                                  return_label_logits=True)
            label_logits = logits if logits is not None else label_logits
            tokens.append(out)
            pooled = torch.ones((out.shape[0], extra), dtype=torch.bool, device=out.device)
            masks.append(torch.cat([self._token_mask(out[:, :-extra], frame_mask, adapter.k), pooled], dim=1))
        if len(tokens) == 1:
            return tokens[0], masks[0], label_logits
        return torch.cat(tokens, dim=1), torch.cat(masks, dim=1), label_logits

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run every encoder on a processor batch once: ``{name}_frames`` (B, T, d) and, for
        dynamic-length Whisper, ``{name}_frame_mask`` (B, T) bool, per encoder name.

        Merged into the batch (``{**batch, **model.encode(batch)}``), they stand in for the
        encoders in :meth:`embed` (so :meth:`generate` and :meth:`score_candidates` on the same
        clips do not encode them again), and row slicing keeps them aligned (batch-first).
        """
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        out: dict[str, torch.Tensor] = {}
        for name in self.encoder_names:
            frames, mask = self._encode(name, batch[f"{name}_features"], batch.get(f"{name}_attention_mask"))
            out[f"{name}_frames"] = frames
            if mask is not None:
                out[f"{name}_frame_mask"] = mask
        return out

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Processor batch -> LLM input embeddings (B, L, H) with audio tokens in the placeholders.

        ``{name}_frames`` / ``{name}_frame_mask`` in the batch (from :meth:`encode`) replace
        running that encoder. Raises ValueError when a clip's audio token count differs from its
        placeholder count.
        """
        return self._embed(batch)[0]

    def _embed(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`embed` plus the label-anchored head's (B, n, K) logits (None without one)."""
        input_ids = batch["input_ids"]
        precomputed = {n: (batch[f"{n}_frames"], batch.get(f"{n}_frame_mask"))
                       for n in self.encoder_names if f"{n}_frames" in batch}
        tokens, mask, label_logits = self._audio_tokens(
            batch.get("speech_features"),
            batch.get("emotion_features"),
            batch.get("speech_attention_mask"),
            batch.get("emotion_attention_mask"),
            precomputed=precomputed,
        )
        is_audio = input_ids == self.audio_token_id
        example_index = batch.get("example_index")
        if example_index is None:
            placeholders = is_audio.sum(dim=1)
        else:  # packed rows (emoreason.model.packing): count per example, not per row
            placeholders = torch.bincount(example_index[is_audio], minlength=mask.shape[0])
        produced = mask.sum(dim=1)
        if placeholders.shape != produced.shape or not torch.equal(placeholders, produced):
            raise ValueError(
                f"audio token count mismatch: the prompts hold {placeholders.tolist()} <audio> placeholders "
                f"but the audio gives {produced.tolist()} tokens per clip (processor and model configs differ?)"
            )
        embeds = self.llm.get_input_embeddings()(input_ids)
        audio = tokens[mask].to(embeds.dtype)  # (sum N_i, H), row-major = placeholder order
        return embeds.masked_scatter(is_audio.unsqueeze(-1), audio), label_logits

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
        example_index: torch.Tensor | None = None,
        **llm_kwargs: Any,
    ) -> AudioLLMOutput:
        """-> :class:`AudioLLMOutput`: the LLM's ``CausalLMOutputWithPast`` (``.loss`` when labels are
        given, ``.logits (B, L, V)``) plus ``.label_logits`` (B, n, K) of the label-anchored pooled head.

        input_ids / attention_mask / labels (B, L); speech_features (B, n_mels, M) log-mel or
        (B, S) waveform; emotion_features likewise; ``*_attention_mask`` for dynamic-length mel.
        ``example_index`` (P, L): a packed batch (:func:`emoreason.model.packing.pack_batch`; rows
        P hold several examples, features stay one per example): positions restart per example
        and a block-diagonal causal mask keeps examples apart.
        """
        embeds, label_logits = self._embed({
            "input_ids": input_ids,
            "speech_features": speech_features,
            "emotion_features": emotion_features,
            "speech_attention_mask": speech_attention_mask,
            "emotion_attention_mask": emotion_attention_mask,
            "example_index": example_index,
        })
        if example_index is not None:
            from emoreason.model.packing import packed_attention_mask, packed_positions

            attention_mask = packed_attention_mask(example_index, embeds.dtype)
            positions = packed_positions(example_index)
        else:
            positions = self._positions(attention_mask)
        out = self.llm(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=positions,
            labels=labels,
            **llm_kwargs,
        )
        return AudioLLMOutput(**out, label_logits=label_logits)

    def eos_ids(self) -> list[int]:
        """The ids that end a generation (the generation config's and the tokenizer's EOS)."""
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
    def generate(self, batch: dict[str, torch.Tensor], max_new_tokens: int = 256, prompt_cache: Any = None,
                 **gen_kwargs: Any) -> list[str]:
        """Greedy (unless ``gen_kwargs`` say otherwise) responses for a left-padded processor batch
        (``targets=None``); returns the decoded responses only.

        ``prompt_cache``: the KV cache of this batch's first ``P`` columns (the prompt), as
        :meth:`score_candidates` returns it with ``keep_prompt_cache``; generation then computes
        only the columns after them (a forced prefix, or the prompt's last one) instead of the
        whole prompt again. The batch must hold that prompt unchanged in its first ``P`` columns
        (:func:`emoreason.inference.generation.append_tokens` with ``pad_between``). The cache is
        consumed (generation extends it). Without one, :attr:`decode_compile` says which cache the
        steps use (a prompt cache is dynamic, so a given one is always decoded ``off``)."""
        self._check_prompt_batch(batch, "generate")
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        embeds = self.embed(batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids()[0]
        kwargs = {"do_sample": False, "eos_token_id": self.eos_ids(), "pad_token_id": pad}
        kwargs.update(gen_kwargs)
        if prompt_cache is not None:
            kwargs["cache"] = prompt_cache
        else:
            kwargs.update(static_generate_kwargs(self.decode_compile, embeds.shape[1], max_new_tokens, self.llm.config))
        out = self.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                                max_new_tokens=max_new_tokens, **kwargs)
        # With inputs_embeds only, decoder-only generate returns just the new tokens.
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in out.tolist()]

    @torch.no_grad()
    def score_candidates(self, batch: dict[str, torch.Tensor], candidates: list[str],
                         keep_prompt_cache: bool = False) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Log-likelihood of each candidate as the start of the response: (B, C) float32.

        The prompt (left-padded) runs once with a KV cache; the cache is repeated C times and the
        candidate tokens (right-padded, (B*C, lc)) continue from it, so the cost is one prompt
        forward plus B*C short continuations instead of B*C prompt forwards. Audio is encoded once
        per clip. Sums candidate token log-probs with no length normalisation (forced choice among
        the candidates; the engine softmaxes).

        ``keep_prompt_cache``: also return the prompt's KV cache without its last column (B rows,
        L - 1 positions), for :meth:`generate`'s ``prompt_cache``: the explanation that follows
        then does not run the prompt through the LLM a second time (its last column is run again,
        so generation starts from logits of its own).
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
        scores = token_logp.sum(-1).view(b, c)
        if not keep_prompt_cache:
            return scores
        cache = out.cache
        if lc > 1:  # back to one row per clip (every candidate row holds the same prompt) and the prompt only
            cache.batch_select_indices(torch.arange(0, b * c, c, device=self.device))
            cache.crop(-(lc - 1))
        cache.crop(-1)
        return scores, cache
