"""emotion2vec / emotion2vec+ as a native module (data2vec 2.0 audio encoder, inference path).

Loads the same state dict as FunASR's ``Emotion2vec`` (parameter names match), without FunASR:

    wave (B, S) 16 kHz, layer-normalised per clip by the processor
    -> conv front end (spec [(512,10,5)] + [(512,3,2)]*4 + [(512,2,2)]*2, stride 320, 50 Hz)
    -> LayerNorm(512) + Linear(512 -> D)
    -> + grouped-conv relative positional encoder (conv_pos_layers x [Conv1d, LayerNorm, GELU])
    -> 10 learned extra tokens prepended
    -> prenet blocks (context encoder) + main blocks, post-LN transformer blocks with ALiBi bias
    -> extra tokens removed -> frames (B, T, D); 30 s gives T = 1499 (the model pads to 1500)

Only what inference needs is built: no masking, no EMA teacher, no pretraining decoder, no
classification head (their keys are skipped on load). It can be fine-tuned (a ``trainable``
emotion encoder: gradients flow) but applies no dropout / layerdrop. Attention runs through
``F.scaled_dot_product_attention`` with the ALiBi bias as a float mask. No padding mask: clips are
zero-padded to 30 s and the padding is encoded as silence, as the paper does for every encoder.
"""
from __future__ import annotations

import ast
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_CONV_SPEC = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
_SKIPPED_PREFIXES = ("modality_encoders.AUDIO.decoder.", "proj.", "_ema", "ema.")


@dataclass
class Emotion2vecConfig:
    """Architecture of an emotion2vec checkpoint (defaults: emotion2vec base, D=768)."""

    embed_dim: int = 768
    depth: int = 8
    """Main transformer blocks (after the prenet)."""
    num_heads: int = 12
    ffn_dim: int = 3072
    prenet_depth: int = 4
    """Blocks of the audio context encoder (before the extra tokens join the main blocks)."""
    conv_dim: int = 512
    """Channels of every front-end conv (the checkpoints use 512; tests use fewer)."""
    conv_spec: list[tuple[int, int]] = field(default_factory=lambda: [(k, s) for _, k, s in DEFAULT_CONV_SPEC])
    """(kernel, stride) per front-end conv."""
    extractor_mode: str = "layer_norm"
    """``layer_norm`` (LayerNorm after every conv) or ``default`` (GroupNorm after the first)."""
    num_extra_tokens: int = 10
    conv_pos_layers: int = 5
    conv_pos_width: int = 95
    conv_pos_groups: int = 16
    num_alibi_heads: int | None = None
    """Heads that get the ALiBi bias (None: all)."""
    alibi_scale_per_head: bool = True
    alibi_scale_per_layer: bool = False
    use_alibi: bool = True
    norm_eps: float = 1e-5
    norm_affine: bool = True
    layer_norm_first: bool = False

    @property
    def alibi_heads(self) -> int:
        return self.num_alibi_heads or self.num_heads


# ------------------------------------------------------------------------------------------ layers
class _Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -1)


class _Fp32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (the conv front end's norm, as fairseq does it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).type_as(x)


class _Fp32GroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).type_as(x)


class _SamePad(nn.Module):
    """Drop the extra output frame an even-kernel 'same' conv produces."""

    def __init__(self, kernel: int):
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.remove] if self.remove else x


def _conv_front_end(cfg: Emotion2vecConfig) -> nn.Module:
    """(B, S) -> (B, C, T) via the strided conv stack; module layout mirrors fairseq's."""
    layers = nn.ModuleList()
    in_dim = 1
    for i, (k, stride) in enumerate(cfg.conv_spec):
        conv = nn.Conv1d(in_dim, cfg.conv_dim, k, stride=stride, bias=False)
        if cfg.extractor_mode == "layer_norm":
            norm = nn.Sequential(_Transpose(), _Fp32LayerNorm(cfg.conv_dim), _Transpose())
            layers.append(nn.Sequential(conv, nn.Dropout(0.0), norm, nn.GELU()))
        elif i == 0:
            layers.append(nn.Sequential(conv, nn.Dropout(0.0), _Fp32GroupNorm(cfg.conv_dim, cfg.conv_dim), nn.GELU()))
        else:
            layers.append(nn.Sequential(conv, nn.Dropout(0.0), nn.GELU()))
        in_dim = cfg.conv_dim
    module = nn.Module()
    module.conv_layers = layers
    return module


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, D), bias (1, H, T, T) additive, in x's dtype, or None."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    """data2vec 2.0 ``AltBlock`` (post-LN unless layer_norm_first)."""

    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        self.layer_norm_first = cfg.layer_norm_first
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        self.attn = _Attention(cfg.embed_dim, cfg.num_heads)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        self.mlp = _Mlp(cfg.embed_dim, cfg.ffn_dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.attn(self.norm1(x), bias)
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attn(x, bias))
        return self.norm2(x + self.mlp(x))


class _ContextEncoder(nn.Module):
    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.prenet_depth))
        self.norm = None if cfg.layer_norm_first else nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)


class _AudioFrontEnd(nn.Module):
    """FunASR's ``modality_encoders.AUDIO``: conv stack, projection, positional conv, extra tokens,
    ALiBi scales and the prenet blocks."""

    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        d = cfg.embed_dim
        self.local_encoder = _conv_front_end(cfg)
        self.project_features = nn.Sequential(_Transpose(), nn.LayerNorm(cfg.conv_dim), nn.Linear(cfg.conv_dim, d))
        k = max(3, cfg.conv_pos_width // cfg.conv_pos_layers)
        self.relative_positional_encoder = nn.Sequential(
            _Transpose(),
            *[nn.Sequential(nn.Conv1d(d, d, k, padding=k // 2, groups=cfg.conv_pos_groups), _SamePad(k), _Transpose(),
                            nn.LayerNorm(d, elementwise_affine=False), _Transpose(), nn.GELU())
              for _ in range(cfg.conv_pos_layers)],
            _Transpose(),
        )
        self.context_encoder = _ContextEncoder(cfg)
        self.extra_tokens = nn.Parameter(torch.zeros(1, cfg.num_extra_tokens, d)) if cfg.num_extra_tokens else None
        if cfg.use_alibi:
            layers = cfg.prenet_depth + cfg.depth if cfg.alibi_scale_per_layer else 1
            heads = cfg.alibi_heads if cfg.alibi_scale_per_head else 1
            self.alibi_scale = nn.Parameter(torch.ones(layers, 1, heads, 1, 1))
        else:
            self.alibi_scale = None


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi head slopes (Press et al.): geometric for a power of two, interleaved otherwise."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return torch.tensor(power_of_two(heads))
    closest = 2 ** math.floor(math.log2(heads))
    return torch.tensor(power_of_two(closest) + alibi_slopes(2 * closest).tolist()[0::2][: heads - closest])


# ------------------------------------------------------------------------------------------ model
class Emotion2vecEncoder(nn.Module):
    """emotion2vec frame encoder: wave (B, S) -> (frames (B, T, D), None).

    ``hidden_size`` is D. Parameter names equal FunASR ``Emotion2vec``'s, so its state dict loads
    directly (:func:`load_emotion2vec`).
    """

    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        self.config = cfg
        self.hidden_size = cfg.embed_dim
        self.modality_encoders = nn.ModuleDict({"AUDIO": _AudioFrontEnd(cfg)})
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine) if cfg.layer_norm_first else None

    def _alibi(self, t: int, device: torch.device) -> torch.Tensor:
        """Unscaled ALiBi bias (1, H_alibi, T, T): -slope_h * |i - j|, in float32."""
        pos = torch.arange(t, device=device)
        dist = (pos[None, :] - pos[:, None]).abs().neg().float()
        return (alibi_slopes(self.config.alibi_heads).to(device)[:, None, None] * dist[None])[None]

    def _scaled(self, base: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """base (1, Ha, T, T) x scale (1 or Ha, 1, 1) -> (1, H, T, T); heads past Ha get no bias."""
        bias = base * scale
        missing = self.config.num_heads - bias.shape[1]
        return F.pad(bias, (0, 0, 0, 0, 0, missing)) if missing > 0 else bias

    def forward(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """wave (B, S) -> frames (B, T, D) with T = floor-conv length (1499 for 30 s), None."""
        cfg, audio = self.config, self.modality_encoders["AUDIO"]
        x = wave.to(audio.project_features[2].weight.dtype).unsqueeze(1)
        for layer in audio.local_encoder.conv_layers:
            x = layer(x)
        x = audio.project_features(x)  # (B, T, D)
        x = x + audio.relative_positional_encoder(x)
        t, n = x.shape[1], cfg.num_extra_tokens
        blocks = list(audio.context_encoder.blocks) + list(self.blocks)
        base = shared = scales = None
        if audio.alibi_scale is not None:
            base = F.pad(self._alibi(t, x.device), (n, 0, n, 0))  # extra tokens: no positional bias
            scales = audio.alibi_scale.clamp_min(0).float()
            if scales.shape[0] == 1:  # one scale for all blocks: build the (1, H, T, T) bias once
                shared = self._scaled(base, scales[0]).to(x.dtype)
        if audio.extra_tokens is not None:
            x = torch.cat([audio.extra_tokens.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        if audio.context_encoder.norm is not None:
            x = audio.context_encoder.norm(x)
        for i, block in enumerate(blocks):
            bias = shared
            if bias is None and base is not None:  # per-layer scales: one bias alive at a time
                bias = self._scaled(base, scales[i]).to(x.dtype)
            x = block(x, bias)
        if self.norm is not None:
            x = self.norm(x)
        return x[:, n:], None


# ------------------------------------------------------------------------------------------ FunASR interop
def parse_conv_spec(spec: str) -> list[tuple[int, int, int]]:
    """fairseq's ``"[(512, 10, 5)] + [(512, 3, 2)] * 4 + ..."`` -> list of (dim, kernel, stride), without eval."""
    out: list[tuple[int, int, int]] = []
    for term in spec.split("+"):
        term = term.strip()
        times = 1
        if "*" in term:
            term, count = term.rsplit("*", 1)
            times = int(count)
        items = ast.literal_eval(term.strip())
        out.extend([tuple(int(v) for v in item) for item in items] * times)
    return out


def config_from_funasr(model_conf: dict[str, Any]) -> Emotion2vecConfig:
    """FunASR ``config.yaml``'s ``model_conf`` -> :class:`Emotion2vecConfig`."""
    audio = model_conf.get("modalities", {}).get("audio", {})
    if audio.get("conv_pos_pre_ln"):
        raise ValueError("emotion2vec: conv_pos_pre_ln=true is not supported")
    if audio.get("learned_alibi"):
        raise ValueError("emotion2vec: learned_alibi=true is not supported")
    spec = parse_conv_spec(audio.get("feature_encoder_spec", "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"))
    dims = {d for d, _, _ in spec}
    if len(dims) != 1:
        raise ValueError(f"emotion2vec: front-end convs of different widths {sorted(dims)} are not supported")
    d = int(model_conf.get("embed_dim", 768))
    heads = int(model_conf.get("num_heads", 12))
    return Emotion2vecConfig(
        embed_dim=d,
        depth=int(model_conf.get("depth", 8)),
        num_heads=heads,
        ffn_dim=int(d * float(model_conf.get("mlp_ratio", 4.0))),
        prenet_depth=int(audio.get("prenet_depth", 4)),
        conv_dim=dims.pop(),
        conv_spec=[(k, s) for _, k, s in spec],
        extractor_mode=audio.get("extractor_mode", "layer_norm"),
        num_extra_tokens=int(audio.get("num_extra_tokens", 10)),
        conv_pos_layers=int(audio.get("conv_pos_depth", 5)),
        conv_pos_width=int(audio.get("conv_pos_width", 95)),
        conv_pos_groups=int(audio.get("conv_pos_groups", 16)),
        num_alibi_heads=None if int(audio.get("num_alibi_heads", heads)) == heads else int(audio["num_alibi_heads"]),
        alibi_scale_per_head=bool(audio.get("learned_alibi_scale_per_head", True)),
        alibi_scale_per_layer=bool(audio.get("learned_alibi_scale_per_layer", False)),
        use_alibi=bool(audio.get("use_alibi_encoder", True)),
        norm_eps=float(model_conf.get("norm_eps", 1e-5)),
        norm_affine=bool(model_conf.get("norm_affine", True)),
        layer_norm_first=bool(model_conf.get("layer_norm_first", False)),
    )


def funasr_model_conf(cfg: Emotion2vecConfig) -> dict[str, Any]:
    """:class:`Emotion2vecConfig` -> a FunASR ``model_conf`` (inference settings: no dropout)."""
    spec = " + ".join(f"[({cfg.conv_dim}, {k}, {s})]" for k, s in cfg.conv_spec)
    return {
        "embed_dim": cfg.embed_dim, "depth": cfg.depth, "num_heads": cfg.num_heads,
        "mlp_ratio": cfg.ffn_dim / cfg.embed_dim, "norm_eps": cfg.norm_eps, "norm_affine": cfg.norm_affine,
        "encoder_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "post_mlp_drop": 0.0,
        "dropout_input": 0.0, "layerdrop": 0.0, "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0,
        "layer_norm_first": cfg.layer_norm_first, "end_of_block_targets": False, "average_top_k_layers": cfg.depth,
        "loss_beta": 0.0, "loss_scale": None, "clone_batch": 1, "normalize": True,
        "modalities": {"audio": {
            "feature_encoder_spec": spec, "extractor_mode": cfg.extractor_mode,
            "conv_pos_depth": cfg.conv_pos_layers, "conv_pos_width": cfg.conv_pos_width,
            "conv_pos_groups": cfg.conv_pos_groups, "conv_pos_pre_ln": False,
            "prenet_depth": cfg.prenet_depth, "prenet_layerdrop": 0.0, "prenet_dropout": 0.0,
            "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0, "decoder": None,
            "use_alibi_encoder": cfg.use_alibi, "local_grad_mult": 1.0,
            "num_extra_tokens": cfg.num_extra_tokens, "init_extra_token_zero": True,
            "learned_alibi_scale": True, "learned_alibi_scale_per_head": cfg.alibi_scale_per_head,
            "learned_alibi_scale_per_layer": cfg.alibi_scale_per_layer, "num_alibi_heads": cfg.alibi_heads,
            "model_depth": cfg.depth, "alibi_scale": 1.0, "learned_alibi": False, "alibi_max_pos": None,
        }},
    }


def encoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A FunASR / fairseq emotion2vec state dict without the parts inference does not use."""
    return {k: v for k, v in state.items() if not k.startswith(_SKIPPED_PREFIXES)}


def read_emotion2vec_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """An official checkpoint directory -> (its ``config.yaml`` as a dict, the full state dict).

    The state dict still holds what the encoder skips (the ``proj.`` classification head of
    emotion2vec+, the pretraining decoder): the classifier baseline reads the head from it.
    ``model.pt`` is read with ``torch.load(weights_only=True)``: tensors only, no code runs.
    """
    import yaml

    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{path}: no config.yaml (expected an emotion2vec checkpoint directory)")
    conf = yaml.safe_load((path / "config.yaml").read_text())
    safes = sorted(path.glob("*.safetensors"))
    if safes:
        from safetensors.torch import load_file

        state = {k: v for f in safes for k, v in load_file(str(f)).items()}
    elif (path / "model.pt").is_file():
        state = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
        for key in ("model", "state_dict"):  # fairseq / FunASR wrappers
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    else:
        raise FileNotFoundError(f"{path}: no model.pt or *.safetensors")
    return conf, state


def load_emotion2vec(path: str | Path, checkpoint: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = None
                     ) -> Emotion2vecEncoder:
    """Load an official checkpoint directory (``config.yaml`` + ``model.pt`` or ``*.safetensors``).

    ``checkpoint``: what :func:`read_emotion2vec_checkpoint` already returned for ``path`` (saves a
    second read when the caller also needs the head).
    """
    conf, state = checkpoint or read_emotion2vec_checkpoint(path)
    model = Emotion2vecEncoder(config_from_funasr(conf.get("model_conf", conf)))
    state = encoder_state(state)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"{path}: checkpoint does not match emotion2vec config "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    # alibi_scale was 4-d in older checkpoints (FunASR's upgrade_state_dict_named adds the layer dim).
    key = "modality_encoders.AUDIO.alibi_scale"
    if key in state and state[key].dim() == 4:
        state[key] = state[key].unsqueeze(0)
    model.load_state_dict(state)
    return model
