"""Latent diffusion (lesson 09): diffuse in a small autoencoder's latent space, decode at the end.

Rombach et al. 2022 ("High-Resolution Image Synthesis with Latent Diffusion Models"): most of an image's bits
are imperceptible detail, so first train an autoencoder that keeps what matters, then run the (costly) diffusion
model on its much smaller latent. Here:

* :class:`Autoencoder` — 32 × 32 × 1 images ↔ 4 × 8 × 8 latents (a quarter of the numbers), a plain
  (deterministic) convolutional autoencoder trained with the mean squared error.
* :func:`scale_factor` — the latents are multiplied by ``1 / std`` so that the diffusion model sees unit
  variance, as its schedule assumes (Rombach et al. 2022, §4.3.2 and Appendix G: the "scale factor",
  0.18215 for Stable Diffusion's autoencoder).
* :func:`encode_dataset` — every training image → its scaled latent, once; the DDPM of lessons 04–07
  (the same :class:`course_utils.models.UNet`, trainer and classifier-free guidance) then trains on them.
* :func:`sample` — DDIM with guidance in latent space → divide by the scale factor → decode.
* :func:`build_ae32` / :func:`build_ldm32` — ``python -m course_utils.pretrained build ae32 ldm32``.

Conventions (STYLE.md): images (B, 1, 32, 32) in [-1, 1]; latents (B, 4, 8, 8); 0-indexed timesteps.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import save_module_with_record
from .diffusion import GaussianDiffusion
from .models import UNet, UNetConfig
from .validation import check_image_batch, is_int, is_number

__all__ = ["AutoencoderConfig", "Autoencoder", "scale_factor", "encode_dataset", "load_autoencoder",
           "load_latent", "sample_latents", "decode_latents", "sample", "build_ae32", "build_ldm32", "evaluate_autoencoder",
           "AE32", "LDM32", "AE32_RECIPE", "LDM32_RECIPE", "LESSON_W", "SIZE"]

AE32, LDM32 = "ae32", "ldm32"
SIZE = 32
LESSON_W = 2.0


@dataclass(frozen=True)
class AutoencoderConfig:
    """Widths of the autoencoder: ``channels`` per resolution (32, 16, 8 px) and the latent's channels."""

    channels: tuple[int, int, int] = (16, 32, 64)
    latent_channels: int = 4
    groups: int = 8

    def __post_init__(self):
        if not is_int(self.groups) or self.groups < 1:
            raise ValueError(f"AutoencoderConfig.groups must be a positive int (GroupNorm groups); got {self.groups!r}.")
        ch = tuple(self.channels)
        object.__setattr__(self, "channels", ch)
        if len(ch) != 3 or not all(is_int(c) and c > 0 and c % self.groups == 0 for c in ch):
            raise ValueError(f"AutoencoderConfig.channels must be three positive ints divisible by groups={self.groups} "
                             f"(32, 16 and 8 px); got {self.channels!r}.")
        if not is_int(self.latent_channels) or self.latent_channels < 1:
            raise ValueError(f"AutoencoderConfig.latent_channels must be a positive int; got {self.latent_channels!r}.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(d["channels"])
        return d


def _conv(c_in: int, c_out: int, groups: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.GELU()]


class Autoencoder(nn.Module):
    """(B, 1, 32, 32) ↔ (B, latent_channels, 8, 8).

    Encoder: a 3×3 conv at 32 px, then a stride-2 conv and a 3×3 conv at 16 and at 8 px, a 1×1 conv to the
    latent. Decoder: the mirror image, nearest-neighbour upsampling + 3×3 convs (one 3×3 conv at 32 px keeps the
    CPU cost low: the 32 px layers are most of it).
    """

    def __init__(self, config: AutoencoderConfig | dict | None = None):
        super().__init__()
        cfg = AutoencoderConfig() if config is None else (
            AutoencoderConfig(**config) if isinstance(config, dict) else config)
        if not isinstance(cfg, AutoencoderConfig):
            raise ValueError(f"config must be an AutoencoderConfig or its to_dict(); got {type(cfg).__name__}.")
        self.config = cfg
        (c0, c1, c2), L, G = cfg.channels, cfg.latent_channels, cfg.groups
        self.encoder = nn.Sequential(
            *_conv(1, c0, G),                                                           # 32 px
            nn.Conv2d(c0, c1, 3, stride=2, padding=1), *_conv(c1, c1, G),               # 16 px
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), *_conv(c2, c2, G),               # 8 px
            nn.Conv2d(c2, L, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(L, c2, 3, padding=1), nn.GELU(), *_conv(c2, c2, G),               # 8 px
            nn.Upsample(scale_factor=2, mode="nearest"), *_conv(c2, c1, G), *_conv(c1, c1, G),   # 16 px
            nn.Upsample(scale_factor=2, mode="nearest"), *_conv(c1, c0, G),             # 32 px
            nn.Conv2d(c0, 1, 3, padding=1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 32, 32) images in [-1, 1] → (B, latent_channels, 8, 8) latents (unscaled)."""
        x = check_image_batch(x, "x")
        if tuple(x.shape[-2:]) != (SIZE, SIZE):
            raise ValueError(f"the autoencoder encodes 32 × 32 images; got {tuple(x.shape[-2:])} (load the data with "
                             "load_fashion_mnist(image_size=32)).")
        return self.encoder(x.to(next(self.parameters()).dtype))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_channels, 8, 8) latents (unscaled) → (B, 1, 32, 32) images, clamped to [-1, 1]."""
        L = self.config.latent_channels
        if not isinstance(z, torch.Tensor) or z.ndim != 4 or z.shape[1] != L or tuple(z.shape[-2:]) != (8, 8):
            raise ValueError(f"z must be a (B, {L}, 8, 8) latent; got "
                             f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__} (divide the "
                             "diffusion model's latents by the scale factor before decoding).")
        return self.decoder(z).clamp(-1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction decode(encode(x)), (B, 1, 32, 32); training uses the raw, unclamped output."""
        return self.decoder(self.encode(x))


def scale_factor(latents: torch.Tensor) -> float:
    """``1 / std`` over every entry of ``latents`` (B, C, h, w): the factor that gives the diffusion model
    unit-variance data (Rombach et al. 2022 compute it from a batch of encodings)."""
    if not isinstance(latents, torch.Tensor) or latents.ndim != 4 or latents.numel() < 2:
        raise ValueError(f"latents must be a (B, C, h, w) tensor of encodings; got "
                         f"{tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__}.")
    std = float(latents.float().std())
    if not std > 0:
        raise ValueError("the latents have zero spread: the autoencoder is untrained or the batch is constant.")
    return 1.0 / std


@torch.no_grad()
def encode_dataset(ae: Autoencoder, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Encode (N, 1, 32, 32) images in batches → (N, C, 8, 8) unscaled latents on the CPU."""
    ae.eval()
    return torch.cat([ae.encode(images[i:i + batch_size]).cpu() for i in range(0, images.shape[0], batch_size)])


# ----------------------------------------------------------------------------------------------
# Loading and sampling
# ----------------------------------------------------------------------------------------------
_LOADED: dict = {}


def load_autoencoder(device: str | torch.device = "cpu", path=None) -> tuple[Autoencoder, dict]:
    """The shipped ``ae32`` (sha256-checked, eval mode) and its record."""
    from .checkpoints import load_shipped_module

    return load_shipped_module(AE32, "Autoencoder", Autoencoder, device, path)


def load_latent(device: str | torch.device = "cpu", path=None):
    """The shipped latent diffusion model: (autoencoder, latent U-Net, its GaussianDiffusion, scale factor, record)."""
    from .checkpoints import load_shipped_module

    model, meta = load_shipped_module(LDM32, "LatentUNet", UNet, device, path)
    dev = next(model.parameters()).device
    diffusion = GaussianDiffusion(meta["betas"], clip_x0=False).to(dev)
    ae, _ = load_autoencoder(dev)
    return ae, model, diffusion, float(meta["scale_factor"]), meta


def sample_latents(model: UNet, diffusion: GaussianDiffusion, labels: torch.Tensor, w: float, num_steps: int,
                   generator: torch.Generator | None = None, latent_shape=(4, 8, 8),
                   x_T: torch.Tensor | None = None) -> torch.Tensor:
    """DDIM (η = 0) with guidance ``w`` in latent space → (B, *latent_shape) *scaled* latents.

    x̂0 is not clipped: latents have no [-1, 1] range (clipping them to it would cut off most of the
    unit-variance distribution). ``x_T``: start from this (B, *latent_shape) noise instead of drawing it.
    """
    from .cascade import _check_labels

    dev = next(model.parameters()).device
    labels = _check_labels(labels)
    shape = (labels.shape[0], *latent_shape)
    if x_T is not None and (not isinstance(x_T, torch.Tensor) or tuple(x_T.shape) != shape):
        raise ValueError(f"x_T must be a tensor of shape {shape}; got "
                         f"{tuple(x_T.shape) if isinstance(x_T, torch.Tensor) else type(x_T).__name__}.")
    with torch.no_grad():
        return diffusion.ddim_sample_loop(model, None if x_T is not None else shape, num_steps=num_steps,
                                          y=labels.to(dev), w=w, generator=generator, progress=False, clip_x0=False,
                                          x_T=None if x_T is None else x_T.to(dev))


def decode_latents(ae: Autoencoder, z: torch.Tensor, scale: float) -> torch.Tensor:
    """The diffusion model's scaled latents back to images: ``ae.decode(z / scale)`` (B, 1, 32, 32) in [-1, 1]."""
    if not is_number(scale) or scale <= 0:
        raise ValueError(f"scale must be the positive scale factor the latents were multiplied by; got {scale!r}.")
    return ae.decode(z / scale)


def sample(labels: torch.Tensor, w: float = LESSON_W, seed: int = 0, num_steps: int = 20,
           device: str | torch.device = "cpu") -> torch.Tensor:
    """Class-conditional 32 px images from the shipped latent diffusion model.

    Args:
        labels: (B,) int64 FashionMNIST classes 0–9. w: guidance weight. seed: the starting noise.
        num_steps: DDIM steps in latent space.
    Returns:
        (B, 1, 32, 32) in [-1, 1] on the CPU: decode(latents / scale factor).
    """
    from .cascade import _check_labels, _check_seed

    if not is_number(w):
        raise ValueError(f"w must be a finite float (0 = no guidance); got {w!r}.")
    if not is_int(num_steps) or not 1 <= num_steps <= 1000:
        raise ValueError(f"num_steps must be an int in [1, 1000] (DDIM steps); got {num_steps!r}.")
    y = _check_labels(labels)
    _check_seed(seed)
    key = str(device)
    if key not in _LOADED:
        _LOADED[key] = load_latent(device)
    ae, model, diffusion, scale, _ = _LOADED[key]
    dev = next(model.parameters()).device
    g = torch.Generator(device=dev).manual_seed(_check_seed(seed))
    z = sample_latents(model, diffusion, y, float(w), num_steps, g, latent_shape=(ae.config.latent_channels, 8, 8))
    return decode_latents(ae, z, scale).cpu()


# ----------------------------------------------------------------------------------------------
# The shipped checkpoints (``ae32``, ``ldm32``)
# ----------------------------------------------------------------------------------------------
AE32_RECIPE = {"steps": 2000, "batch_size": 128, "lr": 2e-3, "warmup_steps": 100, "seed": 0}
LDM32_RECIPE = {"steps": 3000, "batch_size": 128, "lr": 2e-3, "warmup_steps": 100, "ema_decay": 0.995,
                "p_uncond": 0.1, "seed": 0, "T": 1000, "channels": [64, 128]}


def _record_base(name: str, description: str, command_steps: int | None) -> dict:
    import datetime
    import os
    import platform

    from .pretrained import BUILD_COMMAND, _git_commit

    return {"name": name, "lessons": ["09"], "description": description,
            "command": f"{BUILD_COMMAND} {name}" + (f" --steps {command_steps}" if command_steps else ""),
            "threads": torch.get_num_threads(), "machine": f"{platform.machine()} {os.cpu_count()} logical cpus",
            "torch": torch.__version__, "git_commit": _git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


@torch.no_grad()
def evaluate_autoencoder(ae: Autoencoder, n: int = 1000) -> dict:
    """Reconstruction of ``n`` test images: mean squared error and the Fréchet distance of the reconstructions."""
    from .data import load_fashion_mnist
    from .metrics import frechet_distance

    real = load_fashion_mnist(train=False, image_size=SIZE, limit=n).images
    rec = ae.decode(encode_dataset(ae, real))
    return {"test_images": n, "mse": round(float(F.mse_loss(rec, real)), 5),
            "frechet_distance_reconstructions": round(frechet_distance(real, rec), 4)}


def build_ae32(directory=None, progress: bool = True, evaluate_after: bool = True, steps: int | None = None):
    """Train the autoencoder on the 60,000 training images at 32 px (MSE, AdamW, warm-up); write ``ae32``."""
    import time
    from pathlib import Path

    from tqdm.auto import tqdm

    from .data import iterate_batches, load_fashion_mnist
    from .pretrained import ASSETS
    from .utils import set_seed

    r = {**AE32_RECIPE, **({"steps": steps} if steps else {})}
    set_seed(r["seed"])
    data = load_fashion_mnist(train=True, image_size=SIZE)
    ae = Autoencoder()
    opt = torch.optim.AdamW(ae.parameters(), lr=r["lr"], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / r["warmup_steps"]))
    batches = iterate_batches(data, r["batch_size"], generator=torch.Generator().manual_seed(r["seed"]))
    losses = []
    t0 = time.perf_counter()
    ae.train()
    for _ in tqdm(range(r["steps"]), desc="autoencoder", disable=not progress, leave=False):
        x, _ = next(batches)
        loss = F.mse_loss(ae(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    wall = time.perf_counter() - t0
    ae.eval()
    meta = {**_record_base(AE32, "32 × 32 × 1 ↔ 4 × 8 × 8 convolutional autoencoder (plain, MSE) for latent "
                                 "diffusion", steps),
            "recipe": r, "model_config": ae.config.to_dict(), "parameters": sum(p.numel() for p in ae.parameters()),
            "wall_time_s": round(wall, 1), "final_loss_mean_last_100": round(sum(losses[-100:]) / 100, 5)}
    if evaluate_after:
        meta["evaluation"] = evaluate_autoencoder(ae)
    path = Path(directory) / f"{AE32}.pt" if directory is not None else ASSETS / f"{AE32}.pt"
    return save_module_with_record(path, "Autoencoder", ae, ae.config.to_dict(), meta)


def build_ldm32(directory=None, progress: bool = True, evaluate_after: bool = True, steps: int | None = None):
    """Encode the training images with the shipped ``ae32``, scale them, train the class-conditional latent DDPM."""
    from pathlib import Path

    from .checkpoints import sidecar_path
    from .data import load_fashion_mnist
    from .pretrained import ASSETS
    from .schedules import linear_betas
    from .train import TrainConfig, train
    from .utils import set_seed

    r = {**LDM32_RECIPE, **({"steps": steps} if steps else {})}
    set_seed(r["seed"])
    ae_dir = Path(directory) if directory is not None and (Path(directory) / f"{AE32}.pt").exists() else ASSETS
    ae, _ = load_autoencoder("cpu", ae_dir / f"{AE32}.pt")
    data = load_fashion_mnist(train=True, image_size=SIZE)
    z = encode_dataset(ae, data.images)
    scale = scale_factor(z)
    latents = (z * scale, data.labels)
    model = UNet(UNetConfig(in_channels=ae.config.latent_channels, channels=tuple(r["channels"]), num_classes=10))
    diffusion = GaussianDiffusion(linear_betas(r["T"]))
    cfg = TrainConfig(steps=r["steps"], batch_size=r["batch_size"], lr=r["lr"], warmup_steps=r["warmup_steps"],
                      ema_decay=r["ema_decay"], ema_warmup=False, p_uncond=r["p_uncond"], seed=r["seed"],
                      amp="off", progress=progress, log_every=50)       # ema_warmup, fp32: as ldm32 was made
    result = train(model, diffusion, latents, cfg)
    ema = result.ema_model.cpu().eval()
    meta = {**_record_base(LDM32, "class-conditional U-Net DDPM on ae32's scaled 4 × 8 × 8 latents (learned null "
                                  "class, classifier-free guidance)", steps),
            "recipe": r, "model_config": ema.config.to_dict(), "parameters": sum(p.numel() for p in ema.parameters()),
            "scale_factor": scale, "latent_std_before_scaling": round(1.0 / scale, 5),
            "ae32_sha256": sidecar_path(ae_dir / f"{AE32}.pt").read_text().split()[0], "schedule": "linear",
            "wall_time_s": round(result.wall_time, 1), "images_per_second": round(result.images_per_second, 1),
            "final_loss_mean_last_100": round(sum(result.losses[-100:]) / len(result.losses[-100:]), 5),
            "betas": diffusion.betas.tolist()}
    path = Path(directory) / f"{LDM32}.pt" if directory is not None else ASSETS / f"{LDM32}.pt"
    return save_module_with_record(path, "LatentUNet", ema, ema.config.to_dict(), meta)
