"""Attention, written out: scaled dot-product attention, multi-head attention, and the spatial self- and
cross-attention blocks of the latent-diffusion U-Net (Rombach et al. 2022).

* :func:`scaled_dot_product_attention` — ``softmax(q kᵀ / sqrt(d)) v`` (Vaswani et al. 2017, eq. 1), the
  softmax over the **keys** axis; :func:`attention_weights` returns the softmax itself.
* :class:`MultiHeadAttention` — self-attention (``context=None``) or cross-attention from the queries
  to a context sequence (the prompt's token embeddings), with a key-padding mask for padded tokens.
* :class:`SpatialSelfAttention`, :class:`SpatialCrossAttention` — the same over the H·W positions of a
  (B, C, H, W) feature map: GroupNorm → attention → residual, as in the LDM U-Net's SpatialTransformer.

Mask convention (as ``torch.nn.functional.scaled_dot_product_attention``'s boolean ``attn_mask``):
**True = this key takes part**, False = masked out (a ``<pad>`` token). A key-padding mask is (B, M).

Conventions (see STYLE.md): reshapes are einops patterns; misuse raises a ``ValueError`` that names the
argument and the fix.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from .validation import is_int

__all__ = ["attention_weights", "scaled_dot_product_attention", "split_heads", "merge_heads",
           "MultiHeadAttention", "SpatialSelfAttention", "SpatialCrossAttention"]


def _check_qkv(q, k, v, mask) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or not t.is_floating_point():
            raise ValueError(f"{name} must be a float tensor of shape (B, heads, N, d); got "
                             f"{getattr(t, 'shape', type(t).__name__)}.")
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(f"q, k and v must share (B, heads); got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}.")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same head width d (q kᵀ needs it); got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}.")
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"k and v must have the same number of keys M; got k {tuple(k.shape)}, v {tuple(v.shape)}.")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor (True = attend) broadcastable to (B, heads, N, M); "
                             f"got {getattr(mask, 'dtype', type(mask).__name__)}.")
        target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        try:
            torch.broadcast_shapes(mask.shape, target)
        except RuntimeError:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to (B, heads, N, M) = "
                             f"{target}; a key-padding mask (B, M) becomes (B, 1, 1, M).") from None


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(d))`` over the keys axis (Vaswani et al. 2017, eq. 1).

    Args:
        q: (B, heads, N, d) queries; k: (B, heads, M, d) keys.
        mask: None or bool, broadcastable to (B, heads, N, M); True = the key takes part. Every query
            must keep at least one key.
    Returns:
        (B, heads, N, M); each row sums to 1 over the M keys, 0 on masked keys.
    """
    _check_qkv(q, k, k, mask)
    scores = torch.einsum('bhnd,bhmd->bhnm', q, k) / math.sqrt(q.shape[-1])     # (B, heads, N, M)
    if mask is not None:
        if not bool(mask.any(dim=-1).all()):
            raise ValueError("mask leaves some query with no key to attend to (a row of all False); keep at "
                             "least one key per query, e.g. the <bos> token.")
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(d)) v``, the softmax over the keys axis (Vaswani et al. 2017, eq. 1).

    Agrees with ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)``.

    Args:
        q: (B, heads, N, d) queries.
        k: (B, heads, M, d) keys.
        v: (B, heads, M, d_v) values.
        mask: None or bool, broadcastable to (B, heads, N, M); True = attend, False = masked key.
    Returns:
        (B, heads, N, d_v).
    """
    _check_qkv(q, k, v, mask)
    return torch.einsum('bhnm,bhmd->bhnd', attention_weights(q, k, mask), v)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, heads·d) → (B, heads, N, d)."""
    return rearrange(x, 'b n (h d) -> b h n d', h=heads)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) → (B, N, heads·d); the inverse of :func:`split_heads`."""
    return rearrange(x, 'b h n d -> b n (h d)')


def _check_dims(name: str, heads: int, **dims: int) -> None:
    for k, c in dims.items():
        if not is_int(c) or c < 1:
            raise ValueError(f"{name}: {k} must be a positive int; got {c!r}.")
    if not is_int(heads) or heads < 1:
        raise ValueError(f"{name}: heads must be a positive int; got {heads!r}.")


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, §3.2.2); cross-attention as in Rombach et al. 2022.

    ``q = W_q x``, ``k = W_k c``, ``v = W_v c`` with ``c = x`` (self-attention) or the context
    (cross-attention); heads are split with ``rearrange(x, 'b n (h d) -> b h n d', h=heads)``, attended
    with :func:`scaled_dot_product_attention`, merged and projected by ``W_o``.

    Args:
        dim: width of the queries' sequence (and of the output); must be divisible by ``heads``.
        heads: attention heads; each has width ``dim // heads``.
        context_dim: width of the context's tokens; None = ``dim`` (self-attention).
    """

    def __init__(self, dim: int, heads: int = 4, context_dim: int | None = None):
        super().__init__()
        _check_dims("MultiHeadAttention", heads, dim=dim, **({} if context_dim is None else
                                                             {"context_dim": context_dim}))
        if dim % heads:
            raise ValueError(f"MultiHeadAttention: dim={dim} must be divisible by heads={heads} (each head gets "
                             f"dim // heads channels); pick heads among "
                             f"{[h for h in range(1, dim + 1) if dim % h == 0]}.")
        self.dim, self.heads = dim, heads
        self.context_dim = dim if context_dim is None else context_dim
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(self.context_dim, dim, bias=False)
        self.to_v = nn.Linear(self.context_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``x`` to ``context`` (or to ``x`` itself).

        Args:
            x: (B, N, dim) queries' sequence.
            context: None (self-attention) or (B, M, context_dim), e.g. the prompt's token embeddings.
            mask: None or a (B, M) bool key-padding mask over the keys (``context``, or ``x`` when
                ``context`` is None); True = real token, False = ``<pad>``.
        Returns:
            (B, N, dim).
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must be a tensor of shape (B, N, dim={self.dim}); got "
                             f"{getattr(x, 'shape', type(x).__name__)}.")
        if context is None:
            if self.context_dim != self.dim:
                raise ValueError(f"this MultiHeadAttention is cross-attention (context_dim={self.context_dim}); "
                                 f"pass context of shape (B, M, {self.context_dim}).")
            context = x
        elif (not isinstance(context, torch.Tensor) or context.ndim != 3 or context.shape[0] != x.shape[0]
              or context.shape[-1] != self.context_dim):
            raise ValueError(f"context must have shape (B={x.shape[0]}, M, context_dim={self.context_dim}); got "
                             f"{getattr(context, 'shape', type(context).__name__)}.")
        if mask is not None:
            if (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
                    or mask.shape != (context.shape[0], context.shape[1])):
                raise ValueError(f"mask must be a bool key-padding mask of shape (B, M) = "
                                 f"({context.shape[0]}, {context.shape[1]}), True = real token; got "
                                 f"{getattr(mask, 'dtype', '')} {getattr(mask, 'shape', type(mask).__name__)}.")
            mask = rearrange(mask, 'b m -> b 1 1 m')
        q = split_heads(self.to_q(x), self.heads)                        # (B, heads, N, d)
        k = split_heads(self.to_k(context), self.heads)                  # (B, heads, M, d)
        v = split_heads(self.to_v(context), self.heads)                  # (B, heads, M, d)
        out = scaled_dot_product_attention(q, k, v, mask)                # (B, heads, N, d)
        return self.to_out(merge_heads(out))                             # (B, N, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, context_dim={self.context_dim}"


def _check_feature_map(x, channels: int) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels or not x.is_floating_point():
        raise ValueError(f"x must be a float feature map of shape (B, C={channels}, H, W); got "
                         f"{getattr(x, 'shape', type(x).__name__)}.")


def _norm(name: str, channels: int, heads: int, groups: int, **extra: int) -> nn.GroupNorm:
    _check_dims(name, heads, channels=channels, **extra)
    if channels % heads:
        raise ValueError(f"{name}: channels={channels} must be divisible by heads={heads} (each head gets "
                         f"channels // heads of them).")
    if not is_int(groups) or groups < 1 or channels % groups:
        raise ValueError(f"{name}: channels={channels} must be divisible by groups={groups!r} (GroupNorm splits "
                         f"the channels into equal groups).")
    return nn.GroupNorm(groups, channels)


class SpatialSelfAttention(nn.Module):
    """Self-attention over the H·W positions of a feature map, with a residual connection.

    GroupNorm → ``'b c h w -> b (h w) c'`` → :class:`MultiHeadAttention` → back to (B, C, H, W), added to
    the input (Rombach et al. 2022's U-Net; the same as :class:`course_utils.models.AttentionBlock`).

    Args:
        channels: C; divisible by ``heads`` and ``groups``.
        heads: attention heads.
        groups: GroupNorm groups.
    """

    def __init__(self, channels: int, heads: int = 4, groups: int = 8):
        super().__init__()
        self.norm = _norm("SpatialSelfAttention", channels, heads, groups)
        self.channels = channels
        self.attn = MultiHeadAttention(channels, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) → (B, C, H, W)."""
        _check_feature_map(x, self.channels)
        h = rearrange(self.norm(x), 'b c h w -> b (h w) c')                 # (B, H·W, C)
        out = self.attn(h)                                                  # (B, H·W, C)
        return x + rearrange(out, 'b (h w) c -> b c h w', h=x.shape[2])


class SpatialCrossAttention(nn.Module):
    """Cross-attention from the H·W positions of a feature map to a prompt's token embeddings.

    Queries from the GroupNorm-ed image positions, keys and values from the context (B, M, context_dim)
    with a key-padding mask for ``<pad>`` tokens; the result is added to the input (the cross-attention
    layer of Rombach et al. 2022's SpatialTransformer, conditioning on text).

    Args:
        channels: C; divisible by ``heads`` and ``groups``.
        context_dim: width of the context tokens (the text encoder's width).
        heads: attention heads.
        groups: GroupNorm groups.
    """

    def __init__(self, channels: int, context_dim: int, heads: int = 4, groups: int = 8):
        super().__init__()
        self.norm = _norm("SpatialCrossAttention", channels, heads, groups, context_dim=context_dim)
        self.channels = channels
        self.attn = MultiHeadAttention(channels, heads, context_dim=context_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Condition a feature map on a token sequence.

        Args:
            x: (B, C, H, W) feature map.
            context: (B, M, context_dim) token embeddings.
            mask: None or (B, M) bool, True = real token, False = ``<pad>``.
        Returns:
            (B, C, H, W).
        """
        _check_feature_map(x, self.channels)
        h = rearrange(self.norm(x), 'b c h w -> b (h w) c')                 # (B, H·W, C)
        out = self.attn(h, context, mask)                                   # (B, H·W, C)
        return x + rearrange(out, 'b (h w) c -> b c h w', h=x.shape[2])
