"""Adapters that turn encoder frames into LLM tokens (MERaLiON-AudioLLM style).

    LayerNorm(d) -> group k consecutive frames (B, T, d) -> (B, T/k, k*d)
    -> Linear(k*d, d) -> SiLU -> Linear(d, 4d) -> SiLU -> Linear(4d, H)

Speech: 1500 frames, k=15 -> 100 tokens. Emotion: k=150 -> 10 tokens (its first Linear is the big
one: 150*1280*1280 = 246M weights at Whisper-large width).

With ``out_rms`` set (``model.adapter_output_norm``), every adapter ends in ``OutputRMS``: each
token is divided by its own RMS and multiplied by ``out_rms`` (the LLM's token-embedding RMS), so
the audio tokens stay at the scale of the text tokens around them however large the MLP's output
grows during training (measured on the quick demo: 73-145x the embedding RMS without it).

Every adapter names the encoders that feed it (``sources``, in the order ``forward`` takes their
frames) and its group size ``k``: that is all ``AudioLLM`` needs to route frames to it and to tell
which of its tokens belong to a clip. Fusion is then a choice of adapters (see the builder).
An adapter with ``extra_tokens`` > 0 (the emotion adapter with ``model.emotion_pooled_tokens``)
also takes the frame mask and appends that many clip-level tokens after its frame tokens.
"""
from __future__ import annotations

import torch
from torch import nn


def group_frames(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T, d) -> (B, T/k, k*d); T must be a multiple of k (encoders pad to guarantee it)."""
    b, t, d = x.shape
    if t % k:
        raise ValueError(f"frame count {t} is not a multiple of the adapter group size {k}")
    return x.reshape(b, t // k, k * d)


class _MLP(nn.Sequential):
    """Linear(k*d, d) -> SiLU -> Linear(d, 4d) -> SiLU -> Linear(4d, H)."""

    def __init__(self, in_dim: int, d: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, d), nn.SiLU(), nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, out_dim))


class OutputRMS(nn.Module):
    """Parameter-free RMS norm to a fixed scale: (..., H) -> (..., H), every token's RMS = ``scale``.

    No weights, so nothing to save: the scale is recomputed from the LLM's embeddings whenever the
    model is built, which gives the same number on load as in training.
    """

    def __init__(self, scale: float, eps: float = 1e-12):
        super().__init__()
        self.scale = float(scale)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., H) -> x / rms(x) * scale, rms over the last dim, in fp32; ``eps`` is tiny so that
        small tokens (a fresh adapter gives RMS ~0.05) are scaled up too, not damped."""
        x32 = x.float()
        rms = x32.pow(2).mean(dim=-1, keepdim=True).add(self.eps).sqrt()
        return (x32 * (self.scale / rms)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}"


def _output(out_rms: float | None) -> nn.Module:
    """``OutputRMS(out_rms)``, or the identity when ``out_rms`` is None (the paper's adapter)."""
    return nn.Identity() if out_rms is None else OutputRMS(out_rms)


def masked_mean_std(frames: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
    """frames (B, T, d), frame_mask (B, T) bool or None (all valid) -> (B, 2d): per clip, the mean
    and the standard deviation of its valid frames over time, in fp32 (padding frames of a
    dynamic-length batch must not count, or a short clip's statistics would depend on its batch)."""
    x = frames.float()
    if frame_mask is None:
        w = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
    else:
        w = frame_mask.to(x.dtype)
    w = w.unsqueeze(-1)  # (B, T, 1)
    n = w.sum(dim=1).clamp(min=1.0)  # (B, 1)
    mean = (x * w).sum(dim=1) / n
    var = (((x - mean.unsqueeze(1)) ** 2) * w).sum(dim=1) / n
    return torch.cat([mean, var.add(1e-6).sqrt()], dim=-1)


class PooledTokens(nn.Module):
    """Utterance-level tokens: (B, T, d) frames -> mean + std over the clip (B, 2d) -> LayerNorm
    -> Linear(2d, d) -> SiLU -> Linear(d, n*H) -> (B, n, H).

    Why: the frame adapter sees k frames per token, so a clip-wide property (how high and how
    varied the voice is over the whole utterance) must be assembled by the LLM from many tokens;
    a logistic regression on exactly these pooled statistics of the same frozen encoder beats the
    AudioLLM (docs/training.md, "Label accuracy"). These tokens hand the LLM that summary directly.
    """

    def __init__(self, in_dim: int, out_dim: int, n: int, out_rms: float | None = None):
        super().__init__()
        self.n = n
        self.norm = nn.LayerNorm(2 * in_dim)
        self.mlp = nn.Sequential(nn.Linear(2 * in_dim, in_dim), nn.SiLU(), nn.Linear(in_dim, n * out_dim))
        self.out = _output(out_rms)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B, T, d), frame_mask (B, T) bool or None -> tokens (B, n, H)."""
        stats = masked_mean_std(frames, frame_mask).to(self.norm.weight.dtype)
        out = self.mlp(self.norm(stats))
        return self.out(out.view(out.shape[0], self.n, -1))


class LabelMixtureTokens(nn.Module):
    """Label-anchored utterance tokens: (B, T, d) frames -> mean + std (B, 2d) -> LayerNorm ->
    Linear(2d, n*K) -> softmax over the K labels -> probability-weighted mix of the LLM's own
    embeddings of the label words -> (B, n, H).

    Why: the pooled MLP tokens (:class:`PooledTokens`) must learn both what the clip sounds like
    and how to say it in the LLM's input space, from random init, in a few dozen steps; the runs
    in docs/training.md ("Label accuracy") show that is too slow. Here the head is a linear probe
    (what beats the AudioLLM on the same frozen encoder), and its output already lives where the
    LLM reads words: a clip the head calls "sad" puts (mostly) the embedding of " sad" among the
    audio tokens, which a pretrained LLM can copy into its answer from the first step. The head
    starts at zero (a uniform mix), so the first steps add no noise to the LLM's input.

    ``label_embeddings`` (K, H): not a weight (recomputed from the LLM whenever the model is built
    or loaded, :func:`emoreason.model.builder.sync_output_scales`), so it is a non-persistent buffer.
    """

    def __init__(self, in_dim: int, n: int, label_embeddings: torch.Tensor):
        super().__init__()
        self.n = n
        self.num_labels = int(label_embeddings.shape[0])
        self.norm = nn.LayerNorm(2 * in_dim)
        self.head = nn.Linear(2 * in_dim, n * self.num_labels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("label_embeddings", label_embeddings.detach().float().clone(), persistent=False)

    def label_logits(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B, T, d), frame_mask (B, T) bool or None -> (B, n, K) float32 label logits."""
        stats = masked_mean_std(frames, frame_mask).to(self.norm.weight.dtype)
        return self.head(self.norm(stats)).view(stats.shape[0], self.n, self.num_labels).float()

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None, return_logits: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """frames (B, T, d), frame_mask (B, T) bool or None -> tokens (B, n, H); with ``return_logits``
        also the (B, n, K) label logits they were mixed from (for the auxiliary label loss,
        ``train.pooled_label_loss_weight``, which ``AudioLLM.forward`` hands on as ``label_logits``)."""
        logits = self.label_logits(frames, frame_mask)
        # The mix in the buffer's dtype: a model cast to bf16 for inference (Engine.load on a CPU
        # with native bf16) has a bf16 buffer, while the logits are always float32.
        tokens = logits.softmax(dim=-1).to(self.label_embeddings.dtype) @ self.label_embeddings
        return (tokens, logits) if return_logits else tokens


class FrameAdapter(nn.Module):
    """One encoder's adapter: (B, T, d) frames -> (B, T/k, H) LLM tokens.

    Args:
        in_dim: the encoder's width d; out_dim: the LLM's hidden size H; k: frames per token.
        source: name of the encoder that feeds it (a key of ``AudioLLM``'s encoders).
        out_rms: None (plain MLP output) or the RMS every output token is normalised to.
        pooled: number of utterance tokens (:class:`PooledTokens`) appended after the frame
            tokens (``model.emotion_pooled_tokens``); 0 = none. ``extra_tokens`` says how many.
        label_embeddings: (K, H) or None; given, the utterance tokens are label-anchored
            (:class:`LabelMixtureTokens`, ``model.emotion_pooled_kind: labels``).
    """

    def __init__(self, in_dim: int, out_dim: int, k: int, source: str, out_rms: float | None = None,
                 pooled: int = 0, label_embeddings: torch.Tensor | None = None):
        super().__init__()
        self.k = k
        self.sources: tuple[str, ...] = (source,)
        self.norm = nn.LayerNorm(in_dim)
        self.mlp = _MLP(k * in_dim, in_dim, out_dim)
        self.out = _output(out_rms)
        # Built last, so a seeded run without pooled tokens draws the same init as before the option.
        self.extra_tokens = pooled
        if not pooled:
            self.pooled = None
        elif label_embeddings is not None:
            self.pooled = LabelMixtureTokens(in_dim, pooled, label_embeddings)
        else:
            self.pooled = PooledTokens(in_dim, out_dim, pooled, out_rms)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None, return_label_logits: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """frames (B, T, d), frame_mask (B, T) bool or None -> tokens (B, T/k + extra_tokens, H):
        the frame tokens, then the pooled tokens (which read only the valid frames). With
        ``return_label_logits``: (tokens, the label-anchored head's (B, n, K) logits, or None when
        the pooled tokens are not label-anchored)."""
        x = self.norm(frames.to(self.norm.weight.dtype))
        tokens = self.out(self.mlp(group_frames(x, self.k)))
        logits = None
        if self.pooled is not None:
            if isinstance(self.pooled, LabelMixtureTokens):
                pooled, logits = self.pooled(frames, frame_mask, return_logits=True)
            else:
                pooled = self.pooled(frames, frame_mask)
            tokens = torch.cat([tokens, pooled.to(tokens.dtype)], dim=1)
        return (tokens, logits) if return_label_logits else tokens


class FusionAdapter(nn.Module):
    """Feature fusion (paper 3.3): both encoders' frames, each normalised by its own LayerNorm,
    concatenated on channels, grouped by k and mapped by one MLP.

    Grouping the channel-concatenated frames equals "reshape each stream to the speech token count,
    then concatenate on channels" up to a fixed permutation of the first Linear's inputs.
    Emotion frames are trimmed/zero-padded to the speech frame count (both are 50 Hz).
    """

    def __init__(self, speech_dim: int, emotion_dim: int, out_dim: int, k: int,
                 sources: tuple[str, str] = ("speech", "emotion"), out_rms: float | None = None):
        super().__init__()
        self.k = k
        self.sources: tuple[str, ...] = tuple(sources)
        """(speech encoder, emotion encoder): the first one's frames set the token count and mask."""
        self.speech_norm = nn.LayerNorm(speech_dim)
        self.emotion_norm = nn.LayerNorm(emotion_dim)
        d = speech_dim + emotion_dim
        self.mlp = _MLP(k * d, d, out_dim)
        self.out = _output(out_rms)

    def forward(self, speech: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """speech (B, T, ds), emotion (B, Te, de) -> tokens (B, T/k, H)."""
        t = speech.shape[1]
        if emotion.shape[1] != t:
            emotion = nn.functional.pad(emotion[:, :t], (0, 0, 0, max(0, t - emotion.shape[1])))
        dtype = self.speech_norm.weight.dtype
        x = torch.cat([self.speech_norm(speech.to(dtype)), self.emotion_norm(emotion.to(dtype))], dim=-1)
        return self.out(self.mlp(group_frames(x, self.k)))
