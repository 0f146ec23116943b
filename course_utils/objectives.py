"""Training objectives beside L_simple: min-SNR-γ loss weighting, v-prediction and x0-prediction.

All three are drop-ins for :func:`course_utils.train.train`'s ``loss_fn`` (called ``loss_fn(model, diffusion, x0, y,
generator)``) and draw t ~ Uniform{0, …, T-1} (0-indexed) and ε ~ N(0, I) the way
:meth:`GaussianDiffusion.loss_simple` does. The performance benchmark (``python -m bench.time_to_quality``)
measures whether any of them reaches a quality sooner than L_simple; BENCHMARKS.md shows the figures.

* **min-SNR-γ** (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy"): the
  denoising tasks at different t compete for the same weights; clamping each step's weight at the
  signal-to-noise ratio γ keeps the nearly clean steps (large SNR_t = ᾱ_t / (1 − ᾱ_t)) from dominating.
  In x0 terms the weight is min(SNR_t, γ); for an ε-predicting network ‖ε − ε̂‖² = SNR_t ‖x0 − x̂0‖², so the
  ε-loss weight is min(SNR_t, γ) / SNR_t (their eq. 8 with the ε-parameterisation; γ = 5 in the paper).
* **v-prediction** (Salimans & Ho 2022, "Progressive Distillation", §4 and App. D): the network predicts
  v_t = √ᾱ_t ε − √(1 − ᾱ_t) x0 instead of ε. Then ε = √ᾱ_t v_t + √(1 − ᾱ_t) x_t and
  x0 = √ᾱ_t x_t − √(1 − ᾱ_t) v_t, so :class:`EpsFromV` turns a v-network into the ε-model every sampler of the
  course takes. ‖v − v̂‖² = ‖ε − ε̂‖² / ᾱ_t = (1 + SNR_t) ‖x0 − x̂0‖²: the loss stays finite where ε-prediction's
  x0 error blows up (t → T − 1) and where x0-prediction's ε error does (t → 0).
* **x0-prediction** (Ho et al. 2020 §3.2 name it as the alternative to ε; the unCLIP prior, Ramesh et al. 2022,
  predicts x0): the network predicts x0 itself and the loss is ‖x0 − x̂0‖² = ‖ε − ε̂‖² / SNR_t, so the nearly
  clean steps weigh little and the noisy steps, where x0 is hardest to guess, a lot. :class:`EpsFromX0` turns it
  into an ε-model: ε = (x_t − √ᾱ_t x̂0) / √(1 − ᾱ_t).
"""
from __future__ import annotations

import torch
from torch import nn

from .diffusion import GaussianDiffusion, extract
from .likelihood import loss_vlb
from .schedules import alpha_tables
from .validation import check_float_tensor, is_number

__all__ = ["min_snr_weights", "loss_min_snr", "v_target", "loss_v", "EpsFromV", "loss_x0", "EpsFromX0"]


def _check_diffusion(diffusion) -> GaussianDiffusion:
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a GaussianDiffusion (course_utils.diffusion); got "
                         f"{type(diffusion).__name__}.")
    return diffusion


def min_snr_weights(diffusion: GaussianDiffusion, gamma: float = 5.0) -> torch.Tensor:
    """(T,) float32 weights min(SNR_t, γ) / SNR_t of the ε-loss at each 0-indexed timestep (Hang et al. 2023).

    1 wherever SNR_t ≤ γ (the noisy steps, most of a linear schedule), γ / SNR_t below it.
    """
    diffusion = _check_diffusion(diffusion)
    if not is_number(gamma) or not gamma > 0:
        raise ValueError(f"gamma must be a positive number (the paper uses 5); got {gamma!r}.")
    a = alpha_tables(diffusion.betas.double().cpu())[2]       # ᾱ in float64: 1 − ᾱ_0 = β_0 keeps its digits
    snr = a / (1.0 - a)
    return (snr.clamp(max=float(gamma)) / snr).to(torch.float32)


def loss_min_snr(model: nn.Module, diffusion: GaussianDiffusion, x0: torch.Tensor, y=None,
                 generator: torch.Generator | None = None, *, gamma: float = 5.0, t=None,
                 noise=None) -> torch.Tensor:
    """Mean of min(SNR_t, γ)/SNR_t · (ε − ε_θ(x_t, t))² over batch and pixels (min-SNR-γ for an ε-model).

    Args:
        model: ε_θ, called ``model(x_t, t)`` or ``model(x_t, t, y)``; x0: (B, C, H, W) in [-1, 1];
        y: optional (B,) int64 labels; generator: optional torch.Generator; gamma: the clamp γ;
        t, noise: optional fixed (B,) 0-indexed timesteps and (B, C, H, W) noise.
    Returns:
        scalar tensor.
    """
    return loss_vlb(model, diffusion, x0, y, generator, t=t, noise=noise,
                    weights=min_snr_weights(diffusion, gamma))


def v_target(diffusion: GaussianDiffusion, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v_t = √ᾱ_t ε − √(1 − ᾱ_t) x0 (Salimans & Ho 2022, App. D).

    Args:
        x0, eps: (B, C, H, W); t: (B,) int64 0-indexed timesteps.
    Returns:
        (B, C, H, W).
    """
    diffusion = _check_diffusion(diffusion)
    x0, eps = check_float_tensor(x0, "x0"), check_float_tensor(eps, "eps")
    if eps.shape != x0.shape:
        raise ValueError(f"eps must have x0's shape {tuple(x0.shape)}; got {tuple(eps.shape)}.")
    t = diffusion._check_t(t, x0.shape[0]).to(x0.device)
    return (extract(diffusion.sqrt_alphas_cumprod, t, x0.shape).to(x0) * eps
            - extract(diffusion.sqrt_one_minus_alphas_cumprod, t, x0.shape).to(x0) * x0)


def loss_v(model: nn.Module, diffusion: GaussianDiffusion, x0: torch.Tensor, y=None,
           generator: torch.Generator | None = None, *, t=None, noise=None) -> torch.Tensor:
    """E‖v_t − v_θ(x_t, t)‖², mean over batch and pixels: train a v-network (sample through :class:`EpsFromV`).

    Args as :func:`loss_min_snr`; ``model`` returns v_θ (B, C, H, W).
    """
    diffusion = _check_diffusion(diffusion)
    x0 = check_float_tensor(x0, "x0")
    v_pred, noise, t = diffusion._noise_prediction(model, x0, y, t, noise, generator)   # L_simple's draws
    return torch.nn.functional.mse_loss(v_pred.float(), v_target(diffusion, x0.float(), noise.float(), t))


class _EpsView(nn.Module):
    """A network that predicts another target, seen as the ε-model every sampler of the course takes.

    Keeps the wrapped network (as the attribute ``_net_name``, so a subclass's state-dict keys stay its own) and
    its ``null_class`` and ``config``, so guidance and checkpoints see a conditional model. A subclass says how
    its target turns into ε in :meth:`_to_eps`.
    """

    _net_name = "net"

    def __init__(self, net: nn.Module, diffusion: GaussianDiffusion):
        super().__init__()
        setattr(self, self._net_name, net)
        self.diffusion = _check_diffusion(diffusion)
        self.null_class = getattr(net, "null_class", None)
        if hasattr(net, "config"):
            self.config = net.config

    def forward(self, xt: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        """xt: (B, C, H, W); t: (B,) int64 0-indexed; y: optional (B,) labels. Returns ε (B, C, H, W)."""
        net = getattr(self, self._net_name)
        return self._to_eps(xt, t, net(xt, t) if y is None else net(xt, t, y))

    def _to_eps(self, xt: torch.Tensor, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class EpsFromV(_EpsView):
    """A v-network seen as an ε-model: ε = √ᾱ_t v_θ(x_t, t) + √(1 − ᾱ_t) x_t, for the course's samplers."""

    _net_name = "v_model"

    def _to_eps(self, xt, t, v):
        t = self.diffusion._check_t(t, xt.shape[0]).to(xt.device)
        return (extract(self.diffusion.sqrt_alphas_cumprod, t, xt.shape).to(v) * v
                + extract(self.diffusion.sqrt_one_minus_alphas_cumprod, t, xt.shape).to(v) * xt)


def loss_x0(model: nn.Module, diffusion: GaussianDiffusion, x0: torch.Tensor, y=None,
            generator: torch.Generator | None = None, *, t=None, noise=None) -> torch.Tensor:
    """E‖x0 − x̂0_θ(x_t, t)‖², mean over batch and pixels: train an x0-network (sample through :class:`EpsFromX0`).

    Args as :func:`loss_min_snr`; ``model`` returns x̂0 (B, C, H, W). The draws of t and ε are L_simple's.
    """
    diffusion = _check_diffusion(diffusion)
    x0 = check_float_tensor(x0, "x0")
    x0_pred, _, _ = diffusion._noise_prediction(model, x0, y, t, noise, generator)
    return torch.nn.functional.mse_loss(x0_pred.float(), x0.float())


class EpsFromX0(_EpsView):
    """An x0-network seen as an ε-model: ε = (x_t − √ᾱ_t x̂0_θ(x_t, t)) / √(1 − ᾱ_t)
    (:meth:`GaussianDiffusion.predict_eps_from_x0`), for the course's samplers."""

    _net_name = "x0_model"

    def _to_eps(self, xt, t, x0):
        return self.diffusion.predict_eps_from_x0(xt, t, x0)
