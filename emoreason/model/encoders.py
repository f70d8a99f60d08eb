"""Audio encoders behind one interface: features in, 50 Hz frames out.

    encoder(features, feature_mask=None) -> (frames (B, T, d), frame_mask (B, T) bool | None)

``frame_mask`` is None when every frame is valid (fixed 30 s windows) and only set by Whisper in
``dynamic_length`` mode. ``encoder.hidden_size`` is d. The builder constructs these wrappers around
already-built transformers modules (or our emotion2vec module); :func:`load_whisper_encoder` is the
Whisper checkpoint reader it calls (as ``emotion2vec.load_emotion2vec`` is emotion2vec's).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from emoreason.audio import MEL_FRAMES
from emoreason.config import ConfigError

FRAMES_PER_WINDOW = MEL_FRAMES // 2
"""1500 encoder frames for a 30 s window: Whisper's conv2 has stride 2, so 50 Hz; the waveform
encoders (20 ms hop) are padded to the same count. Every adapter's group size divides it."""


def fit_frames(frames: torch.Tensor, target: int) -> torch.Tensor:
    """Zero-pad or trim (B, T, d) to (B, target, d).

    Waveform encoders give 1499 frames for 30 s (conv edge effects); the adapters need a multiple
    of their group size, so a zero frame is appended (trimming happens only for odd front ends).
    """
    t = frames.shape[1]
    if t == target:
        return frames
    if t > target:
        return frames[:, :target]
    return nn.functional.pad(frames, (0, 0, 0, target - t))


class WhisperFrames(nn.Module):
    """Whisper's encoder run layer by layer so the input may be shorter than 30 s.

    transformers' ``WhisperEncoder.forward`` insists on exactly 3000 mel frames. This wrapper calls
    the same submodules (conv1, conv2, embed_positions, layers, layer_norm) itself, slicing the
    positional table to the input length and masking padded frames out of attention. On a full
    3000-frame input with no mask it computes exactly what ``WhisperEncoder.forward`` does.

    Trade-off of ``dynamic_length`` (a processor setting, which is why this module only sees shorter
    inputs): Whisper was trained on 30 s windows, always seeing trailing silence; a short clip
    encoded alone is cheaper (attention is quadratic in frames, and the LLM gets fewer audio tokens)
    but slightly out of the encoder's training distribution. The paper pads to 30 s.

    Args:
        encoder: a transformers ``WhisperEncoder`` (weights already loaded).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.hidden_size: int = encoder.config.d_model
        self.num_mel_bins: int = encoder.config.num_mel_bins

    def forward(self, mel: torch.Tensor, mel_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """mel (B, n_mels, M) log-mel, M <= 3000 and even; mel_mask (B, M) 1 = real frame.

        Returns frames (B, M/2, d) and frame_mask (B, M/2) bool (None without mel_mask).
        """
        enc = self.encoder
        max_frames = enc.embed_positions.num_embeddings
        x = mel.to(enc.conv1.weight.dtype)
        if mel_mask is not None:
            # Zero the frames past each clip so conv1's right edge sees what it sees when the clip
            # is alone in its batch (its own zero padding): outputs do not depend on neighbours.
            x = x * mel_mask[:, None, :].to(x.dtype)
        x = nn.functional.gelu(enc.conv1(x))
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)  # (B, M/2, d)
        t = x.shape[1]
        if t > max_frames:
            raise ValueError(f"{mel.shape[-1]} mel frames give {t} encoder frames, over Whisper's {max_frames}")
        x = x + enc.embed_positions.weight[:t]
        x = nn.functional.dropout(x, p=enc.dropout, training=self.training)
        frame_mask = None
        attn_bias = None
        if mel_mask is not None:
            frame_mask = mel_mask[:, ::2][:, :t].bool()  # conv2 has stride 2
            # Additive bias (B, 1, 1, T): padded keys get -inf-ish, so each clip's valid frames do
            # not depend on how much padding its batch neighbours forced on it.
            attn_bias = torch.zeros(frame_mask.shape, dtype=x.dtype, device=x.device)
            attn_bias = attn_bias.masked_fill(~frame_mask, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in enc.layers:
            x = layer(x, attn_bias)
        return enc.layer_norm(x), frame_mask


class WaveFrames(nn.Module):
    """A transformers waveform model (``HubertModel`` or any ``AutoModel`` exposing
    ``last_hidden_state``, e.g. wav2vec2 / WavLM / data2vec-audio) as a frame encoder.

    Input is the processor's (B, samples) 16 kHz waveform, already normalised per utterance when the
    checkpoint expects it, zero-padded to 30 s (as the paper pads); no attention mask is passed, so
    padding is treated as silence exactly like Whisper's padding.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.hidden_size: int = model.config.hidden_size

    def forward(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """wave (B, S) -> frames (B, ~S/320, d), None."""
        param = next(self.model.parameters())
        out = self.model(input_values=wave.to(param.dtype))
        return out.last_hidden_state, None


def load_whisper_encoder(path: str) -> nn.Module:
    """A transformers ``WhisperEncoder`` with the weights of a local HF directory (safetensors) or a
    hub id (only the encoder half of the checkpoint is kept). Raises ConfigError when weights are missing."""
    from transformers import WhisperConfig, WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    local = Path(path)
    files = sorted(local.glob("*.safetensors")) if local.is_dir() else []
    if not files:  # hub id, or a .bin checkpoint: transformers loads it (weights_only) and we keep the encoder
        model, info = WhisperModel.from_pretrained(path, attn_implementation="sdpa", output_loading_info=True)
        missing = [k for k in info["missing_keys"] if k.startswith("encoder.")]
        if missing:
            raise ConfigError(f"{path}: Whisper checkpoint lacks encoder weights, e.g. {missing[:3]}")
        return model.encoder
    from safetensors.torch import load_file

    config = WhisperConfig.from_pretrained(path)
    # Built on the meta device: every weight comes from the file (assign=True below), so the
    # random initialisation a normal build runs (~0.1 s per encoder) would be thrown away.
    with torch.device("meta"):
        encoder = WhisperEncoder._from_config(config, attn_implementation="sdpa")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        for key, value in load_file(str(f)).items():
            for prefix in ("model.encoder.", "encoder.", ""):
                if key.startswith(prefix) and (prefix or not key.startswith(("model.", "decoder.", "proj_out"))):
                    state[key[len(prefix):]] = value
                    break
    own = encoder.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in state]
    if missing:
        raise ConfigError(f"{path}: Whisper checkpoint lacks encoder weights, e.g. {missing[:3]}")
    encoder.load_state_dict(state, assign=True)
    left = [n for n, t in [*encoder.named_parameters(), *encoder.named_buffers()] if t.is_meta]
    if left:  # a buffer outside the state dict: cannot come from the file
        raise ConfigError(f"{path}: Whisper encoder tensors not in the checkpoint: {left[:3]}")
    return encoder
