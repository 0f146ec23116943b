"""Gaussian diffusion: the forward process, its posterior, the DDPM and DDIM reverse steps and samplers.

Conventions (see STYLE.md at the repository root):

* Timesteps are **0-indexed**: ``t ∈ {0, …, T-1}`` as int64 of shape ``(B,)``. Index ``t`` is the
  paper's step ``t + 1``; ``alphas_cumprod_prev[0]`` is ᾱ_{-1} = 1 (no noise before the first step).
* Every per-step constant is computed once from float64 betas and stored as a float32 buffer under the
  name the papers use; :func:`extract` gathers it for a batch.
* Equations cite Ho et al. 2020 (DDPM), Nichol & Dhariwal 2021 and Song et al. 2021 (DDIM).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .schedules import alpha_tables
from .validation import check_float_tensor as _check_tensor
from .validation import check_generator, check_timesteps, is_int, is_number
from .validation import check_labels as _check_labels

__all__ = [
    "GaussianDiffusion", "extract", "classifier_free_guidance", "guided_eps", "gaussian_kl",
    "StepOutput", "SampleStep", "blend_noise",
]

VARIANCES = ("beta_tilde", "beta")


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------
def extract(a: torch.Tensor, t: torch.Tensor, x_shape: Sequence[int]) -> torch.Tensor:
    """Gather the per-step constants ``a[t]`` and shape them to broadcast against a batch.

    Args:
        a: (T,) per-step constant.
        t: (B,) int64 timesteps in [0, T-1].
        x_shape: shape of the batch, (B, ...).
    Returns:
        (B, 1, …, 1) tensor with ``len(x_shape)`` dimensions, on ``a``'s device.
    """
    out = a.gather(0, t.to(a.device))
    return out.reshape(t.shape[0], *((1,) * (len(x_shape) - 1)))


def _same_shape(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{na} and {nb} must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}.")


def _randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    check_generator(generator, like.device)
    return torch.randn(tuple(shape), generator=generator, device=like.device, dtype=like.dtype)


def classifier_free_guidance(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Guided noise prediction ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅) (Ho & Salimans 2021, eq. 6).

    ``w = 0`` is the plain conditional model; ``w = -1`` the unconditional one; larger ``w`` trades
    diversity for fidelity to the class.

    Args:
        eps_cond: (B, ...) prediction given the class label.
        eps_uncond: (B, ...) prediction given the null class ∅.
        w: guidance weight, a finite float.
    """
    eps_cond, eps_uncond = _check_tensor(eps_cond, "eps_cond"), _check_tensor(eps_uncond, "eps_uncond")
    _same_shape(eps_cond, eps_uncond, "eps_cond", "eps_uncond")
    if eps_cond.device != eps_uncond.device:
        raise ValueError(f"eps_cond and eps_uncond must be on one device; got {eps_cond.device} and "
                         f"{eps_uncond.device}.")
    w = _check_w(w)
    return (1 + w) * eps_cond - w * eps_uncond


def _check_w(w) -> float:
    if not is_number(w):
        raise ValueError(f"the guidance weight w must be a finite float (0 = no guidance); got {w!r}.")
    return float(w)


def guided_eps(model: nn.Module, x: torch.Tensor, t: torch.Tensor, y=None, w: float = 0.0) -> torch.Tensor:
    """The model's noise prediction, with classifier-free guidance when a label is given.

    ``model(x, t)`` is the unconditional call and ``model(x, t, y)`` the conditional one. With a label
    and ``w != 0`` the conditional and the null-class predictions are combined by
    :func:`classifier_free_guidance`. When the model exposes ``null_class`` (an int label meaning ∅,
    as :class:`course_utils.models.UNet` does) both predictions come from one batched forward pass;
    otherwise the null prediction is ``model(x, t, None)``.

    Args:
        x: (B, C, H, W) noisy images x_t.
        t: (B,) int64 timesteps, 0-indexed.
        y: None (unconditional), an int or a (B,) int64 tensor of class labels.
        w: guidance weight.
    Returns:
        (B, C, H, W) predicted noise.
    """
    w = _check_w(w)
    y = _check_labels(y, x.shape[0], x.device)
    if y is None:
        return model(x, t)
    if w == 0.0:
        return model(x, t, y)
    null = getattr(model, "null_class", None)
    if isinstance(null, int):
        eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))
        eps_cond, eps_uncond = eps.chunk(2)
    else:
        eps_cond, eps_uncond = model(x, t, y), model(x, t, None)
    return classifier_free_guidance(eps_cond, eps_uncond, w)


def gaussian_kl(mean1, var1, mean2, var2) -> torch.Tensor:
    """KL(N(mean1, var1) ‖ N(mean2, var2)) element-wise, for diagonal Gaussians (in nats).

    KL = ½ · (log(var2 / var1) + (var1 + (mean1 − mean2)²) / var2 − 1). Sum over the data dimensions
    for the KL between two diagonal multivariate Gaussians (the L_{t-1} terms of Ho et al. 2020, eq. 5).
    Variances must be positive; tensors broadcast against each other.
    """
    names = ("mean1", "var1", "mean2", "var2")
    tensors = []
    for name, v in zip(names, (mean1, var1, mean2, var2)):
        if isinstance(v, bool) or v is None:
            raise ValueError(f"{name} must be a float, a sequence of floats or a real tensor; got {v!r}.")
        if not isinstance(v, torch.Tensor):
            try:
                v = torch.as_tensor(v, dtype=torch.float64)
            except (TypeError, ValueError, RuntimeError) as err:
                raise ValueError(f"{name} must be a float, a sequence of floats or a real tensor; could not "
                                 f"convert {type(v).__name__}: {err}") from None
        if v.is_complex() or v.dtype == torch.bool:
            raise ValueError(f"{name} must be real-valued; got dtype {v.dtype}.")
        if v.device.type == "meta":
            raise ValueError(f"{name} is a meta tensor (it holds no data); pass a CPU or GPU tensor.")
        tensors.append(v if v.is_floating_point() else v.double())
    try:
        torch.broadcast_shapes(*(t.shape for t in tensors))
    except RuntimeError:
        raise ValueError("mean1, var1, mean2 and var2 must broadcast against each other; got shapes "
                         f"{[tuple(t.shape) for t in tensors]}.") from None
    if len({t.device for t in tensors}) > 1:
        raise ValueError(f"mean1, var1, mean2 and var2 must be on one device; got {[str(t.device) for t in tensors]}.")
    mean1, var1, mean2, var2 = tensors
    for name, v in (("var1", var1), ("var2", var2)):
        if v.numel() and bool(torch.isnan(v).any()):
            raise ValueError(f"{name} holds NaN; a variance must be a positive number.")
        if (v <= 0).any():
            raise ValueError(f"{name} must be strictly positive (a variance, not a standard deviation "
                             f"or log-variance); got a minimum of {float(v.min())}.")
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


class StepOutput(NamedTuple):
    """What one reverse step returns: the new sample first, the predicted x0 second."""

    sample: torch.Tensor
    pred_x0: torch.Tensor


@dataclass
class SampleStep:
    """One item yielded by a progressive sampler.

    Attributes:
        t: the 0-indexed timestep that was just denoised (x_t → x_{t_prev}).
        t_prev: the timestep of ``sample`` (-1 means the final, clean sample).
        sample: (B, C, H, W) x_{t_prev}.
        pred_x0: (B, C, H, W) the model's estimate of x0 at this step.
    """

    t: int
    t_prev: int
    sample: torch.Tensor
    pred_x0: torch.Tensor


# ----------------------------------------------------------------------------------------------
# The schedule object
# ----------------------------------------------------------------------------------------------
class GaussianDiffusion(nn.Module):
    """Every constant of a DDPM noise schedule, and the operations that use them.

    Args:
        betas: (T,) schedule with values in (0, 1), e.g. ``linear_betas(1000)``.
        variance: the reverse-process variance σ_t² used by :meth:`step`: ``"beta_tilde"`` (β̃_t, the
            posterior variance, default) or ``"beta"`` (β_t). Ho et al. 2020 §3.2 report both work.
        clip_x0: clip the predicted x0 to [-1, 1] in :meth:`step` and :meth:`ddim_step` (default off).

    The buffers are float32, follow ``.to(device)``, and are saved in a ``state_dict``.
    """

    def __init__(self, betas, variance: str = "beta_tilde", clip_x0: bool = False):
        super().__init__()
        betas64, alphas, alphas_cumprod, alphas_cumprod_prev = alpha_tables(betas)
        self.variance = self._check_variance(variance)
        self.clip_x0 = bool(clip_x0)

        def reg(name: str, value: torch.Tensor) -> None:
            self.register_buffer(name, value.to(torch.float32))

        reg("betas", betas64)
        reg("alphas", alphas)
        reg("alphas_cumprod", alphas_cumprod)                     # ᾱ_t = ∏_{s ≤ t} α_s
        reg("alphas_cumprod_prev", alphas_cumprod_prev)           # ᾱ_{t-1}, with ᾱ_{-1} = 1

        # q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)              (Ho et al. 2020, eq. 4)
        reg("sqrt_alphas_cumprod", alphas_cumprod.sqrt())
        reg("sqrt_one_minus_alphas_cumprod", (1.0 - alphas_cumprod).sqrt())
        reg("sqrt_recip_alphas_cumprod", (1.0 / alphas_cumprod).sqrt())
        reg("sqrt_recipm1_alphas_cumprod", (1.0 / alphas_cumprod - 1.0).sqrt())

        # q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I)                 (Ho et al. 2020, eqs. 6–7)
        posterior_variance = betas64 * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        reg("posterior_variance", posterior_variance)
        reg("posterior_mean_coef1", betas64 * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod))
        reg("posterior_mean_coef2", (1.0 - alphas_cumprod_prev) * alphas.sqrt() / (1.0 - alphas_cumprod))

        # p_θ(x_{t-1} | x_t) mean in terms of ε (Ho et al. 2020, eq. 11)
        reg("sqrt_recip_alphas", (1.0 / alphas).sqrt())
        reg("eps_coef", betas64 / (1.0 - alphas_cumprod).sqrt())

    # -- validation ---------------------------------------------------------------------------
    @staticmethod
    def _check_variance(variance: str) -> str:
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES} (σ_t² = β̃_t or β_t); got {variance!r}.")
        return variance

    @property
    def num_timesteps(self) -> int:
        """T, the number of diffusion steps."""
        return int(self.betas.shape[0])

    def _check_t(self, t, batch: int, name: str = "t", allow_minus_one: bool = False) -> torch.Tensor:
        """``t`` as int64 (B,) on the schedule's device, in [0, T-1] (see :func:`course_utils.validation.check_timesteps`)."""
        return check_timesteps(t, batch, self.num_timesteps, self.betas.device, name=name,
                               allow_minus_one=allow_minus_one)

    def _extract(self, a: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return extract(a, t, x.shape).to(device=x.device, dtype=x.dtype)

    # -- q(x_t | x_0) ---------------------------------------------------------------------------
    def q_mean_variance(self, x0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean √ᾱ_t·x0 and variance (1 − ᾱ_t) of q(x_t | x_0) (eq. 4).

        Args:
            x0: (B, ...) clean data in [-1, 1].
            t: (B,) int64 timesteps in [0, T-1].
        Returns:
            mean (B, ...) and variance (B, 1, …, 1).
        """
        x0 = _check_tensor(x0, "x0")
        t = self._check_t(t, x0.shape[0])
        mean = self._extract(self.sqrt_alphas_cumprod, t, x0) * x0
        var = 1.0 - self._extract(self.alphas_cumprod, t, x0)
        return mean, var

    def q_sample(self, x0: torch.Tensor, t, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample x_t ~ q(x_t | x_0) in one jump: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε (eq. 4).

        Args:
            x0: (B, C, H, W) clean images in [-1, 1] (any (B, ...) shape works).
            t: (B,) int64 timesteps in [0, T-1] (an int is broadcast to the batch).
            noise: optional (B, ...) ε ~ N(0, I); drawn with ``generator`` when omitted.
            generator: optional torch.Generator on x0's device.
        Returns:
            (B, ...) x_t, same shape and dtype as x0.
        """
        x0 = _check_tensor(x0, "x0")
        t = self._check_t(t, x0.shape[0])
        if noise is None:
            noise = _randn(x0.shape, x0, generator)
        else:
            _same_shape(_check_tensor(noise, "noise"), x0, "noise", "x0")
        return (self._extract(self.sqrt_alphas_cumprod, t, x0) * x0
                + self._extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

    def q_step(self, x_prev: torch.Tensor, t, noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """One forward step x_{t-1} → x_t ~ q(x_t | x_{t-1}) = N(√(1 − β_t)·x_{t-1}, β_t·I) (eq. 2).

        The noising loop ``x = sqrt(1 - β[t]) * x + sqrt(β[t]) * ε``, one step; t is 0-indexed, so
        index 0 takes x0 to the paper's x_1.

        Args:
            x_prev: (B, ...) the previous sample (x0 when t = 0).
            t: (B,) int64 timesteps in [0, T-1] (an int is broadcast).
            noise: optional (B, ...) ε ~ N(0, I); drawn with ``generator`` when omitted.
        Returns:
            (B, ...) x_t.
        """
        x_prev = _check_tensor(x_prev, "x_prev")
        t = self._check_t(t, x_prev.shape[0])
        if noise is None:
            noise = _randn(x_prev.shape, x_prev, generator)
        else:
            _same_shape(_check_tensor(noise, "noise"), x_prev, "noise", "x_prev")
        return (self._extract(self.alphas, t, x_prev).sqrt() * x_prev
                + self._extract(self.betas, t, x_prev).sqrt() * noise)

    def snr(self, t) -> torch.Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) at 0-indexed timesteps ``t`` (int or (B,) int64)."""
        batch = t.shape[0] if isinstance(t, torch.Tensor) and t.ndim else 1
        t = self._check_t(t, batch)
        a = self.alphas_cumprod[t]
        return a / (1.0 - a)

    # -- q(x_{t-1} | x_t, x_0) -------------------------------------------------------------------
    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean μ̃_t(x_t, x_0) and variance β̃_t of q(x_{t-1} | x_t, x_0) (eqs. 6–7).

        μ̃_t = √ᾱ_{t-1} β_t / (1 − ᾱ_t) · x0 + √α_t (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · x_t,
        β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t  (β̃ at t = 0 is 0: x_{-1} is x0 itself).

        Args:
            x0: (B, ...) clean data.
            xt: (B, ...) noisy data at step t.
            t: (B,) int64 timesteps in [0, T-1].
        Returns:
            mean (B, ...) and variance (B, 1, …, 1).
        """
        x0, xt = _check_tensor(x0, "x0"), _check_tensor(xt, "xt")
        _same_shape(x0, xt, "x0", "xt")
        t = self._check_t(t, xt.shape[0])
        mean = (self._extract(self.posterior_mean_coef1, t, xt) * x0
                + self._extract(self.posterior_mean_coef2, t, xt) * xt)
        return mean, self._extract(self.posterior_variance, t, xt)

    def predict_x0_from_eps(self, xt: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """Invert eq. 4: x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t.

        Args:
            xt: (B, ...) noisy data; t: (B,) int64 timesteps; eps: (B, ...) (predicted) noise.
        Returns:
            (B, ...) the implied x0.
        """
        xt, eps = _check_tensor(xt, "xt"), _check_tensor(eps, "eps")
        _same_shape(xt, eps, "xt", "eps")
        t = self._check_t(t, xt.shape[0])
        return (self._extract(self.sqrt_recip_alphas_cumprod, t, xt) * xt
                - self._extract(self.sqrt_recipm1_alphas_cumprod, t, xt) * eps)

    def predict_eps_from_x0(self, xt: torch.Tensor, t, x0: torch.Tensor) -> torch.Tensor:
        """The noise that takes x0 to x_t: ε = (x_t − √ᾱ_t·x0) / √(1 − ᾱ_t). Shapes as above."""
        xt, x0 = _check_tensor(xt, "xt"), _check_tensor(x0, "x0")
        _same_shape(xt, x0, "xt", "x0")
        t = self._check_t(t, xt.shape[0])
        return ((self._extract(self.sqrt_recip_alphas_cumprod, t, xt) * xt - x0)
                / self._extract(self.sqrt_recipm1_alphas_cumprod, t, xt))

    # -- p_θ(x_{t-1} | x_t) ----------------------------------------------------------------------
    def p_mean_variance(self, eps: torch.Tensor, xt: torch.Tensor, t, variance: str | None = None,
                        clip_x0: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance σ_t² and predicted x0 of p_θ(x_{t-1} | x_t) given a noise prediction.

        Without clipping the mean is eq. 11 of Ho et al. 2020,
        μ_θ = 1/√α_t · (x_t − β_t / √(1 − ᾱ_t) · ε_θ); with clipping it is μ̃_t(x_t, clip(x̂0)).

        Args:
            eps: (B, ...) predicted noise ε_θ(x_t, t).
            xt: (B, ...) current sample.
            t: (B,) int64 timesteps in [0, T-1].
            variance: ``"beta_tilde"`` or ``"beta"``; defaults to the object's setting.
            clip_x0: clip x̂0 to [-1, 1]; defaults to the object's setting.
        Returns:
            mean (B, ...), variance (B, 1, …, 1), pred_x0 (B, ...).
        """
        variance = self.variance if variance is None else self._check_variance(variance)
        clip_x0 = self.clip_x0 if clip_x0 is None else bool(clip_x0)
        pred_x0 = self.predict_x0_from_eps(xt, t, eps)
        t = self._check_t(t, xt.shape[0])
        if clip_x0:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
            mean, _ = self.q_posterior(pred_x0, xt, t)
        else:
            mean = self._extract(self.sqrt_recip_alphas, t, xt) * (xt - self._extract(self.eps_coef, t, xt) * eps)
        var_table = self.posterior_variance if variance == "beta_tilde" else self.betas
        return mean, self._extract(var_table, t, xt), pred_x0

    def step(self, eps: torch.Tensor, xt: torch.Tensor, t, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None, variance: str | None = None,
             clip_x0: bool | None = None) -> StepOutput:
        """One DDPM reverse step x_t → x_{t-1} (Algorithm 2, line 4).

        x_{t-1} = μ_θ(x_t, t) + σ_t·z with z ~ N(0, I), and **no noise at t = 0** (the last step).

        Args:
            eps: (B, C, H, W) predicted noise ε_θ(x_t, t).
            xt: (B, C, H, W) current sample.
            t: (B,) int64 timesteps in [0, T-1] (an int is broadcast).
            noise: optional (B, C, H, W) z; drawn with ``generator`` when omitted.
            generator: optional torch.Generator on xt's device.
            variance: σ_t² = β̃_t (``"beta_tilde"``) or β_t (``"beta"``); defaults to the object's.
            clip_x0: clip the predicted x0 to [-1, 1]; defaults to the object's setting.
        Returns:
            StepOutput(sample=x_{t-1}, pred_x0=x̂0), both (B, C, H, W).
        """
        mean, var, pred_x0 = self.p_mean_variance(eps, xt, t, variance=variance, clip_x0=clip_x0)
        t = self._check_t(t, xt.shape[0])
        if noise is None:
            noise = _randn(xt.shape, xt, generator)
        else:
            _same_shape(_check_tensor(noise, "noise"), xt, "noise", "xt")
        nonzero = self._extract((torch.arange(self.num_timesteps, device=self.betas.device) != 0).float(), t, xt)
        sample = mean + nonzero * var.sqrt() * noise          # no noise at t == 0
        return StepOutput(sample, pred_x0)

    def _skip_alphas(self, xt: torch.Tensor, t, t_prev):
        """A jump t → t_prev (-1 ≤ t_prev < t) checked, with ᾱ_t and ᾱ_prev (ᾱ_{-1} = 1) shaped (B, 1, …, 1)
        for ``xt``; shared by :meth:`respaced_step` and :meth:`ddim_step`."""
        t = self._check_t(t, xt.shape[0])
        t_prev = self._check_t(t_prev, xt.shape[0], name="t_prev", allow_minus_one=True)
        if (t_prev >= t).any():
            raise ValueError("t_prev must be smaller than t for every image (the reverse process goes "
                             "from t down to t_prev); got t_prev >= t.")
        a_t = self._extract(self.alphas_cumprod, t, xt)
        a_prev = torch.where(t_prev >= 0, self.alphas_cumprod[t_prev.clamp(min=0)],
                             torch.ones((), device=self.betas.device))
        return t, t_prev, a_t, a_prev.reshape(a_t.shape).to(device=xt.device, dtype=xt.dtype)

    def respaced_step(self, eps: torch.Tensor, xt: torch.Tensor, t, t_prev, noise: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, variance: str | None = None,
                      clip_x0: bool | None = None) -> StepOutput:
        """One DDPM reverse step x_t → x_{t_prev} of the chain respaced to a subsequence of the timesteps.

        Nichol & Dhariwal 2021 (§4): the forward marginals q(x_t | x_0) of the visited timesteps define a
        shorter Markov chain with β'_t = 1 − ᾱ_t / ᾱ_prev; its posterior q(x_prev | x_t, x_0) is eqs. 6–7
        with β'_t in place of β_t:
        μ̃' = √ᾱ_prev·β'_t/(1 − ᾱ_t)·x̂0 + √(1 − β'_t)·(1 − ᾱ_prev)/(1 − ᾱ_t)·x_t and
        β̃' = (1 − ᾱ_prev)/(1 − ᾱ_t)·β'_t. x_prev = μ̃' + σ·z with σ² = β̃' (``"beta_tilde"``) or β'_t
        (``"beta"``), and no noise on the last step (t_prev = -1). With t_prev = t − 1 this is :meth:`step`;
        with σ² = β̃' it equals :meth:`ddim_step` with η = 1.

        Args:
            eps: (B, C, H, W) predicted noise at (x_t, t).
            xt: (B, C, H, W) current sample.
            t: (B,) int64 timesteps in [0, T-1].
            t_prev: (B,) int64 earlier timesteps, -1 ≤ t_prev < t; -1 means ᾱ = 1 (the clean sample).
            noise, generator: the z above, or a generator to draw it.
            variance: ``"beta_tilde"`` or ``"beta"``; defaults to the object's setting.
            clip_x0: clip x̂0 to [-1, 1]; defaults to the object's setting.
        Returns:
            StepOutput(sample=x_{t_prev}, pred_x0=x̂0).
        """
        variance = self.variance if variance is None else self._check_variance(variance)
        clip_x0 = self.clip_x0 if clip_x0 is None else bool(clip_x0)
        pred_x0 = self.predict_x0_from_eps(xt, t, eps)
        t, t_prev, a_t, a_prev = self._skip_alphas(xt, t, t_prev)
        if clip_x0:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
        beta = 1 - a_t / a_prev                                   # β'_t of the respaced chain
        mean = (a_prev.sqrt() * beta / (1 - a_t)) * pred_x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a_t)) * xt
        var = (1 - a_prev) / (1 - a_t) * beta if variance == "beta_tilde" else beta
        if noise is None:
            noise = _randn(xt.shape, xt, generator)
        else:
            _same_shape(_check_tensor(noise, "noise"), xt, "noise", "xt")
        nonzero = (t_prev >= 0).to(xt.dtype).reshape(a_t.shape)   # no noise on the last step
        return StepOutput(mean + nonzero * var.sqrt() * noise, pred_x0)

    def ddim_step(self, eps: torch.Tensor, xt: torch.Tensor, t, t_prev, eta: float = 0.0,
                  noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                  clip_x0: bool | None = None) -> StepOutput:
        """One DDIM step x_t → x_{t_prev} (Song et al. 2021, eq. 12).

        x_{t_prev} = √ᾱ_prev · x̂0 + √(1 − ᾱ_prev − σ²) · ε_θ + σ·z, with
        σ = η · √((1 − ᾱ_prev) / (1 − ᾱ_t)) · √(1 − ᾱ_t / ᾱ_prev) (eq. 16). η = 0 is deterministic;
        η = 1 with t_prev = t − 1 is the DDPM step with σ_t² = β̃_t.

        Args:
            eps: (B, C, H, W) predicted noise at (x_t, t).
            xt: (B, C, H, W) current sample.
            t: (B,) int64 timesteps in [0, T-1].
            t_prev: (B,) int64 earlier timesteps, -1 ≤ t_prev < t; -1 means ᾱ = 1 (the clean sample).
            eta: η ≥ 0.
            noise, generator: the z above, or a generator to draw it.
            clip_x0: clip x̂0 to [-1, 1] (ε is then recomputed from the clipped x̂0).
        Returns:
            StepOutput(sample=x_{t_prev}, pred_x0=x̂0).
        """
        if not is_number(eta) or float(eta) < 0.0:
            raise ValueError(f"eta must be a finite float ≥ 0 (0 = deterministic DDIM, 1 = DDPM-like); got {eta!r}.")
        clip_x0 = self.clip_x0 if clip_x0 is None else bool(clip_x0)
        pred_x0 = self.predict_x0_from_eps(xt, t, eps)
        t, t_prev, a_t, a_prev = self._skip_alphas(xt, t, t_prev)
        if clip_x0:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
            eps = self.predict_eps_from_x0(xt, t, pred_x0)
        sigma = float(eta) * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()
        if noise is None:
            noise = _randn(xt.shape, xt, generator) if eta > 0 else torch.zeros_like(xt)
        else:
            _same_shape(_check_tensor(noise, "noise"), xt, "noise", "xt")
        direction = (1 - a_prev - sigma ** 2).clamp(min=0).sqrt() * eps
        return StepOutput(a_prev.sqrt() * pred_x0 + direction + sigma * noise, pred_x0)

    # -- Algorithm 1 ------------------------------------------------------------------------------
    def sample_timesteps(self, batch: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """t ~ Uniform{0, …, T-1} (the paper's Uniform({1, …, T})), int64 (B,)."""
        device = self.betas.device if device is None else device
        return torch.randint(0, self.num_timesteps, (batch,), device=device, generator=generator)

    def loss_simple(self, model: nn.Module, x0: torch.Tensor, y=None, t=None, noise=None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """L_simple = E‖ε − ε_θ(√ᾱ_t x0 + √(1 − ᾱ_t) ε, t)‖² (Ho et al. 2020, eq. 14; Algorithm 1).

        Args:
            model: called as ``model(x_t, t)`` or ``model(x_t, t, y)``; returns (B, C, H, W) ε_θ.
            x0: (B, C, H, W) clean images in [-1, 1].
            y: optional (B,) int64 labels (already context-dropped for classifier-free guidance).
            t, noise: optional fixed timesteps (B,) and noise (B, C, H, W); sampled when omitted.
        Returns:
            scalar tensor, the mean squared error over batch and pixels.
        """
        eps_pred, noise, _ = self._noise_prediction(model, x0, y, t, noise, generator)
        return torch.nn.functional.mse_loss(eps_pred.float(), noise.float())

    def _noise_prediction(self, model: nn.Module, x0: torch.Tensor, y, t, noise, generator):
        """Algorithm 1's draws and the model's answer, shared by every ε-regression loss (L_simple here,
        :func:`course_utils.likelihood.loss_vlb`): t ~ Uniform{0, …, T-1} (0-indexed) and ε ~ N(0, I), in that
        order, unless given. Returns (ε_θ(x_t, t) (B, C, H, W), ε, t as int64 (B,) on x0's device)."""
        x0 = _check_tensor(x0, "x0")
        if t is None:
            t = self.sample_timesteps(x0.shape[0], device=x0.device, generator=generator)
        if noise is None:
            noise = _randn(x0.shape, x0, generator)
        xt = self.q_sample(x0, t, noise=noise)
        eps_pred = model(xt, t) if y is None else model(xt, t, y)
        if eps_pred.shape != noise.shape:
            raise ValueError(f"the model must predict noise with the input's shape {tuple(noise.shape)}; "
                             f"got {tuple(eps_pred.shape)}.")
        return eps_pred, noise, self._check_t(t, x0.shape[0]).to(x0.device)

    # -- samplers ----------------------------------------------------------------------------------
    def _init_sample(self, shape, x_T, generator):
        if x_T is not None:
            return _check_tensor(x_T, "x_T")
        if (not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 2
                or not all(is_int(s) and s > 0 for s in shape)):
            raise ValueError(f"shape must be a tuple of positive ints like (B, C, H, W); got {shape!r}.")
        like = torch.empty((), device=self.betas.device)
        return _randn(shape, like, generator)

    def ddim_timesteps(self, num_steps: int) -> list[int]:
        """The descending 0-indexed timesteps a ``num_steps``-step DDIM sampler visits.

        They are spread evenly over [0, T-1], always including T-1 (start from pure noise) and 0
        (end on the cleanest step); ``num_steps = T`` visits every step.
        """
        T = self.num_timesteps
        if not is_int(num_steps) or not (1 <= num_steps <= T):
            raise ValueError(f"num_steps must be an int in [1, T={T}]; got {num_steps!r}.")
        if num_steps == 1:
            return [T - 1]
        ts = torch.linspace(0, T - 1, num_steps, dtype=torch.float64).round().long().tolist()
        return sorted(set(ts), reverse=True)

    @torch.inference_mode()
    def _sample_progressive(self, model, pairs, shape, y, w, generator, progress, x_T, step_fn, desc):
        x = self._init_sample(shape, x_T, generator)
        B = x.shape[0]
        y = _check_labels(y, B, x.device)
        was_training = model.training
        model.eval()
        try:
            for t_int, t_prev_int in tqdm(pairs, desc=desc, disable=not progress, leave=False):
                t = torch.full((B,), t_int, device=x.device, dtype=torch.long)
                eps = guided_eps(model, x, t, y, w)
                x, pred_x0 = step_fn(eps, x, t, t_prev_int)
                yield SampleStep(t_int, t_prev_int, x, pred_x0)
        finally:
            model.train(was_training)

    def p_sample_loop_progressive(self, model: nn.Module, shape=None, y=None, w: float = 0.0,
                                  generator: torch.Generator | None = None, progress: bool = True,
                                  x_T: torch.Tensor | None = None, variance: str | None = None,
                                  clip_x0: bool | None = None, num_steps: int | None = None) -> Iterator[SampleStep]:
        """DDPM ancestral sampling (Algorithm 2), yielding a :class:`SampleStep` after each of the T steps.

        ``num_steps`` (< T) samples the chain respaced to :meth:`ddim_timesteps` ``(num_steps)`` instead
        (Nichol & Dhariwal 2021, §4; :meth:`respaced_step`): fewer network calls, worse samples than all T.

        Args:
            model: ε_θ, called as ``model(x, t)`` or ``model(x, t, y)``.
            shape: (B, C, H, W) of the samples (ignored when ``x_T`` is given).
            y: None, an int or (B,) int64 labels; w: guidance weight (see :func:`guided_eps`).
            generator: torch.Generator on the schedule's device, for reproducible samples.
            progress: show a tqdm bar.
            x_T: optional starting noise (B, C, H, W).
            variance, clip_x0: as in :meth:`step`.
            num_steps: None (every step, the default) or an int in [1, T]: the respaced chain's length.
        """
        if num_steps is None or num_steps == self.num_timesteps:
            pairs = [(t, t - 1) for t in range(self.num_timesteps - 1, -1, -1)]

            def fn(eps, x, t, _t_prev):
                return self.step(eps, x, t, generator=generator, variance=variance, clip_x0=clip_x0)
        else:
            ts = self.ddim_timesteps(num_steps)                  # validates num_steps
            pairs = list(zip(ts, ts[1:] + [-1]))

            def fn(eps, x, t, t_prev):
                return self.respaced_step(eps, x, t, t_prev, generator=generator, variance=variance,
                                          clip_x0=clip_x0)
        return self._sample_progressive(model, pairs, shape, y, w, generator, progress, x_T, fn, "DDPM")

    def p_sample_loop(self, model: nn.Module, shape=None, **kwargs) -> torch.Tensor:
        """Run :meth:`p_sample_loop_progressive` to the end; returns (B, C, H, W) samples x_0."""
        out = None
        for out in self.p_sample_loop_progressive(model, shape, **kwargs):
            pass
        return out.sample

    def ddim_sample_loop_progressive(self, model: nn.Module, shape=None, num_steps: int = 50,
                                     eta: float = 0.0, y=None, w: float = 0.0,
                                     generator: torch.Generator | None = None, progress: bool = True,
                                     x_T: torch.Tensor | None = None,
                                     clip_x0: bool | None = None) -> Iterator[SampleStep]:
        """DDIM sampling (Song et al. 2021) over :meth:`ddim_timesteps` (``num_steps`` steps), yielding each step.

        Arguments as in :meth:`p_sample_loop_progressive`, plus ``num_steps`` and ``eta``.
        """
        ts = self.ddim_timesteps(num_steps)
        pairs = list(zip(ts, ts[1:] + [-1]))

        def fn(eps, x, t, t_prev):
            return self.ddim_step(eps, x, t, t_prev, eta=eta, generator=generator, clip_x0=clip_x0)
        return self._sample_progressive(model, pairs, shape, y, w, generator, progress, x_T, fn, "DDIM")

    def ddim_sample_loop(self, model: nn.Module, shape=None, **kwargs) -> torch.Tensor:
        """Run :meth:`ddim_sample_loop_progressive` to the end; returns (B, C, H, W) samples."""
        out = None
        for out in self.ddim_sample_loop_progressive(model, shape, **kwargs):
            pass
        return out.sample

    def extra_repr(self) -> str:
        return f"T={self.num_timesteps}, variance={self.variance!r}, clip_x0={self.clip_x0}"


# ----------------------------------------------------------------------------------------------
# Lesson 01: one fixed amount of noise (not the DDPM forward process)
# ----------------------------------------------------------------------------------------------
def blend_noise(x0: torch.Tensor, noise: torch.Tensor, level: float) -> torch.Tensor:
    """Lesson 01's single noise level: ``x = (1 − level)·x0 + level·ε``.

    The one-step corruption of lesson 01's denoiser: ``level = 0`` is the clean image, ``level = 1``
    pure noise. There is no schedule and no timestep; lessons 02+ replace it by q(x_t | x_0).

    Args:
        x0: (B, C, H, W) images in [-1, 1].
        noise: (B, C, H, W) ε ~ N(0, I).
        level: float in [0, 1], the share of noise.
    Returns:
        (B, C, H, W) noisy images, x0's dtype.
    """
    if not is_number(level) or not 0.0 <= float(level) <= 1.0:
        raise ValueError(f"level must be a float in [0, 1] (0 = clean, 1 = pure noise); got {level!r}.")
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}; got {tuple(noise.shape)}.")
    return ((1.0 - level) * x0 + level * noise).to(x0.dtype)
