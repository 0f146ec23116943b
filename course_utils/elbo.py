"""The ELBO of diffusion, term by term, where everything is exact: 1-D data and a linear-Gaussian reverse model.

Ho et al. 2020 (eq. 5) split the negative ELBO of one data point into

    L = L_T + Σ_{t=2}^{T} L_{t-1} + L_0,
    L_T     = KL(q(x_T | x_0) ‖ p(x_T)),
    L_{t-1} = E_{q(x_t | x_0)} KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t)),
    L_0     = −E_{q(x_1 | x_0)} log p_θ(x_0 | x_1),

with −log p_θ(x_0) ≤ L. For 1-D data and a reverse model whose steps are linear-Gaussian,
``p_θ(x_{t-1} | x_t) = N(a_t x_t + b_t, s_t)``, every term has a closed form (the expectation over x_t of a
squared error that is linear in x_t) and so has log p_θ(x_0) itself: the reverse chain maps the prior
N(0, 1) through linear steps, so p_θ(x_0) is a Gaussian. For Gaussian data N(μ, S) the *best* such model is
the true reverse process q(x_{t-1} | x_t), also linear-Gaussian (:func:`optimal_reverse_1d`).

Indices are the code's (0-indexed, see STYLE.md): ``betas[k]`` is the paper's β_{k+1}; arrays ``a, b, s`` of
shape (T,) hold the reverse step that undoes forward step k: for k ≥ 1 it maps the latent after step k to the
one after step k − 1 (the paper's p_θ(x_k | x_{k+1})), and k = 0 is the decoder p_θ(x_0 | x_1). So
``L_mid[k - 1]`` (k = 1 … T−1) is the paper's L_k, and ``L_0`` is the paper's L_0. Units: nats.
"""
from __future__ import annotations

import math

import torch

from .diffusion import gaussian_kl
from .schedules import alpha_tables

__all__ = ["elbo_terms_1d", "elbo_parts_1d", "log_likelihood_1d", "optimal_reverse_1d"]


def _check_model(a, b, s, T: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    out = []
    for name, v in (("a", a), ("b", b), ("s", s)):
        v = torch.as_tensor(v, dtype=torch.float64)
        if v.shape != (T,):
            raise ValueError(f"{name} must have shape (T,) = ({T},), one value per reverse step (index k undoes "
                             f"forward step k); got {tuple(v.shape)}.")
        out.append(v)
    if not bool((out[2] > 0).all()):
        raise ValueError("s holds the reverse steps' variances: every entry must be > 0.")
    return out[0], out[1], out[2]


def elbo_parts_1d(x0, betas: torch.Tensor, a, b, s) -> dict[str, torch.Tensor]:
    """The pieces of :func:`elbo_terms_1d` (same arguments), float64: ``L_T`` (N,), ``L_mid`` (N, T−1), ``L_0``
    (N,), and what they are built from — for k = 1 … T−1 ``beta_tilde`` and ``s_mid`` (T−1,), ``gap_sq_at_mean``
    (N, T−1) (the squared mean gap at x_k = E x_k) and ``gap_var`` (T−1,) (its variance over x_k); for the
    decoder ``resid_sq`` (N,) and ``resid_var`` (0-d). The learner checks name classic slips with them."""
    betas, alphas, abar, abar_prev = alpha_tables(betas)
    T = betas.shape[0]
    a, b, s = _check_model(a, b, s, T)
    x0 = torch.as_tensor(x0, dtype=torch.float64).reshape(-1, 1)                    # (N, 1)
    # L_T: q(x_T | x0) = N(√ᾱ_{T-1} x0, 1 − ᾱ_{T-1}) against the prior N(0, 1)
    L_T = gaussian_kl(abar[-1].sqrt() * x0[:, 0], 1 - abar[-1], torch.zeros(()), torch.ones(()))
    # L_{k}: for k = 1 … T−1, x_k ~ N(√ᾱ_k x0, 1 − ᾱ_k); posterior mean c1 x0 + c2 x_k, variance β̃_k
    k = torch.arange(1, T)
    c1 = abar_prev[k].sqrt() * betas[k] / (1 - abar[k])
    c2 = alphas[k].sqrt() * (1 - abar_prev[k]) / (1 - abar[k])
    beta_tilde = (1 - abar_prev[k]) / (1 - abar[k]) * betas[k]
    slope = c2 - a[k]                                             # the mean gap is (c1 x0 − b) + slope · x_k
    gap_sq_at_mean = (c1 * x0 - b[k] + slope * abar[k].sqrt() * x0) ** 2            # (N, T−1)
    gap_var = slope ** 2 * (1 - abar[k])                          # E[gap²] = (E gap)² + Var gap
    zero = torch.zeros((), dtype=torch.float64)
    L_mid = gaussian_kl(zero, beta_tilde, zero, s[k]) + (gap_sq_at_mean + gap_var) / (2 * s[k])
    # L_0: −E log N(x0; a_0 x' + b_0, s_0) with x' ~ N(√ᾱ_0 x0, 1 − ᾱ_0), the latent after one step
    resid_sq = (x0[:, 0] - b[0] - a[0] * abar[0].sqrt() * x0[:, 0]) ** 2
    resid_var = a[0] ** 2 * (1 - abar[0])
    L_0 = 0.5 * math.log(2 * math.pi) + 0.5 * torch.log(s[0]) + (resid_sq + resid_var) / (2 * s[0])
    return {"L_T": L_T, "L_mid": L_mid, "L_0": L_0, "beta_tilde": beta_tilde, "s_mid": s[k],
            "gap_sq_at_mean": gap_sq_at_mean, "gap_var": gap_var, "resid_sq": resid_sq, "resid_var": resid_var,
            "s_0": s[0], "betas_mid": betas[k]}


def elbo_terms_1d(x0, betas: torch.Tensor, a, b, s) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three kinds of ELBO term for 1-D data points ``x0`` under the reverse model ``N(a_k x + b_k, s_k)``.

    Args:
        x0: (N,) data points (a float or a 0-d tensor is one point).
        betas: (T,) forward schedule.
        a, b, s: (T,) the reverse steps' slope, offset and variance (s > 0); index k undoes forward step k.
    Returns:
        (L_T (N,), L_mid (N, T−1), L_0 (N,)) in nats, float64: the prior term, the paper's L_1 … L_{T−1}
        (``L_mid[:, k-1]`` compares the posterior of step k with the model's step k), and the decoder term;
        their sum is the negative ELBO, an upper bound on −log p_θ(x0) (:func:`log_likelihood_1d`).
    Raises:
        ValueError: a, b or s not of shape (T,), or a variance s ≤ 0.
    """
    p = elbo_parts_1d(x0, betas, a, b, s)
    return p["L_T"], p["L_mid"], p["L_0"]


def log_likelihood_1d(x0, a, b, s) -> torch.Tensor:
    """log p_θ(x0) (nats, (N,)) of the linear-Gaussian reverse chain from the prior N(0, 1): each step maps
    N(m, v) to N(a_k m + b_k, a_k² v + s_k), from k = T−1 down to the decoder k = 0."""
    a, b, s = (torch.as_tensor(v, dtype=torch.float64) for v in (a, b, s))
    if not (a.ndim == b.ndim == s.ndim == 1 and a.shape == b.shape == s.shape):
        raise ValueError(f"a, b and s must be (T,) tensors of one length; got {tuple(a.shape)}, {tuple(b.shape)}, "
                         f"{tuple(s.shape)}.")
    m, v = torch.zeros((), dtype=torch.float64), torch.ones((), dtype=torch.float64)
    for k in range(a.shape[0] - 1, -1, -1):
        m, v = a[k] * m + b[k], a[k] ** 2 * v + s[k]
    x0 = torch.as_tensor(x0, dtype=torch.float64).reshape(-1)
    return -0.5 * (math.log(2 * math.pi) + torch.log(v) + (x0 - m) ** 2 / v)


def optimal_reverse_1d(betas: torch.Tensor, mean: float, var: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The true reverse steps q(x_{k-1} | x_k) for data N(mean, var): (a, b, s), each (T,).

    The latent before step k is N(M, V) with M = √ᾱ_{k-1}·mean, V = ᾱ_{k-1}·var + 1 − ᾱ_{k-1} (ᾱ_{-1} = 1: the
    data); step k adds √α_k·x + √β_k·ε. Regressing back: a = √α_k V / (α_k V + β_k), b = M (1 − a √α_k),
    s = β_k V / (α_k V + β_k).
    """
    if not (isinstance(var, (int, float)) and var > 0) or isinstance(var, bool):
        raise ValueError(f"var is the data's variance: a number > 0; got {var!r}.")
    betas, alphas, _, abar_prev = alpha_tables(betas)
    M = abar_prev.sqrt() * float(mean)
    V = abar_prev * float(var) + 1 - abar_prev
    a = alphas.sqrt() * V / (alphas * V + betas)
    b = M * (1 - a * alphas.sqrt())
    s = betas * V / (alphas * V + betas)
    return a, b, s
