"""The variational bound of an image diffusion model: the true-bound loss ``loss_vlb`` and bits per dimension.

Ho et al. 2020 (eq. 5) bound the negative log-likelihood of an image by

    L = L_T + Σ_{t=2}^{T} L_{t-1} + L_0,
    L_T     = KL(q(x_T | x_0) ‖ N(0, I)),
    L_{t-1} = E_{q(x_t | x_0)} KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t)),
    L_0     = −E_{q(x_1 | x_0)} log p_θ(x_0 | x_1)     (the discretised decoder, §3.3).

With a fixed reverse variance σ_t² and the ε-parameterised mean (eq. 11) each L_{t-1} is a weighted squared
noise error plus a constant (eq. 12): L_{t-1} = E[λ_t ‖ε − ε_θ(x_t, t)‖²] + C_t with
λ_t = β_t² / (2 σ_t² α_t (1 − ᾱ_t)). Training on that weighted error is "the true variational bound" of the
paper's Table 1 (FID 13.51, NLL ≤ 3.70 bits/dim on CIFAR-10); L_simple drops λ_t (FID 3.17, NLL ≤ 3.75).
:mod:`course_utils.elbo` holds the same terms where everything is exact (1-D, linear-Gaussian); this module
evaluates them for images and a trained network.

Conventions (STYLE.md): timesteps are 0-indexed, so index t is the paper's step t + 1; the code's KL at index
t ≥ 1 is the paper's L_t (x_{t+1} → x_t in its numbering), and index 0 is the decoder L_0. The reverse variance
at index 0 (the decoder's σ²) is β_0 for ``variance="beta"``, and β̃ at index 1 for ``"beta_tilde"`` (β̃_0 = 0:
Ho et al.'s code clips the log-variance this way). Data are images in [-1, 1] from 256 levels: bins of width
2/255 around each level, the two edge bins open to ±∞.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .diffusion import GaussianDiffusion, extract, gaussian_kl
from .schedules import alpha_tables
from .validation import check_float_tensor, check_generator, is_int

__all__ = ["NUM_LEVELS", "reverse_variances", "vlb_weights", "loss_vlb", "quantize",
           "discretized_gaussian_log_likelihood", "BitsPerDim", "bits_per_dim"]

NUM_LEVELS = 256                   # 8-bit data: the levels −1, −1 + 2/255, …, 1


def _check_diffusion(diffusion) -> GaussianDiffusion:
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a course_utils.diffusion.GaussianDiffusion; got {type(diffusion).__name__}.")
    return diffusion


def _check_variance(diffusion: GaussianDiffusion, variance) -> str:
    return diffusion.variance if variance is None else diffusion._check_variance(variance)


def reverse_variances(diffusion: GaussianDiffusion, variance: str | None = None) -> torch.Tensor:
    """σ_t² of p_θ(x_{t-1} | x_t) for every 0-indexed t, float64 (T,), on the CPU.

    ``"beta"``: σ_t² = β_t. ``"beta_tilde"``: σ_t² = β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t for t ≥ 1 and, at
    index 0 (the decoder, where β̃_0 = 0), β̃_1 as in Ho et al.'s code. ``variance`` None: the schedule's own.
    Needs T ≥ 2 for ``"beta_tilde"``.
    """
    diffusion = _check_diffusion(diffusion)
    variance = _check_variance(diffusion, variance)
    betas, _, abar, abar_prev = alpha_tables(diffusion.betas)
    if variance == "beta":
        return betas
    if betas.shape[0] < 2:
        raise ValueError("variance='beta_tilde' needs T ≥ 2 (the decoder borrows β̃ of index 1); use 'beta'.")
    tilde = (1 - abar_prev) / (1 - abar) * betas
    return torch.cat([tilde[1:2], tilde[1:]])


def vlb_weights(diffusion: GaussianDiffusion, variance: str | None = None) -> torch.Tensor:
    """λ_t = β_t² / (2 σ_t² α_t (1 − ᾱ_t)) for every 0-indexed t (Ho et al. 2020, eq. 12), float64 (T,).

    For t ≥ 1, KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t)) = λ_t ‖ε − ε_θ‖² + C_t exactly (C_t does not
    depend on θ). At index 0 the same λ_0 makes λ_0 ‖ε − ε_θ‖² the −log-density of a *continuous* Gaussian
    decoder N(x_0; μ_θ(x_1), σ_0²) up to a constant (its mean error is β_0/(√α_0 √(1 − ᾱ_0))·(ε_θ − ε) as well);
    the discretised decoder that :func:`bits_per_dim` evaluates is close to it when σ_0 is not much smaller
    than a bin. σ_t² as in :func:`reverse_variances`.
    """
    sigma2 = reverse_variances(diffusion, variance)
    betas, alphas, abar, _ = alpha_tables(diffusion.betas)
    return betas ** 2 / (2 * sigma2 * alphas * (1 - abar))


def loss_vlb(model: nn.Module, diffusion: GaussianDiffusion, x0: torch.Tensor, y=None,
             generator: torch.Generator | None = None, *, t=None, noise=None,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """The true variational bound as a training loss: mean of λ_t (ε − ε_θ(x_t, t))² over batch and pixels.

    Drop-in for :func:`course_utils.train.train`'s ``loss_fn`` (same call as ``loss_fn(model, diffusion, x0, y,
    generator)``). t ~ Uniform{0, …, T-1} and ε ~ N(0, I) are drawn in the order :meth:`GaussianDiffusion.loss_simple`
    draws them, so with ``weights`` all ones it *is* L_simple on the same draws. Convention: a **mean** over the
    pixels (as L_simple's ``mse_loss``), so T × the expected loss is Σ_t L_{t-1} per dimension in nats, up to the
    θ-free constants (the sum over pixels is D times larger).

    Args:
        model: ε_θ, called ``model(x_t, t)`` or ``model(x_t, t, y)``.
        diffusion: the schedule; its ``variance`` setting gives σ_t² (:func:`reverse_variances`).
        x0: (B, C, H, W) clean images in [-1, 1].
        y: optional (B,) int64 labels.
        generator: optional torch.Generator for t and ε.
        t, noise: optional fixed (B,) 0-indexed timesteps and (B, C, H, W) noise.
        weights: optional (T,) per-step weights replacing λ_t (default :func:`vlb_weights`).
    Returns:
        scalar tensor.
    """
    diffusion = _check_diffusion(diffusion)
    x0 = check_float_tensor(x0, "x0")
    T = diffusion.num_timesteps
    if weights is None:
        weights = vlb_weights(diffusion)
    elif not isinstance(weights, torch.Tensor) or weights.shape != (T,):
        raise ValueError(f"weights must be a (T,) = ({T},) tensor, one weight per 0-indexed timestep; got "
                         f"{tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__}.")
    if noise is not None and (not isinstance(noise, torch.Tensor) or noise.shape != x0.shape):
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}.")
    eps_pred, noise, t = diffusion._noise_prediction(model, x0, y, t, noise, generator)   # L_simple's draws
    lam = extract(weights.to(device=x0.device, dtype=torch.float32), t, x0.shape)       # (B, 1, 1, 1)
    return (lam * (eps_pred.float() - noise.float()) ** 2).mean()


# ----------------------------------------------------------------------------------------------
# The discretised decoder (Ho et al. 2020, §3.3, eq. 13)
# ----------------------------------------------------------------------------------------------
def quantize(x0: torch.Tensor) -> torch.Tensor:
    """Round images in [-1, 1] to the nearest of the 256 levels −1 + 2k/255 (the course's 16 px images are
    resized from 28 px, so they lie between levels). Raises ValueError outside [-1, 1] (with 1/255 slack)."""
    x0 = check_float_tensor(x0, "x0")
    lo, hi = float(x0.min()), float(x0.max())
    if lo < -1 - 1 / 255 or hi > 1 + 1 / 255:
        raise ValueError(f"x0 must hold images scaled to [-1, 1]; got values in [{lo:.3g}, {hi:.3g}] "
                         "(scale [0, 1] images with x * 2 - 1).")
    k = torch.round((x0.clamp(-1, 1) + 1) * (NUM_LEVELS - 1) / 2)
    return k * 2 / (NUM_LEVELS - 1) - 1


def _log_diff_ndtr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Φ(b) − Φ(a)) for a < b, accurate in both tails (computed on the side where the cdf is small)."""
    flip = a > 0                                      # Φ(b) − Φ(a) = Φ(−a) − Φ(−b)
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi = torch.special.log_ndtr(hi)
    return log_hi + torch.log1p(-torch.exp(torch.special.log_ndtr(lo) - log_hi).clamp(max=1.0))


def discretized_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, var) -> torch.Tensor:
    """log p(x0) per element under N(mean, var) integrated over x0's 8-bit bin (Ho et al. 2020, eq. 13).

    The bin of level x is [x − 1/255, x + 1/255]; the lowest bin extends to −∞ and the highest to +∞, so the
    256 probabilities sum to 1. Args: x0 on the 256-level grid in [-1, 1] (see :func:`quantize`); mean,
    var (> 0) broadcasting against it. Returns: float64 log-probabilities (nats), x0's shape broadcast.
    """
    x0 = check_float_tensor(x0, "x0").double()
    mean = torch.as_tensor(mean, dtype=torch.float64, device=x0.device)
    var = torch.as_tensor(var, dtype=torch.float64, device=x0.device)
    if not bool((var > 0).all()):
        raise ValueError("var must be > 0 everywhere (a variance, not a standard deviation or log-variance).")
    inv_std = var.rsqrt()
    half = 1.0 / (NUM_LEVELS - 1)
    upper = torch.where(x0 > 1 - half, torch.full_like(x0, math.inf), (x0 - mean + half) * inv_std)
    lower = torch.where(x0 < -1 + half, torch.full_like(x0, -math.inf), (x0 - mean - half) * inv_std)
    upper, lower = torch.broadcast_tensors(upper, lower)
    return _log_diff_ndtr(lower, upper)


# ----------------------------------------------------------------------------------------------
# The whole bound, in bits per dimension
# ----------------------------------------------------------------------------------------------
@dataclass
class BitsPerDim:
    """The negative ELBO of each image in bits per dimension, term by term.

    Attributes:
        total: (B,) L_T + Σ_k weights[k] · L_mid[:, k] + L_0: the bound on −log₂ p_θ(x0) / D (an estimate
            unless ``exact``).
        L_T: (B,) the prior term. L_0: (B,) the discretised decoder term.
        L_mid: (B, K) the KL terms evaluated, at the 0-indexed ``timesteps`` (B, K) (index t ≥ 1: the paper's L_t).
        weights: (K,) how many timesteps each evaluated term stands for (all ones when ``exact``).
        exact: True when every t = 1 … T-1 was evaluated (then only the one x_t per term and image is sampled).
    """

    total: torch.Tensor
    L_T: torch.Tensor
    L_mid: torch.Tensor
    L_0: torch.Tensor
    timesteps: torch.Tensor
    weights: torch.Tensor
    exact: bool

    def summary(self) -> dict:
        """Means over the images: total, L_T, Σ L_{t-1} (weighted), L_0 (floats, bits/dim)."""
        return {"total": float(self.total.mean()), "L_T": float(self.L_T.mean()),
                "sum_L_mid": float((self.L_mid * self.weights).sum(1).mean()), "L_0": float(self.L_0.mean())}


@torch.inference_mode()
def bits_per_dim(model: nn.Module, diffusion: GaussianDiffusion, x0: torch.Tensor, y=None,
                 num_timesteps: int | None = None, variance: str | None = None, clip_x0: bool = False,
                 generator: torch.Generator | None = None) -> BitsPerDim:
    """The negative ELBO L_T + Σ_t L_{t-1} + L_0 of images, in bits per dimension (Ho et al. 2020, eq. 5).

    Each KL term compares q(x_{t-1} | x_t, x_0) (:meth:`GaussianDiffusion.q_posterior`) with the model's
    p_θ(x_{t-1} | x_t) = N(μ_θ, σ_t²) (:meth:`GaussianDiffusion.p_mean_variance`, σ_t² from
    :func:`reverse_variances`) at one x_t ~ q(x_t | x_0) per term and image, as Ho et al. evaluate it; L_0 is
    the discretised decoder at x_1 ~ q(x_1 | x_0). Terms are summed over pixels and divided by D · ln 2.

    ``num_timesteps`` K < T − 1 estimates Σ_{t=1}^{T-1} L_{t-1} by stratified sampling: {1, …, T−1} is cut into K
    runs of consecutive timesteps, one t is drawn uniformly in each run (per image), and its term counts as many
    times as its run is long: an unbiased estimate, with K network calls per image instead of T. None (default)
    evaluates all T − 1 terms: the bound itself, up to the sampled x_t.

    Args:
        model: ε_θ, called ``model(x_t, t)`` or ``model(x_t, t, y)``.
        diffusion: the schedule the model was trained with.
        x0: (B, C, H, W) images in [-1, 1]; rounded to the 256 levels first (:func:`quantize`).
        y: optional labels for a conditional model.
        num_timesteps: None (all T − 1 KL terms) or an int in [1, T − 1].
        variance: σ_t², ``"beta_tilde"`` or ``"beta"``; None: the schedule's own.
        clip_x0: clip x̂0 in the model's mean (default False: eq. 11, the mean the losses train).
        generator: optional torch.Generator on x0's device (timesteps and x_t).
    Returns:
        :class:`BitsPerDim`, float64 tensors on the CPU.
    """
    diffusion = _check_diffusion(diffusion)
    x0 = quantize(x0).to(torch.float32)
    check_generator(generator, x0.device)
    variance = _check_variance(diffusion, variance)
    T, B = diffusion.num_timesteps, x0.shape[0]
    if num_timesteps is None:
        K = T - 1
    elif is_int(num_timesteps) and 1 <= num_timesteps <= T - 1:
        K = int(num_timesteps)
    else:
        raise ValueError(f"num_timesteps must be None (all T − 1 = {T - 1} terms) or an int in [1, {T - 1}]; "
                         f"got {num_timesteps!r}.")
    D = x0[0].numel()
    scale = 1.0 / (D * math.log(2.0))                # nats summed over pixels → bits per dimension
    sigma2 = reverse_variances(diffusion, variance).to(x0.device)
    dev = x0.device
    was_training = model.training
    model.eval()

    def eps_at(xt, t):
        return (model(xt, t) if y is None else model(xt, t, y)).double()

    def flat_sum(v):
        return v.reshape(B, -1).sum(1).cpu()

    try:
        x0d = x0.double()
        # L_T = KL(q(x_T | x0) ‖ N(0, I))
        mean_T, var_T = diffusion.q_mean_variance(x0d, T - 1)
        L_T = flat_sum(gaussian_kl(mean_T, var_T, torch.zeros((), dtype=torch.float64, device=dev),
                                   torch.ones((), dtype=torch.float64, device=dev))) * scale
        # Σ L_{t-1}: K strata of {1, …, T−1}; edges 1 + ⌊k (T−1) / K⌋ are strictly increasing since K ≤ T − 1
        edges = torch.tensor([1 + (k * (T - 1)) // K for k in range(K + 1)], dtype=torch.long)
        sizes = edges[1:] - edges[:-1]                                                   # (K,)
        u = torch.rand((B, K), generator=generator, device=dev, dtype=torch.float64)
        ts = edges[:-1].to(dev) + (u * sizes.to(dev)).long().clamp(max=sizes.to(dev) - 1)   # (B, K)
        L_mid = torch.zeros((B, K), dtype=torch.float64)
        for k in range(K):
            t = ts[:, k]
            xt = diffusion.q_sample(x0d, t, generator=generator)
            mean_q, var_q = diffusion.q_posterior(x0d, xt, t)
            mean_p, _, _ = diffusion.p_mean_variance(eps_at(xt.float(), t), xt, t, variance=variance,
                                                     clip_x0=clip_x0)
            var_p = extract(sigma2, t, xt.shape)
            L_mid[:, k] = flat_sum(gaussian_kl(mean_q, var_q, mean_p, var_p)) * scale
        # L_0 = −log p_θ(x0 | x_1) with the discretised decoder, x_1 ~ q(x_1 | x0) (index 0)
        t0 = torch.zeros(B, dtype=torch.long, device=dev)
        x1 = diffusion.q_sample(x0d, t0, generator=generator)
        mean_0, _, _ = diffusion.p_mean_variance(eps_at(x1.float(), t0), x1, t0, variance=variance,
                                                 clip_x0=clip_x0)
        L_0 = -flat_sum(discretized_gaussian_log_likelihood(x0d, mean_0, sigma2[0])) * scale
    finally:
        model.train(was_training)
    weights = sizes.double()
    total = L_T + (L_mid * weights).sum(1) + L_0
    return BitsPerDim(total, L_T, L_mid, L_0, ts.cpu(), weights, exact=K == T - 1)
