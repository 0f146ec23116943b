"""Cascaded diffusion (lesson 09): a 16 px base model, then a 16 → 32 px super-resolution diffusion model.

Ho et al. 2021 ("Cascaded Diffusion Models for High Fidelity Image Generation") and Saharia et al. 2022
(SR3, Imagen) make large images with a chain of models: a base model at low resolution, then models that
each double or quadruple the resolution *conditioned on the previous stage's image*. Here:

* :func:`upsample` — the condition: the 16 px image resized to 32 px (bicubic), concatenated with x_t.
* :func:`augment_condition` — **noise-conditioning augmentation**: the condition is itself pushed through
  the forward process to a level ``a`` (the standard deviation of the added noise,
  ``z_a = √(1 − a²)·z + a·ε``, i.e. q(x_t | x_0) at ᾱ = 1 − a²) and the model is told ``a``. In training
  ``a`` is drawn at random; at sampling one fixed ``a`` is chosen. It teaches the super-resolution model not
  to trust the last pixel of its condition, because the base model's samples are not real images (Ho et al.
  2021, §3.2, found the best level on generated conditions is not zero). For the shipped ``sr32`` the best
  level depends on how far the base samples are from real ones, which the base stage's guidance w sets
  (``course_utils/assets/sharper32.json``): at w = 1 the distance grows with a, at w = 2 the levels tie within
  about 0.1 (0 a hair ahead), at w = 3 and 5 the largest level swept, 0.5, is best.
* :class:`SRUNet` — the course U-Net taking ``cat([x_t, z_a])`` (2 channels) and adding an embedding of
  ``a`` to the time embedding. The shipped ``sr32`` denoises the **residual** ``(x − upsample(low)) / s`` rather
  than the image (Li et al. 2022, SRDiff; ``SRUNetConfig.residual_scale`` = s, the residual's standard deviation):
  on real 16 px test images its Fréchet distance to the real 32 px ones is a quarter of bicubic's (record
  ``sr32.json``); the first shipped ``sr32``, the same U-Net denoising the image for 2000 steps, scored 2.24 against
  bicubic's 2.33.
* :func:`make_sr_loss` — L_simple (the package's :meth:`GaussianDiffusion.loss_simple`) on 32 px images
  with their augmented 16 px conditions.
* :func:`super_resolve`, :func:`sample` — the two-stage sampler: ``cfg16`` (lesson 06/07's class-conditional
  base model, DDIM with guidance w) → :func:`upsample` → :func:`augment_condition` → DDIM of ``sr32``.
* :func:`build_sr32` — ``python -m course_utils.pretrained build sr32`` trains and records the shipped model.

Conventions (STYLE.md): images (B, 1, H, W) in [-1, 1]; 0-indexed timesteps; misuse raises a ``ValueError``
that names the argument and the fix.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import GaussianDiffusion
from .models import SinusoidalTimeEmbedding, UNet, UNetConfig
from .validation import check_image_batch, is_int, is_number

__all__ = ["upsample", "augment_condition", "SRUNetConfig", "SRUNet", "Conditioned", "make_sr_loss",
           "super_resolve", "load_sr32", "base_sample", "sample", "evaluate_sr", "reevaluate_sr32", "build_sr32", "sr_training_pairs",
           "SR32", "SR32_RECIPE", "LESSON_AUG", "LESSON_W", "AUG_SWEEP", "LOW", "HIGH"]

SR32 = "sr32"
LOW, HIGH = 16, 32          # the base model's and the super-resolution model's image sizes
LESSON_W = 2.0              # guidance weight of the base stage (lesson 06's choice)
LESSON_AUG = 0.0            # the level lesson 09 samples with: the best at its w = 2, by a hair (sharper32.json)
AUG_SWEEP = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)   # the levels the lesson's sweep measures


# ----------------------------------------------------------------------------------------------
# The condition
# ----------------------------------------------------------------------------------------------
def upsample(low: torch.Tensor, size: int = HIGH) -> torch.Tensor:
    """The super-resolution model's condition: ``low`` resized to ``size`` px, bicubic, clamped to [-1, 1].

    Args:
        low: (B, 1, h, w) images in [-1, 1] (16 px in the course).
        size: the target side, larger than h and w.
    Returns:
        (B, 1, size, size), low's dtype.
    """
    low = check_image_batch(low, "low")
    if not is_int(size) or size < max(low.shape[-2:]):
        raise ValueError(f"size must be an int at least the input's side {max(low.shape[-2:])} (the condition is "
                         f"upsampled, never shrunk); got {size!r}.")
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


def _levels(level, batch: int, device, dtype) -> torch.Tensor:
    """The augmentation level as a (B,) float tensor in [0, 1]."""
    if isinstance(level, torch.Tensor):
        if level.is_complex() or level.dtype == torch.bool:
            raise ValueError(f"the augmentation level (aug_level) must be a float or a (B,) float tensor in [0, 1); got dtype "
                             f"{level.dtype}.")
        if level.ndim == 0:
            level = level.reshape(1).expand(batch)
        if level.shape != (batch,):
            raise ValueError(f"the augmentation level (aug_level) must be a float or a (B,) = ({batch},) tensor, one level per "
                             f"image; got shape {tuple(level.shape)}.")
        a = level.to(device=device, dtype=dtype)
    elif is_number(level):
        a = torch.full((batch,), float(level), device=device, dtype=dtype)
    else:
        raise ValueError(f"the augmentation level (aug_level) must be a float in [0, 1) (the noise's standard deviation); got "
                         f"{type(level).__name__}.")
    if not bool(((a >= 0) & (a < 1)).all()):                  # NaN fails both comparisons
        raise ValueError(f"the augmentation level (aug_level) must lie in [0, 1) (0 = the clean condition, towards 1 = pure "
                         f"noise); got values from {float(a.min()):.3g} to {float(a.max()):.3g}.")
    return a


def augment_condition(z: torch.Tensor, level, noise: torch.Tensor) -> torch.Tensor:
    """Noise-conditioning augmentation: ``z_a = √(1 − a²)·z + a·ε`` (Ho et al. 2021, §3.2).

    The forward process q(x_t | x_0) applied to the condition, at the point where ᾱ = 1 − a²: ``a`` is the
    standard deviation of the added noise and the variance of a unit-variance ``z`` is kept.

    Args:
        z: (B, C, H, W) condition (the upsampled low-resolution image).
        level: a float or (B,) tensor ``a`` in [0, 1); 0 leaves ``z`` unchanged.
        noise: (B, C, H, W) ε ~ N(0, I).
    Returns:
        (B, C, H, W) z_a, z's dtype.
    """
    z = check_image_batch(z, "z")
    if not isinstance(noise, torch.Tensor) or noise.shape != z.shape:
        raise ValueError(f"noise must be a tensor with z's shape {tuple(z.shape)}; got "
                         f"{tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__}.")
    a = _levels(level, z.shape[0], z.device, z.dtype).view(-1, 1, 1, 1)
    return (1.0 - a * a).sqrt() * z + a * noise.to(z.dtype)


# ----------------------------------------------------------------------------------------------
# The super-resolution U-Net
# ----------------------------------------------------------------------------------------------
def is_residual_scale(value) -> bool:
    """True for what ``SRUNetConfig.residual_scale`` accepts: None (the model denoises the image) or a finite
    positive number (the residual's standard deviation)."""
    return value is None or (is_number(value) and value > 0)


def _sr_unet() -> UNetConfig:
    return UNetConfig(in_channels=2, out_channels=1, channels=(32, 64, 64))


@dataclass(frozen=True)
class SRUNetConfig:
    """The super-resolution U-Net: a :class:`UNetConfig` with 2 input channels (x_t and the condition).

    ``residual_scale``: ``None`` — the model denoises the 32 px image itself (Ho et al. 2021, Saharia et al.
    2022); a float ``s`` — it denoises the scaled residual ``r = (x − upsample(low)) / s`` (Li et al. 2022,
    SRDiff), ``s`` the residual's standard deviation on the training pairs, so r has unit variance like the
    images the schedule was made for; :func:`super_resolve` adds ``upsample(low) + s·r`` back.
    """

    unet: UNetConfig = field(default_factory=_sr_unet)
    residual_scale: float | None = None

    def __post_init__(self):
        u = self.unet if isinstance(self.unet, UNetConfig) else UNetConfig.from_dict(self.unet)
        object.__setattr__(self, "unet", u)
        if u.in_channels != 2 or u.resolved_out_channels != 1 or u.num_classes is not None:
            raise ValueError("SRUNetConfig.unet must have in_channels=2 (x_t and the condition), out_channels=1 and "
                             f"no classes; got in_channels={u.in_channels}, out_channels={u.resolved_out_channels}, "
                             f"num_classes={u.num_classes}.")
        if not is_residual_scale(self.residual_scale):
            raise ValueError(f"SRUNetConfig.residual_scale must be None (denoise the image) or a positive float (the "
                             f"residual's standard deviation); got {self.residual_scale!r}.")

    def to_dict(self) -> dict:
        out = {"unet": self.unet.to_dict()}
        if self.residual_scale is not None:
            out["residual_scale"] = float(self.residual_scale)
        return out


class SRUNet(UNet):
    """ε_θ(x_t, t, z_a, a): the course U-Net reading the noisy 32 px image beside its augmented condition.

    ``cat([x_t, z_a], dim=1)`` goes through the U-Net; the augmentation level ``a`` is embedded like a
    timestep (sinusoidal of 1000·a → Linear → GELU → Linear) and added to the time embedding.

    Shapes:
        x (B, 1, H, W), t (B,) int64 0-indexed, cond (B, 1, H, W), aug_level float or (B,) → (B, 1, H, W).
    """

    def __init__(self, config: SRUNetConfig | dict | None = None):
        cfg = SRUNetConfig() if config is None else (SRUNetConfig(**config) if isinstance(config, dict) else config)
        if not isinstance(cfg, SRUNetConfig):
            raise ValueError(f"config must be an SRUNetConfig or its to_dict(); got {type(cfg).__name__}.")
        super().__init__(cfg.unet)
        self.sr_config = cfg
        c0, E = cfg.unet.channels[0], self.time_emb_dim
        self.aug_embed = SinusoidalTimeEmbedding(c0)
        self.aug_mlp = nn.Sequential(nn.Linear(c0, E), nn.GELU(), nn.Linear(E, E))

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor | None = None, aug_level=None) -> torch.Tensor:  # type: ignore[override]
        """x: (B, 1, H, W) x_t; t: (B,) int64; cond: (B, 1, H, W) the augmented condition z_a; aug_level: a."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"x must be the (B, 1, H, W) noisy image x_t; got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
        if cond is None or aug_level is None:
            raise ValueError("SRUNet needs the condition and its augmentation level: model(x_t, t, cond, aug_level) "
                             "with cond = augment_condition(upsample(low), a, noise) and aug_level = a.")
        if not isinstance(cond, torch.Tensor) or cond.shape != x.shape:
            raise ValueError(f"cond must be the upsampled condition with x's shape {tuple(x.shape)}; got "
                             f"{tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__} "
                             "(upsample the low-resolution image with cascade.upsample(low, size)).")
        h = torch.cat([x, cond.to(x.dtype)], dim=1)                               # (B, 2, H, W)
        self._check_x(h)
        a = _levels(aug_level, x.shape[0], x.device, torch.float32)
        emb = self.time_mlp(self.time_embed(self._check_t(t, h)).to(x.dtype))     # (B, E)
        emb = emb + self.aug_mlp(self.aug_embed(1000.0 * a).to(x.dtype))          # + embedding of a
        return self._denoise(h, emb)


class Conditioned(nn.Module):
    """``m(x, t) = sr(x, t, cond, aug_level)``: a super-resolution model with its condition bound, so the
    package's L_simple and samplers (which call ``model(x_t, t)``) drive it unchanged."""

    def __init__(self, model: nn.Module, cond: torch.Tensor, aug_level):
        super().__init__()
        self.model, self.cond, self.aug_level = model, cond, aug_level

    def forward(self, x, t):
        return self.model(x, t, self.cond, self.aug_level)


def sr_training_pairs(train: bool = True, limit: int | None = None) -> torch.Tensor:
    """(N, 2, 32, 32): channel 0 the 32 px image, channel 1 its 16 px version upsampled (the condition).

    Both come from the same 28 px FashionMNIST originals by :func:`course_utils.data.load_fashion_mnist`, so
    the 16 px condition is made exactly as the base model's training images were.
    """
    from .data import load_fashion_mnist

    kw = {} if limit is None else {"limit": limit}
    hi = load_fashion_mnist(train=train, image_size=HIGH, **kw).images
    low = load_fashion_mnist(train=train, image_size=LOW, **kw).images
    return torch.cat([hi, upsample(low, HIGH)], dim=1)


def make_sr_loss(max_level: float, residual_scale: float | None = None):
    """``loss_fn(model, diffusion, x0, y, generator)`` for :func:`course_utils.train.train` on
    :func:`sr_training_pairs`: a ~ Uniform[0, max_level) per image, z_a = :func:`augment_condition`, then the
    package's L_simple of the 32 px image (or, with ``residual_scale`` s, of its scaled residual
    ``(x − z) / s``) with (z_a, a) bound to the model. Every draw comes from the trainer's generator, so the
    loss is reproducible for the trainer's seed."""
    if not is_number(max_level) or not 0.0 <= max_level < 1.0:
        raise ValueError(f"max_level must be a float in [0, 1); got {max_level!r}.")
    if not is_residual_scale(residual_scale):
        raise ValueError(f"residual_scale must be None or a positive float; got {residual_scale!r}.")

    def loss_fn(model, diffusion, x0, y, generator):
        if x0.shape[1] != 2:
            raise ValueError(f"the super-resolution loss trains on (B, 2, H, W) pairs from sr_training_pairs(); got "
                             f"{tuple(x0.shape)}.")
        hi, z = x0[:, :1], x0[:, 1:]
        a = torch.rand(x0.shape[0], device=x0.device, generator=generator) * max_level
        noise = torch.randn(z.shape, device=z.device, generator=generator, dtype=z.dtype)
        target = hi if residual_scale is None else (hi - z) / residual_scale
        return diffusion.loss_simple(Conditioned(model, augment_condition(z, a, noise), a), target, generator=generator)
    return loss_fn


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------
def _check_seed(seed) -> int:
    if not is_int(seed):
        raise ValueError(f"seed must be an int; got {seed!r}.")
    return seed


def super_resolve(model: SRUNet, diffusion: GaussianDiffusion, low: torch.Tensor, aug_level: float = LESSON_AUG,
                  num_steps: int = 20, seed: int = 0, generator: torch.Generator | None = None,
                  cond_noise: torch.Tensor | None = None, x_T: torch.Tensor | None = None,
                  progress: bool = False) -> torch.Tensor:
    """Stage 2, 16 → 32 px: upsample ``low``, augment it once to ``aug_level``, run DDIM (η = 0) of the SR model.

    The augmented condition z_a is drawn **once** and is the same at every denoising step; the model is told
    the level that was applied. A model with ``sr_config.residual_scale = s`` denoises the scaled residual
    instead (x̂0 not clipped: the residual is not bounded by [-1, 1]) and the result is ``upsample(low) + s·r``.

    Args:
        model: the super-resolution :class:`SRUNet`.
        diffusion: its schedule.
        low: (B, 1, h, w) images in [-1, 1] (real ones or a base model's samples), upsampled to 2h.
        aug_level: a in [0, 1), the same for every image.
        num_steps: DDIM steps.
        seed / generator: the draws of ``cond_noise`` then ``x_T`` where they are not given (generator wins).
        cond_noise: (B, 1, 2h, 2w) ε of the augmentation; x_T: (B, 1, 2h, 2w) the starting noise.
    Returns:
        (B, 1, 2h, 2w) in [-1, 1].
    """
    dev = next(model.parameters()).device
    low = check_image_batch(low, "low").to(dev)
    if generator is None:
        generator = torch.Generator(device=dev).manual_seed(_check_seed(seed))
    z = upsample(low, low.shape[-1] * 2)
    for name, v in (("cond_noise", cond_noise), ("x_T", x_T)):
        if v is not None and (not isinstance(v, torch.Tensor) or v.shape != z.shape):
            raise ValueError(f"{name} must be a tensor of shape {tuple(z.shape)} (one 32 px noise image per input); "
                             f"got {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}.")
    a = _levels(aug_level, z.shape[0], dev, torch.float32)
    eps_c = torch.randn(z.shape, generator=generator, device=dev) if cond_noise is None else cond_noise.to(dev)
    x_T = torch.randn(z.shape, generator=generator, device=dev) if x_T is None else x_T.to(dev)
    s = getattr(getattr(model, "sr_config", None), "residual_scale", None)
    with torch.no_grad():
        z_a = augment_condition(z, a, eps_c)
        x = diffusion.ddim_sample_loop(Conditioned(model, z_a, a), x_T=x_T, num_steps=num_steps,
                                       generator=generator, progress=progress, clip_x0=s is None)
        if s is not None:
            x = z + s * x
    return x.clamp(-1, 1)


_LOADED: dict = {}


def load_sr32(device: str | torch.device = "cpu", path=None) -> tuple[SRUNet, GaussianDiffusion, dict]:
    """The shipped ``sr32`` (sha256-checked, EMA weights, eval mode), its schedule and its record.

    The schedule clips x̂0 by default only for a model that denoises the image: a residual model's x̂0 is the
    scaled residual, which is not bounded by [-1, 1]."""
    from .checkpoints import load_shipped_module

    model, meta = load_shipped_module(SR32, "SRUNet", SRUNet, device, path)
    clip = model.sr_config.residual_scale is None
    diffusion = GaussianDiffusion(meta["betas"], clip_x0=clip).to(next(model.parameters()).device)
    return model, diffusion, meta


def _check_labels(labels) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.numel() == 0 or labels.is_floating_point() \
            or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError("labels must be a non-empty (B,) int64 tensor of FashionMNIST classes 0–9, e.g. "
                         f"torch.tensor([7, 7, 9]); got {getattr(labels, 'dtype', type(labels).__name__)} "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else ''}.")
    if bool(((labels < 0) | (labels > 9)).any()):
        raise ValueError(f"labels must be classes 0–9; got values from {int(labels.min())} to {int(labels.max())}.")
    return labels.long()


def _check_w_steps(w, num_steps) -> None:
    if not is_number(w):
        raise ValueError(f"w must be a finite float (0 = no guidance); got {w!r}.")
    if not is_int(num_steps) or not 1 <= num_steps <= 1000:
        raise ValueError(f"num_steps must be an int in [1, 1000] (DDIM steps); got {num_steps!r}.")


def base_sample(labels: torch.Tensor, w: float = LESSON_W, num_steps: int = 20,
                generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """Stage 1: (B, 1, 16, 16) samples of the shipped ``cfg16`` (DDIM, guidance ``w``, x̂0 clipped)."""
    from .pretrained import load_pretrained

    labels = _check_labels(labels)
    _check_w_steps(w, num_steps)
    key = ("cfg16", str(device))
    if key not in _LOADED:
        _LOADED[key] = load_pretrained("cfg16", device)
    model, diffusion, _ = _LOADED[key]
    dev = next(model.parameters()).device
    y = _check_labels(labels).to(dev)
    x = diffusion.ddim_sample_loop(model, (y.shape[0], 1, LOW, LOW), num_steps=num_steps, y=y, w=w,
                                   generator=generator, progress=False, clip_x0=True)
    return x.clamp(-1, 1)


def sample(labels: torch.Tensor, w: float = LESSON_W, seed: int = 0, aug_level: float = LESSON_AUG,
           num_steps: int = 20, device: str | torch.device = "cpu", return_base: bool = False):
    """Class-conditional 32 px images from the cascade: ``cfg16`` (guidance ``w``) → ``sr32``.

    Args:
        labels: (B,) int64 FashionMNIST classes 0–9.
        w: the base stage's guidance weight (the super-resolution stage sees no label).
        seed: every draw of both stages; the same seed gives the same images.
        aug_level: the condition's augmentation level a in [0, 1).
        num_steps: DDIM steps of each stage.
        return_base: also return the 16 px base samples.
    Returns:
        (B, 1, 32, 32) in [-1, 1] on the CPU (and the (B, 1, 16, 16) base samples if ``return_base``).
    """
    _check_w_steps(w, num_steps)
    _levels(aug_level, 1, "cpu", torch.float32)
    labels = _check_labels(labels)
    _check_seed(seed)
    key = (SR32, str(device))
    if key not in _LOADED:
        _LOADED[key] = load_sr32(device)
    sr, sr_diffusion, _ = _LOADED[key]
    dev = next(sr.parameters()).device
    g = torch.Generator(device=dev).manual_seed(_check_seed(seed))
    with torch.no_grad():
        low = base_sample(labels, w, num_steps, g, device)
    high = super_resolve(sr, sr_diffusion, low, aug_level, num_steps, generator=g).cpu()
    return (high, low.cpu()) if return_base else high


# ----------------------------------------------------------------------------------------------
# The shipped checkpoint (``sr32``)
# ----------------------------------------------------------------------------------------------
SR32_RECIPE = {"steps": 3500, "batch_size": 64, "lr": 2e-3, "warmup_steps": 100, "ema_decay": 0.995,
               "max_aug_level": 0.6, "seed": 0, "T": 1000, "residual": True}


def build_sr32(directory=None, progress: bool = True, evaluate_after: bool = True, steps: int | None = None):
    """Train ``sr32`` on the 60,000 training pairs (32 px image, its 16 px version); write it and its record.

    The record's evaluation (``evaluate_after``): for real 16 px test images super-resolved, the Fréchet
    distance and mean squared error to the real 32 px images at each level of :data:`AUG_SWEEP`.
    """
    import datetime
    import os
    import platform
    import time
    from pathlib import Path

    from .checkpoints import save_module_with_record
    from .pretrained import ASSETS, BUILD_COMMAND, _git_commit
    from .schedules import linear_betas
    from .train import TrainConfig, train
    from .utils import set_seed

    r = {**SR32_RECIPE, **({"steps": steps} if steps else {})}
    set_seed(r["seed"])
    pairs = sr_training_pairs(train=True)
    s = None
    if r.get("residual"):
        s = round(float((pairs[:, :1] - pairs[:, 1:]).std()), 4)      # the residual's std on the training pairs
    model = SRUNet(SRUNetConfig(residual_scale=s))
    diffusion = GaussianDiffusion(linear_betas(r["T"]))
    cfg = TrainConfig(steps=r["steps"], batch_size=r["batch_size"], lr=r["lr"], warmup_steps=r["warmup_steps"],
                      ema_decay=r["ema_decay"], ema_warmup=False, p_uncond=0.0, seed=r["seed"], progress=progress,
                      amp="off", log_every=50)                          # ema_warmup, fp32: as sr32 was made
    result = train(model, diffusion, pairs, cfg, loss_fn=make_sr_loss(r["max_aug_level"], s))
    ema = result.ema_model.cpu().eval()
    meta = {"name": SR32, "lessons": ["09"],
            "description": "16 → 32 px super-resolution U-Net (channels (32, 64, 64), input cat(x_t, augmented "
                           "upsampled condition), augmentation level embedded like t" +
                           (f"; denoises the residual (x − upsample(low)) / {s})" if s else ")"),
            "command": f"{BUILD_COMMAND} {SR32}" + (f" --steps {steps}" if steps else ""), "recipe": r,
            "model_config": ema.sr_config.to_dict(), "schedule": "linear",
            "parameters": sum(p.numel() for p in ema.parameters()),
            "wall_time_s": round(result.wall_time, 1), "images_per_second": round(result.images_per_second, 1),
            "final_loss_mean_last_100": round(sum(result.losses[-100:]) / len(result.losses[-100:]), 5),
            "threads": torch.get_num_threads(), "machine": f"{platform.machine()} {os.cpu_count()} logical cpus",
            "torch": torch.__version__, "git_commit": _git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if evaluate_after:
        t0 = time.perf_counter()
        meta["evaluation"] = evaluate_sr(ema, diffusion)
        meta["evaluation"]["wall_time_s"] = round(time.perf_counter() - t0, 1)
    meta["betas"] = diffusion.betas.tolist()
    path = Path(directory) / f"{SR32}.pt" if directory is not None else ASSETS / f"{SR32}.pt"
    return save_module_with_record(path, "SRUNet", ema, ema.sr_config.to_dict(), meta)


@torch.no_grad()
def evaluate_sr(model: SRUNet, diffusion: GaussianDiffusion, n: int = 500, num_steps: int = 20,
                levels=AUG_SWEEP, seed: int = 0) -> dict:
    """Super-resolve ``n`` real 16 px test images at each augmentation level: the mean squared error to their real
    32 px versions and the Fréchet distance to 1,000 real 32 px test images, in the sharp classifier's feature space
    (:func:`course_utils.sharper.load_sharp_classifier`, when it is shipped) and the course classifier's; bicubic
    upsampling as the baseline."""
    from .data import load_fashion_mnist
    from .metrics import frechet_distance
    from .sharper import SHARP_CLASSIFIER, load_sharp_classifier

    sharp = load_sharp_classifier() if SHARP_CLASSIFIER.exists() else None
    real = sr_training_pairs(train=False, limit=max(n, 1000))[:, :1]
    low = load_fashion_mnist(train=False, image_size=LOW, limit=n).images

    def scores(x):
        out = {"mse": round(float(F.mse_loss(x, real[:n])), 5),
               "frechet_distance_course_classifier": round(frechet_distance(real, x), 4)}
        if sharp is not None:
            out["frechet_distance"] = round(frechet_distance(real, x, sharp), 4)
        return out

    out = {"images": n, "sampler": f"DDIM-{num_steps}", "bicubic": scores(upsample(low)), "per_level": {}}
    for a in levels:
        out["per_level"][str(a)] = scores(super_resolve(model, diffusion, low, a, num_steps, seed=seed))
    return out


def reevaluate_sr32(path=None) -> dict:
    """Recompute the ``evaluation`` of the shipped ``sr32`` record (weights unchanged; the file is re-saved with
    the new record, so its sha256 changes)."""
    from pathlib import Path

    from .checkpoints import save_module_with_record
    from .pretrained import ASSETS

    path = Path(path) if path is not None else ASSETS / f"{SR32}.pt"
    model, diffusion, meta = load_sr32(path=path)
    meta = {**meta, "evaluation": evaluate_sr(model, diffusion)}
    save_module_with_record(path, "SRUNet", model, model.sr_config.to_dict(), meta)
    return meta["evaluation"]
