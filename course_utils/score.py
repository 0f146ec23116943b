"""Noise prediction is score estimation: a 2-D Gaussian mixture whose noised marginals, scores and optimal
noise predictor are all known in closed form, and Langevin dynamics that samples from a score.

For data x_0 from a Gaussian mixture Σ_i π_i N(μ_i, Σ_i), the marginal of x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε is
again a mixture, Σ_i π_i N(√ᾱ_t μ_i, ᾱ_t Σ_i + (1 − ᾱ_t) I) (:meth:`GaussianMixture2D.log_prob`). Two facts the
lesson shows numerically:

* Tweedie's formula: the best noise prediction under squared error, E[ε | x_t], equals
  −√(1 − ᾱ_t) · ∇ log q(x_t) — a network trained on L_simple learns the (scaled) score
  (:meth:`GaussianMixture2D.eps_posterior_mean` computes the left side by Gaussian conditioning,
  :meth:`GaussianMixture2D.score` the right side by autograd; Song et al. 2021, "Score-based generative
  modeling through SDEs", connect the two views).
* Langevin dynamics, x ← x + (η/2)·∇ log p(x) + √η·z, samples p for small η and many steps
  (:func:`langevin`; annealed over decreasing noise levels as in Song & Ermon 2019, NCSN).

Shapes: points are (N, 2) float64; ``abar`` is a float in (0, 1] (ᾱ of the step; 1 is the data itself).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

__all__ = ["GaussianMixture2D", "langevin"]


def _check_abar(abar) -> float:
    if isinstance(abar, bool) or not isinstance(abar, (int, float)) or not 0 < float(abar) <= 1:
        raise ValueError(f"abar is ᾱ_t of the step: a number in (0, 1] (1 is the clean data); got {abar!r}.")
    return float(abar)


def _check_points(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != 2 or not x.is_floating_point():
        raise ValueError(f"points must be a float tensor of shape (N, 2); got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
    return x.double()


class GaussianMixture2D:
    """Σ_i π_i N(μ_i, Σ_i) in 2-D. Default: three components, as a small picture of a multimodal data set.

    Args:
        means: (K, 2); covs: (K, 2, 2) symmetric positive definite; weights: (K,) positive, summing to 1.
    """

    def __init__(self, means: Sequence | None = None, covs: Sequence | None = None,
                 weights: Sequence | None = None):
        self.means = torch.as_tensor(means if means is not None else [[-1.2, -0.6], [1.1, -0.8], [0.0, 1.2]],
                                     dtype=torch.float64)
        K = self.means.shape[0]
        if covs is None:
            covs = [[[0.06, 0.02], [0.02, 0.04]], [[0.05, -0.02], [-0.02, 0.05]], [[0.08, 0.0], [0.0, 0.03]]][:K]
        self.covs = torch.as_tensor(covs, dtype=torch.float64)
        self.weights = torch.as_tensor(weights if weights is not None else [0.3, 0.3, 0.4][:K] if K == 3
                                       else [1.0 / K] * K, dtype=torch.float64)
        if self.means.ndim != 2 or self.means.shape[1] != 2:
            raise ValueError(f"means must have shape (K, 2); got {tuple(self.means.shape)}.")
        if self.covs.shape != (K, 2, 2) or not bool((torch.linalg.eigvalsh(self.covs) > 0).all()):
            raise ValueError(f"covs must be {K} symmetric positive-definite 2 × 2 matrices, shape ({K}, 2, 2).")
        if self.weights.shape != (K,) or not bool((self.weights > 0).all()) \
                or abs(float(self.weights.sum()) - 1) > 1e-9:
            raise ValueError("weights must be K positive numbers that sum to 1.")

    def _noised(self, abar: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Component means (K, 2) and covariances (K, 2, 2) of q(x_t) for ᾱ_t = abar."""
        eye = torch.eye(2, dtype=torch.float64)
        return math.sqrt(abar) * self.means, abar * self.covs + (1 - abar) * eye

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 2) draws of x_0."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        L = torch.linalg.cholesky(self.covs)
        return self.means[k] + (L[k] @ z[:, :, None])[:, :, 0]

    def log_prob(self, x: torch.Tensor, abar: float = 1.0) -> torch.Tensor:
        """log q(x_t) at the points x (N, 2) for ᾱ_t = abar: (N,)."""
        x, abar = _check_points(x), _check_abar(abar)
        m, C = self._noised(abar)
        d = x[:, None, :] - m[None]                                            # (N, K, 2)
        sol = torch.linalg.solve(C[None].expand(x.shape[0], -1, -1, -1), d[..., None])[..., 0]
        logn = -0.5 * ((d * sol).sum(-1) + torch.logdet(C)[None] + 2 * math.log(2 * math.pi))
        return torch.logsumexp(torch.log(self.weights)[None] + logn, dim=1)

    def score(self, x: torch.Tensor, abar: float = 1.0) -> torch.Tensor:
        """∇_x log q(x_t) at x (N, 2), by autograd of :meth:`log_prob`: (N, 2)."""
        x = _check_points(x).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.log_prob(x, abar).sum(), x)
        return g

    def eps_posterior_mean(self, x: torch.Tensor, abar: float) -> torch.Tensor:
        """E[ε | x_t] (N, 2) by Gaussian conditioning, without any derivative: per component, E[x_0 | x_t, i] =
        μ_i + √ᾱ Σ_i C_i⁻¹ (x_t − √ᾱ μ_i) with C_i = ᾱ Σ_i + (1 − ᾱ) I, weighted by the components' posterior
        probabilities; then E[ε | x_t] = (x_t − √ᾱ E[x_0 | x_t]) / √(1 − ᾱ)."""
        x, abar = _check_points(x), _check_abar(abar)
        if abar >= 1:
            raise ValueError("at ᾱ = 1 there is no noise to predict: pass abar < 1.")
        m, C = self._noised(abar)
        d = x[:, None, :] - m[None]                                            # (N, K, 2)
        sol = torch.linalg.solve(C[None].expand(x.shape[0], -1, -1, -1), d[..., None])[..., 0]
        logn = -0.5 * ((d * sol).sum(-1) + torch.logdet(C)[None])
        resp = torch.softmax(torch.log(self.weights)[None] + logn, dim=1)     # (N, K) P(component | x_t)
        x0_k = self.means[None] + math.sqrt(abar) * (self.covs[None] @ sol[..., None])[..., 0]
        x0 = (resp[..., None] * x0_k).sum(1)
        return (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)


def langevin(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, step: float, n_steps: int,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Unadjusted Langevin dynamics: n_steps of x ← x + (step/2)·score(x) + √step·z, z ~ N(0, I); returns x.

    For a small ``step`` and many steps the points are distributed (nearly) as the density whose score it is.
    """
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
        raise ValueError(f"step must be a positive number (the Langevin step size η); got {step!r}.")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative int; got {n_steps!r}.")
    x = _check_points(x).clone()
    for _ in range(n_steps):
        x = x + 0.5 * step * score(x) + math.sqrt(step) * torch.randn(x.shape, generator=generator,
                                                                      dtype=x.dtype)
    return x
