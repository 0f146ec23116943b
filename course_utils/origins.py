"""Where diffusion models come from: a drop of ink relaxing to equilibrium (Sohl-Dickstein et al. 2015).

Sohl-Dickstein, Weiss, Maheswaranathan & Ganguli, "Deep Unsupervised Learning using Nonequilibrium
Thermodynamics" (ICML 2015), borrowed the picture of a drop of ink spreading in water: a structured
distribution relaxes, one small step at a time, to an equilibrium that is simple and known. Here the "ink"
is a cloud of 2-D particles and each step is the DDPM forward step of Ho et al. 2020, eq. 2,
``x_k = √(1 − β)·x_{k-1} + √β·ε`` (:meth:`GaussianDiffusion.q_step`), whose equilibrium is N(0, I). With
``shrink=False`` the same noise is added without the √(1 − β) pull to the origin: pure Brownian spreading,
the ink in an unbounded tank, which has no equilibrium (its variance grows by β every step).

Step counting: a trajectory is ``(T + 1, N, 2)``; row ``k`` is the cloud after ``k`` steps, the paper's x_k,
so row 0 is x_0 and row ``k ≥ 1`` has the law of ``q_sample`` at the 0-indexed timestep ``k − 1``.

* :func:`points_from_image`: particles drawn from the bright pixels of an image, in [-1, 1]².
* :func:`ink_drop`: the trajectory of the particles.
* :func:`marginal_std`: the closed-form per-axis spread of the cloud at every step.
* :func:`marginal_stats`, :func:`ks_distance`, :func:`first_step_within`: how close the x- and
  y-marginals are to N(0, 1).
"""
from __future__ import annotations

import math

import torch

from .diffusion import GaussianDiffusion
from .schedules import alpha_tables, check_betas
from .validation import check_generator, is_int, is_number

__all__ = ["points_from_image", "ink_drop", "marginal_std", "marginal_stats", "ks_distance",
           "first_step_within"]


def _check_points(points, name: str = "points") -> torch.Tensor:
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != 2 \
            or not points.is_floating_point():
        got = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"{name} must be a float tensor of shape (N, 2), one row per particle; got {got}.")
    if points.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one particle; got shape (0, 2).")
    if not bool(torch.isfinite(points).all()):
        raise ValueError(f"{name} holds NaN or inf; every particle needs finite coordinates.")
    return points


def _check_shrink(shrink) -> bool:
    if not isinstance(shrink, bool):
        raise ValueError("shrink must be True (the DDPM step √(1 − β)·x + √β·ε, equilibrium N(0, I)) or False "
                         f"(Brownian spreading x + √β·ε, no equilibrium); got {shrink!r}.")
    return shrink


def points_from_image(image, n: int, generator: torch.Generator | None = None,
                      threshold: float = 0.0) -> torch.Tensor:
    """``n`` particles spread uniformly over the pixels of ``image`` brighter than ``threshold``.

    FashionMNIST draws the garment light on black, so the particles trace its shape. Each particle lies at a
    uniformly random place inside its pixel; the picture fills [-1, 1]² upright (row 0 at the top, y = +1).

    Args:
        image: (H, W), (1, H, W) or (1, 1, H, W) float tensor in [-1, 1].
        n: number of particles, ≥ 1.
        generator: optional CPU torch.Generator.
        threshold: the brightness a pixel must exceed to hold ink, in [-1, 1).
    Returns:
        (n, 2) float32 tensor on the CPU, (x, y) in [-1, 1]².
    """
    if not isinstance(image, torch.Tensor) or not image.is_floating_point() or image.ndim < 2 \
            or any(s != 1 for s in image.shape[:-2]):
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be one float image of shape (H, W), (1, H, W) or (1, 1, H, W) in [-1, 1]; "
                         f"got {got}.")
    if not is_int(n) or n < 1:
        raise ValueError(f"n, the number of particles, must be a positive int; got {n!r}.")
    if not is_number(threshold) or not -1.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be a number in [-1, 1), the brightness a pixel needs to hold ink; "
                         f"got {threshold!r}.")
    check_generator(generator, torch.device("cpu"))
    img = image.detach().to("cpu", torch.float32).reshape(image.shape[-2:])          # (H, W)
    H, W = img.shape
    rows, cols = torch.nonzero(img > threshold, as_tuple=True)
    if rows.numel() == 0:
        raise ValueError(f"image has no pixel brighter than threshold={threshold}; lower the threshold or pass "
                         f"an image scaled to [-1, 1].")
    pick = torch.randint(0, rows.numel(), (n,), generator=generator)
    jitter = torch.rand((n, 2), generator=generator)                                  # place inside the pixel
    x = (cols[pick] + jitter[:, 0]) / W * 2.0 - 1.0
    y = 1.0 - (rows[pick] + jitter[:, 1]) / H * 2.0
    return torch.stack([x, y], dim=1)


def ink_drop(points: torch.Tensor, betas, generator: torch.Generator | None = None,
             shrink: bool = True) -> torch.Tensor:
    """Diffuse a cloud of 2-D particles for T steps and keep every step.

    With ``shrink=True`` each step is :meth:`GaussianDiffusion.q_step`, x_k = √(1 − β_k)·x_{k-1} + √β_k·ε
    (Ho et al. 2020, eq. 2): the cloud relaxes to N(0, I). With ``shrink=False`` it is x_k = x_{k-1} + √β_k·ε,
    Brownian motion: the variance grows by β_k each step, without limit. The same ``generator`` draws the same
    ε in both cases, so the two trajectories differ only by the shrink.

    Args:
        points: (N, 2) float tensor, the particles x_0.
        betas: (T,) schedule with values in (0, 1), e.g. ``schedules.linear_betas(1000)``.
        generator: optional torch.Generator on ``points``' device.
        shrink: the DDPM step (True) or pure Brownian spreading (False).
    Returns:
        (T + 1, N, 2) tensor with ``points``' dtype and device; row ``k`` is the cloud after ``k`` steps (the
        paper's x_k), row 0 is ``points``.
    """
    points = _check_points(points)
    b64 = check_betas(betas)
    shrink = _check_shrink(shrink)
    check_generator(generator, points.device)
    T = b64.numel()
    out = torch.empty((T + 1, *points.shape), dtype=points.dtype, device=points.device)
    out[0] = points
    x = points
    diffusion = GaussianDiffusion(b64).to(points.device) if shrink else None
    sqrt_betas = b64.sqrt().to(points.dtype).to(points.device)
    for k in range(T):                                  # 0-indexed timestep k: the paper's step k + 1
        eps = torch.randn(points.shape, generator=generator, device=points.device, dtype=points.dtype)
        x = diffusion.q_step(x, k, noise=eps) if shrink else x + sqrt_betas[k] * eps
        out[k + 1] = x
    return out


def marginal_std(points: torch.Tensor, betas, shrink: bool = True) -> torch.Tensor:
    """The per-axis spread of the diffused cloud at every step, in closed form (the limit of many particles).

    For the cloud's own distribution (each of its N particles with weight 1/N) of variance v_0 per axis:
    with ``shrink`` the variance after k steps is ᾱ·v_0 + (1 − ᾱ), ᾱ = ∏_{s<k} (1 − β_s) (Ho et al. 2020,
    eq. 4, with ᾱ = 1 at k = 0), which tends to 1; without it, v_0 + Σ_{s<k} β_s, which grows without limit.

    Args:
        points: (N, 2) float tensor, the particles x_0.
        betas: (T,) schedule.
        shrink: as in :func:`ink_drop`.
    Returns:
        (T + 1, 2) float64 tensor on the CPU: row k holds the standard deviations of x and y after k steps.
    """
    points = _check_points(points)
    b64 = check_betas(betas)
    shrink = _check_shrink(shrink)
    v0 = points.detach().to("cpu", torch.float64).var(dim=0, unbiased=False)       # (2,)
    if shrink:
        abar = alpha_tables(b64)[2]                                                  # (T,), ᾱ after 1 … T steps
        abar = torch.cat([torch.ones(1, dtype=torch.float64), abar])[:, None]        # (T + 1, 1)
        var = abar * v0 + (1.0 - abar)
    else:
        total = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(b64, 0)])[:, None]
        var = v0 + total
    return var.sqrt()


def ks_distance(samples: torch.Tensor) -> torch.Tensor:
    """Kolmogorov–Smirnov distance sup_x |F_N(x) − Φ(x)| of each column's empirical CDF to N(0, 1)'s.

    For N draws from N(0, 1) it is typically about 0.87/√N (and below 1.36/√N 95 % of the time), so it only
    measures closeness down to that noise floor.

    Args:
        samples: (N,) or (N, D) float tensor, N ≥ 1.
    Returns:
        () or (D,) float64 tensor in [0, 1].
    """
    if not isinstance(samples, torch.Tensor) or samples.ndim not in (1, 2) or not samples.is_floating_point() \
            or samples.shape[0] == 0:
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"samples must be a float tensor of shape (N,) or (N, D) with N ≥ 1; got {got}.")
    s = samples.detach().to("cpu", torch.float64)
    col = s.ndim == 1
    s = s[:, None] if col else s
    n = s.shape[0]
    phi = 0.5 * (1.0 + torch.erf(s.sort(dim=0).values / math.sqrt(2.0)))           # (N, D), Φ at the sorted points
    i = torch.arange(1, n + 1, dtype=torch.float64)[:, None]
    d = torch.maximum((i / n - phi).amax(dim=0), (phi - (i - 1) / n).amax(dim=0))
    return d[0] if col else d


def marginal_stats(points: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean, standard deviation and KS distance to N(0, 1) of a cloud's x- and y-marginals.

    Args:
        points: (N, 2) float tensor, e.g. one row of :func:`ink_drop`'s trajectory.
    Returns:
        dict with "mean", "std" (population, divided by N) and "ks" (:func:`ks_distance`), each a (2,)
        float64 tensor: (x, y).
    """
    p = _check_points(points).detach().to("cpu", torch.float64)
    return {"mean": p.mean(dim=0), "std": p.std(dim=0, unbiased=False), "ks": ks_distance(p)}


def first_step_within(std: torch.Tensor, tol: float = 0.05) -> int | None:
    """The first step k at which every axis' standard deviation is within ``tol`` (relative) of 1.

    Args:
        std: (T + 1, D) standard deviations per step, e.g. :func:`marginal_std` or the measured ones.
        tol: relative tolerance, in (0, 1); 0.05 means 0.95 ≤ std ≤ 1.05.
    Returns:
        an int k in [0, T], or None if no step is that close.
    """
    if not isinstance(std, torch.Tensor) or std.ndim != 2 or not std.is_floating_point():
        got = tuple(std.shape) if isinstance(std, torch.Tensor) else type(std).__name__
        raise ValueError(f"std must be a float tensor of shape (T + 1, D), one row per step; got {got}.")
    if not is_number(tol) or not 0.0 < tol < 1.0:
        raise ValueError(f"tol must be a relative tolerance in (0, 1), e.g. 0.05 for 5 %; got {tol!r}.")
    close = ((std - 1.0).abs() <= tol).all(dim=1).nonzero()
    return int(close[0]) if len(close) else None
