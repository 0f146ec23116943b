"""What users would pick instead of ``course_utils.train``: the two baselines of the benchmarks.

* :class:`DiffusersLoop` — ``diffusers``' ``UNet2DModel`` + ``DDPMScheduler`` trained the way the diffusers
  documentation's "Train a diffusion model" tutorial does: a torchvision-style ``DataLoader`` with
  per-item transforms (Resize, ToTensor, Normalize to [-1, 1]), ``noise_scheduler.add_noise``,
  ``F.mse_loss`` on ε, AdamW at lr 1e-4 with ``get_cosine_schedule_with_warmup`` (500 warm-up steps),
  gradient clipping at 1.0, fp16 mixed precision on a GPU (the tutorial's ``mixed_precision="fp16"``),
  fp32 on a CPU. Labels are replaced by a null class with probability 0.1 (classifier-free guidance
  training, which the tutorial's unconditional loop lacks) and passed as ``class_labels``.
* :class:`NaiveLoop` — the course's own U-Net in a plain eager fp32 loop over the same ``DataLoader``
  (no resident data, no autocast, no channels_last, no EMA): the loop a learner writes first.

Both expose ``step()`` (one optimiser step on the next batch) and ``eps_model`` (an ε-predictor called
``model(x_t, t, y)`` with a ``null_class``, so the course's samplers and guidance can sample from it).
"""
from __future__ import annotations

import dataclasses
import itertools

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models import UNet, drop_labels

__all__ = ["our_unet", "fashion_mnist_loader", "diffusers_unet", "DiffusersLoop", "NaiveLoop", "DiffusersEps",
           "matched_diffusers_widths"]

NULL_CLASS = 10


def our_unet(width: float = 1.0, **overrides) -> UNet:
    """The course's class-conditional U-Net the benchmarks train: the shipped ``cfg16`` recipe's model.

    ``width`` scales every level's channels (rounded to a multiple of the recipe's GroupNorm groups; the scaling
    table's width column); ``overrides`` replace :class:`~course_utils.models.UNetConfig` fields (the
    time-to-quality benchmark's placement contenders: ``channels=(16, 32, 64)``, ``attention=True``). No
    arguments: the recipe itself.
    """
    from course_utils.pretrained import RECIPES

    cfg = RECIPES["cfg16"].model
    if not width > 0:
        raise ValueError(f"width must be a positive channel multiplier (1.0 is the cfg16 recipe); got {width!r}.")
    if width != 1.0:
        cfg = dataclasses.replace(cfg, channels=tuple(max(1, int(round(c * width / cfg.norm_groups))) * cfg.norm_groups
                                                      for c in cfg.channels))
    return UNet(dataclasses.replace(cfg, **overrides) if overrides else cfg)


def fashion_mnist_loader(batch_size: int, image_size: int = 16, limit: int | None = None, seed: int = 0,
                         num_workers: int = 0):
    """torchvision's FashionMNIST with per-item transforms in a shuffling ``DataLoader`` (as the tutorial)."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from course_utils.data import prepare

    tf = transforms.Compose([transforms.Resize(image_size), transforms.ToTensor(),
                             transforms.Normalize([0.5], [0.5])])
    ds = datasets.FashionMNIST(str(prepare(download=False)), train=True, transform=tf, download=False)
    if limit is not None:
        ds = Subset(ds, range(limit))
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, generator=g,
                      num_workers=num_workers)


def _endless(loader):
    while True:
        yield from loader


def diffusers_unet(widths: tuple[int, int], image_size: int = 16, num_classes: int | None = 10):
    """A two-level ``UNet2DModel`` (ResNet blocks, no attention, like the course's ``UNet(channels=(32, 64))``)."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=image_size, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=tuple(widths), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8, add_attention=False,
                       num_class_embeds=None if num_classes is None else num_classes + 1)


def matched_diffusers_widths(target_params: int, image_size: int = 16, num_classes: int | None = 10
                             ) -> tuple[tuple[int, int], int]:
    """The (c1, c2) widths (multiples of 8) whose ``UNet2DModel`` has the parameter count closest to the target."""
    best = None
    for c1, c2 in itertools.product(range(16, 49, 8), range(32, 97, 8)):
        if c2 < c1:
            continue
        n = sum(p.numel() for p in diffusers_unet((c1, c2), image_size, num_classes).parameters())
        if best is None or abs(n - target_params) < abs(best[1] - target_params):
            best = ((c1, c2), n)
    return best


class DiffusersEps(nn.Module):
    """Wraps a ``UNet2DModel`` as the course's ε-model interface ``model(x, t[, y])`` with a ``null_class``."""

    def __init__(self, unet: nn.Module, null_class: int | None = NULL_CLASS):
        super().__init__()
        self.unet = unet
        self.null_class = null_class

    def forward(self, x, t, y=None):
        if y is None and self.null_class is not None:
            y = torch.full((x.shape[0],), self.null_class, device=x.device, dtype=torch.long)
        return self.unet(x, t, class_labels=y, return_dict=False)[0]


class _LoaderLoop:
    def __init__(self, model: nn.Module, loader, device: torch.device, p_uncond: float, seed: int):
        self.model, self.device, self.p_uncond = model.to(device), device, p_uncond
        self.batches = _endless(loader)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.losses: list[float] = []
        self._pending: list[torch.Tensor] = []

    def _labels(self, y: torch.Tensor) -> torch.Tensor:
        return drop_labels(y.to(self.device), self.p_uncond, NULL_CLASS, generator=self.gen)

    def flush_losses(self) -> list[float]:
        if self._pending:
            self.losses.extend(torch.stack(self._pending).float().cpu().tolist())
            self._pending.clear()
        return self.losses


class DiffusersLoop(_LoaderLoop):
    """One optimiser step per :meth:`step` of the diffusers tutorial's training loop (see the module doc)."""

    def __init__(self, widths: tuple[int, int], loader, device: torch.device, total_steps: int,
                 lr: float = 1e-4, warmup_steps: int = 500, p_uncond: float = 0.1, seed: int = 0,
                 image_size: int = 16, amp: str = "tutorial"):
        from diffusers import DDPMScheduler
        from diffusers.optimization import get_cosine_schedule_with_warmup

        torch.manual_seed(seed)
        super().__init__(diffusers_unet(widths, image_size), loader, device, p_uncond, seed)
        self.eps_model = DiffusersEps(self.model)
        self.noise_scheduler = DDPMScheduler(num_train_timesteps=1000)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.lr_scheduler = get_cosine_schedule_with_warmup(self.opt, num_warmup_steps=warmup_steps,
                                                            num_training_steps=total_steps)
        if amp not in ("tutorial", "bf16", "off"):
            raise ValueError(f"amp must be 'tutorial' (fp16 on a GPU, fp32 on a CPU), 'bf16' or 'off'; got {amp!r}.")
        self.fp16 = amp == "tutorial" and device.type == "cuda"     # the tutorial's mixed_precision="fp16"
        self.autocast_dtype = torch.float16 if self.fp16 else (torch.bfloat16 if amp == "bf16" else None)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.fp16)
        self.model.train()

    def step(self) -> None:
        clean, y = next(self.batches)
        clean = clean.to(self.device)
        noise = torch.randn(clean.shape, device=self.device, generator=self.gen)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (clean.shape[0],),
                                  device=self.device, generator=self.gen).long()
        noisy = self.noise_scheduler.add_noise(clean, noise, timesteps)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            pred = self.model(noisy, timesteps, class_labels=self._labels(y), return_dict=False)[0]
            loss = F.mse_loss(pred.float(), noise)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.lr_scheduler.step()
        self.opt.zero_grad()
        self._pending.append(loss.detach())


class NaiveLoop(_LoaderLoop):
    """The course's U-Net, plain eager fp32, the same DataLoader, AdamW at the course's learning rate."""

    def __init__(self, model: nn.Module, diffusion, loader, device: torch.device, lr: float = 2e-3,
                 p_uncond: float = 0.1, seed: int = 0):
        super().__init__(model, loader, device, p_uncond, seed)
        self.eps_model = self.model
        self.diffusion = diffusion.to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)
        self.model.train()

    def step(self) -> None:
        x0, y = next(self.batches)
        loss = self.diffusion.loss_simple(self.model, x0.to(self.device), y=self._labels(y), generator=self.gen)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self._pending.append(loss.detach())
