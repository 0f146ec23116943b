"""The course's U-Net family, from lesson 01's time-less recap U-Net to the class-conditional ε-model.

One :class:`UNet`, configured by one :class:`UNetConfig`:

* ``UNet(time_embedding=False)`` — the recap U-Net of lesson 01: an image-to-image network with skip
  connections; it ignores ``t``.
* ``UNet()`` — the DDPM noise predictor ε_θ(x_t, t): a sinusoidal time embedding (Vaswani et al. 2017,
  as in Ho et al. 2020) feeds every :class:`ResBlock`.
* ``UNet(num_classes=10)`` — the class-conditional model for classifier-free guidance (Ho & Salimans
  2021): a learned class embedding is added to the time embedding; label ``num_classes`` is the null
  class ∅, and :func:`drop_labels` replaces labels by ∅ during training.

Conventions (see STYLE.md at the repository root): timesteps are 0-indexed, ``t ∈ {0, …, T-1}``, int64 of
shape ``(B,)``; images are ``(B, C, H, W)`` in [-1, 1]; reshapes are einops patterns; misuse raises a
``ValueError`` that says what to do. Everything runs on a CPU.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

from .validation import as_batch_vector, check_generator, check_labels, is_int, is_number

__all__ = [
    "UNetConfig", "UNet", "sinusoidal_embedding", "SinusoidalTimeEmbedding", "ResBlock", "Downsample",
    "Upsample", "AttentionBlock", "DownBlock", "UpBlock", "drop_labels", "count_parameters",
]

DOWNSAMPLE_MODES = ("rearrange", "conv")
UPSAMPLE_MODES = ("nearest", "convtranspose")


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------
@dataclass
class UNetConfig:
    """Hyper-parameters of :class:`UNet`; every default fits 16–32 px FashionMNIST on a laptop CPU."""

    in_channels: int = 1                    # FashionMNIST is grey-scale
    out_channels: int | None = None         # None = in_channels: ε has the image's shape
    channels: tuple[int, ...] = (32, 64, 128)  # one width per resolution; 2 halvings: 28 → 14 → 7 px
    num_res_blocks: int = 1                 # one ResBlock per level keeps a CPU epoch short
    time_embedding: bool = True             # False = lesson 01's time-less recap U-Net (ignores t)
    time_emb_dim: int | None = None         # None = 4 * channels[0], as in Ho et al.'s code
    num_classes: int | None = None          # None = unconditional; 10 for FashionMNIST with CFG
    attention: bool = False                 # self-attention at the lowest resolution; little gain at 16 px
    downsample: str = "rearrange"           # "rearrange" (space-to-depth + 1x1 conv, loses nothing) or "conv"
    upsample: str = "nearest"               # "nearest" + 3x3 conv (no checkerboard) or "convtranspose"
    norm_groups: int = 8                    # GroupNorm (batch-size free); 8 leaves >= 4 channels a group at 32
    dropout: float = 0.0                    # small models on small data barely overfit
    class_dropout_prob: float = 0.1         # p(label → ∅) in training; Ho & Salimans found 0.1–0.2 best

    def __post_init__(self) -> None:
        def bad(name: str, expected: str, value) -> ValueError:
            return ValueError(f"UNetConfig.{name} must be {expected}; got {value!r}.")

        if not is_int(self.in_channels) or self.in_channels < 1:
            raise bad("in_channels", "a positive int (1 for grey-scale, 3 for RGB)", self.in_channels)
        if self.out_channels is not None and (not is_int(self.out_channels) or self.out_channels < 1):
            raise bad("out_channels", "None (= in_channels) or a positive int", self.out_channels)
        if isinstance(self.channels, list):
            self.channels = tuple(self.channels)
        if (not isinstance(self.channels, tuple) or len(self.channels) == 0
                or not all(is_int(c) and c > 0 for c in self.channels)):
            raise bad("channels", "a non-empty tuple of positive ints, one per resolution, e.g. (32, 64, 128)",
                      self.channels)
        if not is_int(self.norm_groups) or self.norm_groups < 1:
            raise bad("norm_groups", "a positive int", self.norm_groups)
        odd = [c for c in self.channels if c % self.norm_groups]
        if odd:
            raise bad("channels", f"divisible by norm_groups={self.norm_groups} (GroupNorm splits channels "
                      f"into equal groups); {odd} are not", self.channels)
        if not is_int(self.num_res_blocks) or self.num_res_blocks < 1:
            raise bad("num_res_blocks", "an int >= 1", self.num_res_blocks)
        for name in ("time_embedding", "attention"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "True or False", getattr(self, name))
        if self.time_emb_dim is not None and (not is_int(self.time_emb_dim) or self.time_emb_dim < 2
                                              or self.time_emb_dim % 2):
            raise bad("time_emb_dim", "None (= 4 * channels[0]) or an even int >= 2", self.time_emb_dim)
        if self.time_embedding and self.channels[0] % 2:
            raise bad("channels", "a tuple whose first entry is even when time_embedding=True (it is the "
                      "width of the sinusoidal embedding: a sin half and a cos half)", self.channels)
        if self.num_classes is not None and (not is_int(self.num_classes) or self.num_classes < 1):
            raise bad("num_classes", "None (unconditional) or an int >= 1", self.num_classes)
        if self.downsample not in DOWNSAMPLE_MODES:
            raise bad("downsample", f"one of {DOWNSAMPLE_MODES}", self.downsample)
        if self.upsample not in UPSAMPLE_MODES:
            raise bad("upsample", f"one of {UPSAMPLE_MODES}", self.upsample)
        if not is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", "a float in [0, 1)", self.dropout)
        if not is_number(self.class_dropout_prob) or not 0.0 <= self.class_dropout_prob < 1.0:
            raise bad("class_dropout_prob", "a float in [0, 1) (1 would never show the model a label)",
                      self.class_dropout_prob)

    @property
    def resolved_out_channels(self) -> int:
        """``out_channels``, with None resolved to ``in_channels``."""
        return self.in_channels if self.out_channels is None else self.out_channels

    @property
    def resolved_time_emb_dim(self) -> int:
        """``time_emb_dim``, with None resolved to ``4 * channels[0]``."""
        return 4 * self.channels[0] if self.time_emb_dim is None else self.time_emb_dim

    @property
    def size_factor(self) -> int:
        """H and W must be multiples of this: ``2 ** (len(channels) - 1)``, one halving per extra level."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        """Plain ints/floats/str/bool/None/lists: safe for JSON and ``torch.load(weights_only=True)``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        """Rebuild a config written by :meth:`to_dict` (lists become tuples again)."""
        if not isinstance(d, dict):
            raise ValueError(f"UNetConfig.from_dict needs a dict; got {type(d).__name__}.")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"UNetConfig has no field(s) {unknown}; known fields: {sorted(names)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# ----------------------------------------------------------------------------------------------
# Time embedding
# ----------------------------------------------------------------------------------------------
def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer positional encoding of the timesteps (Vaswani et al. 2017, §3.5).

    For ``i = 0 … dim/2 - 1``: ``freq_i = exp(-ln(max_period) · i / (dim/2))``; the output is
    ``cat([sin(t · freq), cos(t · freq)], dim=-1)`` — the **sin half first**, then the cos half.

    Args:
        t: (B,) timesteps, int (0-indexed, t ∈ {0, …, T-1}) or float; computed in float32.
        dim: width of the embedding, an even int >= 2.
        max_period: the longest wavelength, 10000 as in the paper.
    Returns:
        (B, dim) float32 embedding on ``t``'s device.
    """
    if not is_int(dim) or dim < 2 or dim % 2:
        raise ValueError(f"the sinusoidal embedding needs an even dim >= 2 (a sin half and a cos half); "
                         f"got dim={dim!r}.")
    if not isinstance(t, torch.Tensor) or t.dtype == torch.bool or t.is_complex() or t.ndim != 1:
        raise ValueError(f"t must be a 1-D int or float tensor of shape (B,); got "
                         f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}.")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = rearrange(t.to(torch.float32), 'b -> b 1') * rearrange(freqs, 'd -> 1 d')  # (B, dim/2)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)                       # (B, dim)


class SinusoidalTimeEmbedding(nn.Module):
    """``t (B,) → (B, dim)`` with :func:`sinusoidal_embedding` (sin half first, then cos half).

    Args:
        dim: width of the embedding, even.
    """

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        if not is_int(dim) or dim < 2 or dim % 2:
            raise ValueError(f"SinusoidalTimeEmbedding needs an even dim >= 2 (a sin half and a cos half); "
                             f"got dim={dim!r}.")
        self.dim, self.max_period = dim, max_period

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) int or float timesteps → (B, dim) float32."""
        return sinusoidal_embedding(t, self.dim, self.max_period)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------
def _check_groups(name: str, groups: int, **chans: int) -> None:
    for k, c in chans.items():
        if not is_int(c) or c < 1:
            raise ValueError(f"{name}: {k} must be a positive int; got {c!r}.")
        if c % groups:
            raise ValueError(f"{name}: {k}={c} must be divisible by groups={groups} (GroupNorm splits the "
                             f"channels into equal groups).")


class ResBlock(nn.Module):
    """Residual block conditioned on an embedding (Ho et al. 2020, after Wide ResNet).

    GroupNorm → GELU → conv3x3 → (+ Linear(emb) broadcast over H, W) → GroupNorm → GELU → dropout →
    conv3x3, added to the input (through a 1x1 conv when ``in_ch != out_ch``).

    Args:
        in_ch, out_ch: channels in and out.
        emb_dim: width of the time (+ class) embedding, or None for a block without one.
        groups: GroupNorm groups; must divide ``in_ch`` and ``out_ch``.
        dropout: dropout probability before the second conv.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int | None, groups: int = 8, dropout: float = 0.0):
        super().__init__()
        _check_groups("ResBlock", groups, in_ch=in_ch, out_ch=out_ch)
        self.emb_dim = emb_dim
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_ch) if emb_dim is not None else None
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.act = nn.GELU()
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            x: (B, in_ch, H, W).
            emb: (B, emb_dim) embedding; required if and only if the block was built with ``emb_dim``.
        Returns:
            (B, out_ch, H, W).
        """
        if (emb is None) != (self.emb_proj is None):
            if emb is None:
                raise ValueError(f"this ResBlock was built with emb_dim={self.emb_dim}: pass the (B, "
                                 f"{self.emb_dim}) embedding as block(x, emb).")
            raise ValueError("this ResBlock was built with emb_dim=None and cannot use an embedding; "
                             "build it with emb_dim=emb.shape[-1].")
        h = self.conv1(self.act(self.norm1(x)))
        if self.emb_proj is not None:
            h = h + rearrange(self.emb_proj(emb), 'b c -> b c 1 1')    # same shift for every pixel
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve H and W.

    ``"rearrange"``: space-to-depth (each 2x2 patch becomes 4 channels, nothing is thrown away), then a
    1x1 conv; ``"conv"``: a stride-2 3x3 conv.

    Args:
        channels: input channels.
        mode: ``"rearrange"`` or ``"conv"``.
        out_channels: output channels (None = ``channels``).
    """

    def __init__(self, channels: int, mode: str = "rearrange", out_channels: int | None = None):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        if mode == "rearrange":
            self.op = nn.Sequential(
                Rearrange('b c (h p1) (w p2) -> b (c p1 p2) h w', p1=2, p2=2),   # (B, 4C, H/2, W/2)
                nn.Conv2d(4 * channels, out_channels, 1),
            )
        elif mode == "conv":
            self.op = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1)
        else:
            raise ValueError(f"Downsample mode must be one of {DOWNSAMPLE_MODES}; got {mode!r}.")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) with even H, W → (B, out_channels, H/2, W/2)."""
        return self.op(x)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour upsampling + 3x3 conv (``"nearest"``) or a 2x2 transposed conv.

    Args:
        channels: input channels.
        mode: ``"nearest"`` or ``"convtranspose"``.
        out_channels: output channels (None = ``channels``).
    """

    def __init__(self, channels: int, mode: str = "nearest", out_channels: int | None = None):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        if mode == "nearest":
            self.op = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                    nn.Conv2d(channels, out_channels, 3, padding=1))
        elif mode == "convtranspose":
            self.op = nn.ConvTranspose2d(channels, out_channels, 2, stride=2)
        else:
            raise ValueError(f"Upsample mode must be one of {UPSAMPLE_MODES}; got {mode!r}.")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) → (B, out_channels, 2H, 2W)."""
        return self.op(x)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H·W positions, with a residual connection.

    GroupNorm → 1x1 conv to q, k, v → ``scaled_dot_product_attention`` per head → 1x1 conv, added to
    the input.

    Args:
        channels: channels C; must be divisible by ``heads`` and ``groups``.
        heads: attention heads (4 for wide layers, 1 for narrow ones).
        groups: GroupNorm groups.
    """

    def __init__(self, channels: int, heads: int = 4, groups: int = 8):
        super().__init__()
        _check_groups("AttentionBlock", groups, channels=channels)
        if not is_int(heads) or heads < 1 or channels % heads:
            raise ValueError(f"AttentionBlock: heads={heads!r} must be a positive int dividing channels={channels}.")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) → (B, C, H, W)."""
        H = x.shape[2]
        qkv = self.qkv(self.norm(x))                                             # (B, 3C, H, W)
        q, k, v = rearrange(qkv, 'b (three heads d) h w -> three b heads (h w) d', three=3, heads=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)                            # (B, heads, H·W, d)
        out = rearrange(out, 'b heads (h w) d -> b (heads d) h w', h=H)          # (B, C, H, W)
        return x + self.proj(out)


class DownBlock(nn.Module):
    """Lesson 01's encoder step: conv3x3 → GroupNorm → GELU, then halve the resolution.

    Args:
        in_ch, out_ch: channels in and out.
        groups: GroupNorm groups (must divide ``out_ch``).
        downsample: ``"rearrange"`` or ``"conv"`` (see :class:`Downsample`).
    """

    def __init__(self, in_ch: int, out_ch: int, groups: int = 8, downsample: str = "rearrange"):
        super().__init__()
        _check_groups("DownBlock", groups, out_ch=out_ch)
        self.conv = nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.GroupNorm(groups, out_ch), nn.GELU())
        self.down = Downsample(out_ch, downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_ch, H, W) → (B, out_ch, H/2, W/2)."""
        return self.down(self.conv(x))


class UpBlock(nn.Module):
    """Lesson 01's decoder step: double the resolution, concatenate the skip, conv3x3 → GroupNorm → GELU.

    Args:
        in_ch: channels of the coarse input.
        skip_ch: channels of the skip connection (at twice the input's resolution).
        out_ch: channels out (``groups`` must divide it).
        upsample: ``"nearest"`` or ``"convtranspose"`` (see :class:`Upsample`).
    """

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, groups: int = 8, upsample: str = "nearest"):
        super().__init__()
        _check_groups("UpBlock", groups, out_ch=out_ch)
        self.skip_ch = skip_ch
        self.up = Upsample(in_ch, upsample)
        self.conv = nn.Sequential(nn.Conv2d(in_ch + skip_ch, out_ch, 3, padding=1),
                                  nn.GroupNorm(groups, out_ch), nn.GELU())

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: (B, in_ch, H, W).
            skip: (B, skip_ch, 2H, 2W), the encoder's features at the target resolution.
        Returns:
            (B, out_ch, 2H, 2W).
        """
        h = self.up(x)
        if skip.shape[0] != h.shape[0] or skip.shape[1] != self.skip_ch or skip.shape[2:] != h.shape[2:]:
            raise ValueError(f"UpBlock: skip must have shape ({h.shape[0]}, {self.skip_ch}, {h.shape[2]}, "
                             f"{h.shape[3]}) to match the upsampled input; got {tuple(skip.shape)}.")
        h = torch.cat([h, skip], dim=1)                                          # (B, in_ch + skip_ch, 2H, 2W)
        return self.conv(h)


# ----------------------------------------------------------------------------------------------
# The U-Net
# ----------------------------------------------------------------------------------------------
def _is_compiling() -> bool:
    """True while torch.compile traces the model (value-dependent checks are skipped then)."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):           # torch >= 2.3
        return compiler.is_compiling()
    dynamo = getattr(torch, "_dynamo", None)
    return bool(dynamo is not None and hasattr(dynamo, "is_compiling") and dynamo.is_compiling())


def _size_examples(factor: int) -> str:
    ok = [s for s in (16, 28, 32, 64) if s % factor == 0] or [factor, 2 * factor]
    ok = [str(s) for s in ok[:3]]
    return ok[0] if len(ok) == 1 else ", ".join(ok[:-1]) + " and " + ok[-1]


class UNet(nn.Module):
    """U-Net noise predictor ε_θ(x_t, t[, y]) (Ho et al. 2020; Ho & Salimans 2021 for the classes).

    ``conv_in`` → per level: ``num_res_blocks`` ResBlocks, keep a skip, downsample → middle (ResBlock,
    optional attention, ResBlock) → per level, coarse to fine: concatenate the skip, ResBlocks,
    upsample → GroupNorm → GELU → zero-initialised ``conv_out`` (the untrained model predicts ε = 0).

    ``UNet()`` uses the default :class:`UNetConfig`; ``UNet(channels=(8, 16))`` or
    ``UNet(cfg, num_classes=10)`` override fields.

    Attributes:
        config: the :class:`UNetConfig` it was built from.
        null_class: the label meaning ∅ (``= num_classes``) for a conditional model, else None.
    """

    def __init__(self, config: UNetConfig | dict | None = None, **overrides):
        super().__init__()
        if config is None:
            config = UNetConfig()
        elif isinstance(config, dict):
            config = UNetConfig.from_dict(config)
        elif not isinstance(config, UNetConfig):
            raise ValueError(f"config must be a UNetConfig, a dict from UNetConfig.to_dict() or None; got "
                             f"{type(config).__name__}.")
        names = {f.name for f in fields(UNetConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"UNet got unknown option(s) {unknown}; UNetConfig fields are {sorted(names)}.")
        cfg = replace(config, **overrides) if overrides else config
        self.config = cfg
        self.null_class: int | None = cfg.num_classes
        ch, G, p = cfg.channels, cfg.norm_groups, cfg.dropout

        # embeddings: t → (B, E); a conditional model adds a class embedding with an extra row for ∅
        self.time_emb_dim = cfg.resolved_time_emb_dim
        conditioned = cfg.time_embedding or cfg.num_classes is not None
        emb_dim = self.time_emb_dim if conditioned else None
        self.time_embed, self.time_mlp = None, None
        if cfg.time_embedding:
            self.time_embed = SinusoidalTimeEmbedding(ch[0])
            self.time_mlp = nn.Sequential(nn.Linear(ch[0], self.time_emb_dim), nn.GELU(),
                                          nn.Linear(self.time_emb_dim, self.time_emb_dim))
        self.class_emb = None
        if cfg.num_classes is not None:
            self.class_emb = nn.Embedding(cfg.num_classes + 1, self.time_emb_dim)

        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        prev = ch[0]
        for i, c in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(prev, c, emb_dim, G, p))
                prev = c
            last = i == len(ch) - 1
            self.down.append(nn.ModuleDict({
                "res": blocks, "resample": nn.Identity() if last else Downsample(c, cfg.downsample)}))

        heads = 4 if ch[-1] % 4 == 0 else 1
        self.mid_res1 = ResBlock(ch[-1], ch[-1], emb_dim, G, p)
        self.mid_attn = AttentionBlock(ch[-1], heads, G) if cfg.attention else nn.Identity()
        self.mid_res2 = ResBlock(ch[-1], ch[-1], emb_dim, G, p)

        self.up = nn.ModuleList()
        prev = ch[-1]
        for i in reversed(range(len(ch))):
            c = ch[i]
            blocks = nn.ModuleList([ResBlock(prev + c, c, emb_dim, G, p)])    # skip concatenated here
            blocks.extend(ResBlock(c, c, emb_dim, G, p) for _ in range(cfg.num_res_blocks - 1))
            prev = c
            self.up.append(nn.ModuleDict({
                "res": blocks, "resample": Upsample(c, cfg.upsample) if i > 0 else nn.Identity()}))

        self.norm_out = nn.GroupNorm(G, ch[0])
        self.act = nn.GELU()
        self.conv_out = nn.Conv2d(ch[0], cfg.resolved_out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    # -- input checks ------------------------------------------------------------------------------
    def _check_x(self, x) -> None:
        cfg = self.config
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor of shape (B, C, H, W); got {type(x).__name__}.")
        if x.ndim != 4:
            hint = " Add the channel axis with x.unsqueeze(1)." if x.ndim == 3 else ""
            raise ValueError(f"x must be a 4-D batch of images (B, C, H, W); got shape {tuple(x.shape)}.{hint}")
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor in [-1, 1]; got dtype {x.dtype}. "
                             f"Use x.float() / 127.5 - 1 for uint8 images.")
        if x.shape[1] != cfg.in_channels:
            raise ValueError(f"x has {x.shape[1]} channel(s) but this U-Net was built with "
                             f"in_channels={cfg.in_channels}.")
        f = cfg.size_factor
        H, W = x.shape[2], x.shape[3]
        if H % f or W % f or H == 0 or W == 0:
            raise ValueError(f"H and W must be multiples of {f} (channels={cfg.channels} halves the image "
                             f"{len(cfg.channels) - 1} time(s)); got {H}x{W} px. {_size_examples(f)} px work "
                             f"with channels={cfg.channels}; pad or resize the images.")
        param = next(self.parameters())
        if x.device != param.device:
            raise ValueError(f"x is on {x.device} but the model's weights are on {param.device}; move one of "
                             f"them: x = x.to({str(param.device)!r}) or model.to(x.device).")

    def _check_t(self, t, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        if t is None:
            raise ValueError("this U-Net has a time embedding (time_embedding=True): call model(x, t) with t "
                             "the (B,) int64 timesteps, 0-indexed in {0, …, T-1}.")
        return as_batch_vector(t, B, x.device, name="t", per="timestep", allow_float=True,
                               type_error="t must be an int or a (B,) int64 tensor of timesteps; got {got}.")

    def _check_y(self, y, x: torch.Tensor) -> torch.Tensor | None:
        B, K = x.shape[0], self.config.num_classes
        if K is None:
            if y is not None:
                raise ValueError("this U-Net is unconditional (num_classes=None) and cannot take labels y; "
                                 "build it with UNet(num_classes=...) for class conditioning.")
            return None
        if y is None:                                         # "no label": the null class for every image
            return torch.full((B,), K, dtype=torch.long, device=x.device)
        y = check_labels(y, B, x.device)
        if not _is_compiling() and bool(((y < 0) | (y > K)).any()):
            raise ValueError(f"labels y must lie in [0, {K}]: 0…{K - 1} are the classes and {K} is the null "
                             f"class ∅; got values from {int(y.min())} to {int(y.max())}.")
        return y

    # -- forward -----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor | int | None = None,
                y: torch.Tensor | int | None = None) -> torch.Tensor:
        """Predict the noise ε in x_t (or, for the time-less U-Net, map an image to an image).

        Args:
            x: (B, C, H, W) noisy images x_t in [-1, 1]; H, W multiples of ``2 ** (len(channels) - 1)``.
            t: (B,) int64 timesteps, 0-indexed in {0, …, T-1} (an int or a 0-d tensor is broadcast;
                floats work too). Ignored when ``time_embedding=False``.
            y: (B,) int64 labels in [0, num_classes], ``num_classes`` being the null class ∅; an int is
                broadcast; None on a conditional model means ∅ for the whole batch. Only for models
                built with ``num_classes``.
        Returns:
            (B, out_channels, H, W) prediction, in x's dtype.
        """
        self._check_x(x)
        t = self._check_t(t, x) if self.time_mlp is not None else None
        y = self._check_y(y, x)

        # 1. time embedding: sinusoidal(t) → Linear → GELU → Linear
        emb = None
        if self.time_mlp is not None:
            emb = self.time_mlp(self.time_embed(t).to(x.dtype))     # (B, ch[0]) → (B, E)
        # 2. class embedding, added to the time embedding (row num_classes is the learned ∅)
        if self.class_emb is not None:
            c = self.class_emb(y)
            emb = c if emb is None else emb + c
        # 3. down path, middle, up path and output: _denoise (lesson 08's TextUNet shares it)
        return self._denoise(x, emb)

    def _middle(self, h: torch.Tensor, emb: torch.Tensor | None, **cond) -> torch.Tensor:
        """The lowest resolution: ResBlock → (attention) → ResBlock; a subclass inserts more here."""
        return self.mid_res2(self.mid_attn(self.mid_res1(h, emb)), emb)

    def _denoise(self, x: torch.Tensor, emb: torch.Tensor | None, **cond) -> torch.Tensor:
        """Steps 3–6 of :meth:`forward`: the down path, :meth:`_middle` (given ``cond``), the up path, the output."""
        # 3. down path: keep one skip per resolution
        h = self.conv_in(x)                                          # (B, ch[0], H, W)
        skips = []
        for level in self.down:
            for block in level["res"]:
                h = block(h, emb)
            skips.append(h)
            h = level["resample"](h)
        # 4. middle, at the lowest resolution
        h = self._middle(h, emb, **cond)
        # 5. up path: concatenate the skip of the same resolution on channels
        for level in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            for block in level["res"]:
                h = block(h, emb)
            h = level["resample"](h)
        # 6. output
        return self.conv_out(self.act(self.norm_out(h)))             # (B, out_channels, H, W)


# ----------------------------------------------------------------------------------------------
# Helpers for training and inspection
# ----------------------------------------------------------------------------------------------
def drop_labels(y: torch.Tensor, p: float, null_class: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Classifier-free guidance's context mask: replace each label by the null class with probability p.

    Each label is dropped independently (one uniform draw per label, Ho & Salimans 2021, Algorithm 1).

    Args:
        y: (B,) integer class labels.
        p: drop probability in [0, 1]; 0 returns the labels unchanged.
        null_class: the label meaning ∅ (``model.null_class``).
        generator: optional ``torch.Generator`` on y's device, for reproducible draws.
    Returns:
        (B,) int64 copy of y on y's device.
    """
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"y must be an integer tensor of labels of shape (B,); got "
                         f"{getattr(y, 'dtype', type(y).__name__)}.")
    if y.ndim != 1:
        raise ValueError(f"y must have shape (B,); got {tuple(y.shape)}.")
    if not is_number(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"the label drop probability p must be a float in [0, 1]; got {p!r}.")
    if not is_int(null_class) or null_class < 0:
        raise ValueError(f"null_class must be a non-negative int (model.null_class); got {null_class!r}.")
    check_generator(generator, y.device, what="y")
    y = y.to(torch.long).clone()
    if p == 0:
        return y
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p      # (B,) bool
    return y.masked_fill_(drop, null_class)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"count_parameters needs a torch.nn.Module; got {type(model).__name__}.")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
