"""Noise schedules β_0 … β_{T-1}.

Small pure functions computed in float64; :class:`course_utils.diffusion.GaussianDiffusion` turns
them into every derived constant. Index ``t`` of the returned array is the paper's step ``t + 1``
(timesteps are 0-indexed throughout the course).
"""
from __future__ import annotations

import math

import torch

from .validation import is_int

__all__ = ["linear_betas", "cosine_betas", "check_betas", "make_betas", "alpha_tables"]


def _check_T(T) -> int:
    if not is_int(T):
        raise ValueError(f"T (the number of diffusion steps) must be a positive int; got {T!r} "
                         f"of type {type(T).__name__}.")
    if T <= 0:
        raise ValueError(f"T (the number of diffusion steps) must be a positive int; got T={T}.")
    return T


def check_betas(betas) -> torch.Tensor:
    """Validate a noise schedule and return it as a float64 tensor.

    Args:
        betas: (T,) sequence or tensor with every value strictly inside (0, 1).
    Returns:
        (T,) float64 tensor.
    Raises:
        ValueError: when the schedule is empty, not 1-D, not finite or has a value outside (0, 1).
    """
    if isinstance(betas, torch.Tensor):
        if betas.is_complex() or not (betas.is_floating_point() or betas.dtype in (torch.int64, torch.int32)):
            raise ValueError(f"betas must be a real 1-D tensor; got dtype {betas.dtype}.")
        if betas.device.type == "meta":
            raise ValueError("betas is a meta tensor (it holds no data); pass a CPU or GPU tensor.")
        b = betas.detach().to("cpu", torch.float64)
    else:
        try:
            b = torch.as_tensor(betas, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"betas must be a 1-D sequence of floats in (0, 1); could not convert "
                             f"{type(betas).__name__}: {err}") from None
    if b.ndim != 1 or b.numel() == 0:
        raise ValueError(f"betas must be a non-empty 1-D array of shape (T,); got shape {tuple(b.shape)}.")
    if not torch.isfinite(b).all():
        raise ValueError("betas contains NaN or inf; every β_t must be a finite number in (0, 1).")
    bad = (b <= 0) | (b >= 1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"every β_t must lie strictly inside (0, 1); got betas[{i}]={float(b[i])!r}. "
                         f"β_t = 0 adds no noise and β_t ≥ 1 erases the signal in one step.")
    return b


def alpha_tables(betas) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-step constants every other one is built from, in float64 (Ho et al. 2020, §2).

    Args:
        betas: (T,) schedule, validated by :func:`check_betas`.
    Returns:
        (betas, alphas, alphas_cumprod, alphas_cumprod_prev), each (T,) float64 on the CPU: α_t = 1 − β_t,
        ᾱ_t = ∏_{s ≤ t} α_s and ᾱ_{t-1} with ᾱ_{-1} = 1 (0-indexed).
    """
    betas = check_betas(betas)
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    return betas, alphas, alphas_cumprod, alphas_cumprod_prev


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """The linear schedule of Ho et al. 2020 (§4): β evenly spaced from ``beta_start`` to ``beta_end``.

    For T = 1000 the defaults are the paper's; for lesson 02's toy T = 10 they give
    β = [0.0001, 0.0023, 0.0045, …, 0.0200].

    Args:
        T: number of diffusion steps, ≥ 1.
        beta_start: β_0 (the paper's β_1), in (0, 1).
        beta_end: β_{T-1} (the paper's β_T), in (0, 1).
    Returns:
        (T,) float64 tensor.
    """
    _check_T(T)
    for name, v in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not isinstance(v, (int, float)) or not (0.0 < float(v) < 1.0):
            raise ValueError(f"{name} must be a float strictly inside (0, 1); got {v!r}.")
    return check_betas(torch.linspace(float(beta_start), float(beta_end), T, dtype=torch.float64))


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule of Nichol & Dhariwal 2021, eq. (17).

    ᾱ(t) = f(t) / f(0) with f(t) = cos(((t/T + s) / (1 + s)) · π/2)², and
    β_t = 1 − ᾱ(t) / ᾱ(t − 1) for paper steps t = 1 … T, clipped to ``max_beta`` to avoid the
    singularity at t = T.

    Args:
        T: number of diffusion steps, ≥ 1.
        s: small offset that keeps β_1 from being too small near t = 0 (paper: 0.008).
        max_beta: upper clip of β (paper: 0.999), in (0, 1).
    Returns:
        (T,) float64 tensor.
    """
    _check_T(T)
    if not isinstance(s, (int, float)) or not (0.0 <= float(s) < 1.0):
        raise ValueError(f"s must be a float in [0, 1); got {s!r} (the paper uses 0.008).")
    if not isinstance(max_beta, (int, float)) or not (0.0 < float(max_beta) < 1.0):
        raise ValueError(f"max_beta must be a float strictly inside (0, 1); got {max_beta!r}.")
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return check_betas(betas.clamp(min=1e-12, max=float(max_beta)))


def make_betas(kind: str, T: int, **kwargs) -> torch.Tensor:
    """``make_betas("linear" | "cosine", T, **kwargs)``: dispatch by name (used by configs and widgets)."""
    table = {"linear": linear_betas, "cosine": cosine_betas}
    if kind not in table:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {sorted(table)}.")
    return table[kind](T, **kwargs)
