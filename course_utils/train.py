"""L_simple training (Algorithm 1 of Ho et al. 2020), GPU first and fine on a CPU.

* The data set stays resident on the device as one tensor; batches are drawn by indexing it
  (``TrainConfig(resident_data=False)``: the same batches through a torch ``DataLoader`` from host memory).
* AdamW (fused on CUDA), linear warm-up, gradient clipping, EMA weights (torch's ``AveragedModel``).
* On a GPU: autocast in bf16 where supported (else fp16 with a ``GradScaler``) and channels_last;
  optional ``torch.compile``. On a CPU bf16 autocast only where the CPU computes bf16 natively
  (:func:`resolve_amp_dtype`), fp32 elsewhere; :func:`describe_numerics` says which, in words.
* Seeded: the same config on the same machine gives the same weights.
* Class-conditional models get classifier-free-guidance training: each label is replaced by the null
  class with probability ``p_uncond`` (:func:`course_utils.models.drop_labels`).
* Checkpoints (:mod:`course_utils.checkpoints`, re-exported here) carry a sha256 sidecar and are loaded
  with ``torch.load(weights_only=True)`` only after the hash matches.
* Multi-GPU (or multi-process CPU) with ``torchrun``, through DistributedDataParallel::

      torchrun --nproc_per_node=2 -m course_utils.train --steps 2000 --out runs/ddpm.pt
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import load_checkpoint, save_checkpoint  # re-exported: checkpoints live there
from .data import TensorDataset
from .diffusion import GaussianDiffusion
from .models import UNet, UNetConfig, drop_labels
from .schedules import make_betas
from .utils import cpu_has_native_bf16, get_device, set_seed
from .validation import is_int, is_number

__all__ = ["TrainConfig", "TrainState", "TrainResult", "train", "save_checkpoint", "load_checkpoint",
           "resolve_amp_dtype", "describe_numerics", "remove_ema_start"]


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`."""

    steps: int = 2000                 # optimiser steps; ~2k already gives shapes on 16 px FashionMNIST
    batch_size: int = 128             # fits any laptop at 16–32 px
    lr: float = 1e-3                  # small U-Nets tolerate a high rate with warm-up
    weight_decay: float = 0.0         # DDPM uses none
    warmup_steps: int = 100           # linear warm-up avoids early blow-ups at lr=1e-3
    grad_clip: float | None = 1.0     # as in Ho et al.'s code
    ema_decay: float = 0.999          # EMA weights sample better than raw ones
    ema_warmup: bool = True           # decay at update n = min(ema_decay, (1 + n) / (10 + n)): early EMA follows
                                      # the raw weights instead of lagging ~1/(1 − β) steps behind (BENCHMARKS.md:
                                      # the 80 % class agreement in about half the steps); the shipped
                                      # checkpoints were trained without it and their recipes say so
    p_uncond: float | None = None     # label drop rate for CFG; None = the model config's class_dropout_prob
    seed: int = 0
    device: str = "auto"              # "auto" → cuda, mps, cpu
    amp: str = "auto"                 # "auto": bf16 (fp16 on old GPUs) on a GPU, bf16 on a CPU that computes it
                                      # natively (AVX512-BF16/AMX/Arm BF16), fp32 elsewhere; "bf16", "fp16", "off"
    channels_last: bool | None = None  # None = on for CUDA only
    compile: bool = False             # torch.compile the model (pays on long GPU runs)
    resident_data: bool = True        # the training set copied to the device once, each batch a gather there;
                                      # False: each batch drawn through a torch DataLoader from host memory and
                                      # copied over (the usual loop; the same batches, BENCHMARKS.md: what it costs)
    log_every: int = 25               # steps between callbacks / progress-bar updates
    progress: bool = True             # tqdm bar

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every"):
            v = getattr(self, name)
            if not is_int(v) or v <= 0:
                raise ValueError(f"TrainConfig.{name} must be a positive int; got {v!r}.")
        if not is_int(self.warmup_steps) or self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be an int ≥ 0; got {self.warmup_steps!r}.")
        if not (is_number(self.lr) and 0 < self.lr < 1):
            raise ValueError(f"TrainConfig.lr must be a float in (0, 1); got {self.lr!r}.")
        if not (0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1); got {self.ema_decay!r}.")
        for name in ("ema_warmup", "resident_data"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TrainConfig.{name} must be True or False; got {getattr(self, name)!r}.")
        if self.p_uncond is not None and not (0.0 <= self.p_uncond < 1.0):
            raise ValueError(f"TrainConfig.p_uncond must be in [0, 1) or None; got {self.p_uncond!r}.")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"TrainConfig.amp must be 'auto', 'bf16', 'fp16' or 'off'; got {self.amp!r}.")


@dataclass
class TrainState:
    """What a callback sees every ``log_every`` steps."""

    step: int
    loss: float                       # mean loss over the last log_every steps
    losses: list[float]               # every step's loss so far
    model: nn.Module
    ema_model: nn.Module
    elapsed: float                    # seconds since training started


@dataclass
class TrainResult:
    model: nn.Module                  # the raw weights
    ema_model: nn.Module              # the EMA weights (use these to sample)
    losses: list[float] = field(default_factory=list)
    wall_time: float = 0.0
    images_per_second: float = 0.0
    config: TrainConfig | None = None


def resolve_amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype :func:`train` uses for ``amp`` on ``device``; None means fp32 (no autocast).

    ``"auto"``: on a GPU bf16 where supported, else fp16 (with a gradient scaler); on a CPU bf16 only where
    it computes bf16 natively (:func:`course_utils.utils.cpu_has_native_bf16`: 1.4–1.65× faster training
    steps measured there), fp32 elsewhere (oneDNN emulates bf16 and it is slower than fp32); fp32 on mps.
    """
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def describe_numerics(device: str | torch.device = "auto", amp: str = "auto") -> str:
    """What :func:`train` computes in with ``amp`` on ``device``, in words, for a notebook's device line, e.g.
    ``"training in fp32 (this CPU has no native bf16)"`` or ``"training under bf16 autocast (native on this CPU)"``.
    Sampling and the lessons' exercises compute in fp32 everywhere."""
    device = get_device(device)
    dtype = resolve_amp_dtype(amp, device)
    if dtype is None:
        why = {"off": "amp='off'", "auto": "this CPU has no native bf16" if device.type == "cpu" else
               f"no autocast on {device.type}"}[amp]
        return f"training in fp32 ({why})"
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    if amp != "auto":
        why = f"amp={amp!r}"
    elif device.type == "cuda":
        why = "GPU" + ("" if dtype == torch.bfloat16 else ", no bf16 support: with a gradient scaler")
    else:
        why = "native on this CPU"
    return f"training under {name} autocast ({why}; weights and optimiser in fp32)"


def ema_decay_at(decay: float, update: int, warmup: bool) -> float:
    """The EMA decay β_n of the n-th average, n = ``update`` ≥ 1 (the first copy of the weights is update 0).

    Without warm-up the constant β = ``decay``; with it min(β, (1 + n) / (10 + n)), the warm-up of TensorFlow's
    ``ExponentialMovingAverage(num_updates=…)`` that diffusers' ``EMAModel`` also applies: the average of the
    first steps then forgets the barely trained initial weights within tens of steps (compare
    :func:`remove_ema_start`, which removes their share after training).
    """
    return min(decay, (1.0 + update) / (10.0 + update)) if warmup else decay


def ema_multi_avg_fn(decay: float, warmup: bool):
    """``AveragedModel``'s ``multi_avg_fn``: ema ← β_n · ema + (1 − β_n) · θ, β_n from :func:`ema_decay_at`.

    The caller sets ``fn.update[0] = n`` before the n-th ``update_parameters`` (no device sync per step); the
    function is called once per device and dtype group of the tensors, so it cannot count the updates itself.
    """
    update = [0]
    get_update = torch.optim.swa_utils.get_ema_multi_avg_fn

    def fn(ema_params, params, num_averaged):                     # torch's EMA step at this update's decay
        return get_update(ema_decay_at(decay, update[0], warmup))(ema_params, params, num_averaged)
    fn.update = update
    return fn


def _as_dataset(data) -> TensorDataset:
    if isinstance(data, TensorDataset):
        return data
    if isinstance(data, torch.Tensor):
        return TensorDataset(data, torch.zeros(data.shape[0], dtype=torch.long), ())
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return TensorDataset(data[0], data[1], ())
    raise ValueError("data must be a TensorDataset (course_utils.data.load_fashion_mnist), an images tensor "
                     "(N, C, H, W), or a pair (images, labels).")


def _ddp_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _epoch_batches(n: int, batch: int, generator: torch.Generator, device: torch.device):
    """Index batches (B,) on ``device``, forever: each epoch a fresh permutation of the ``n`` images (drawn on the
    host from ``generator``), cut into ``n // batch`` full batches (the remainder is left out)."""
    while True:
        perm = torch.randperm(n, generator=generator).to(device)
        for pos in range(0, n - batch + 1, batch):
            yield perm[pos:pos + batch]


def train(model: nn.Module, diffusion: GaussianDiffusion, data, config: TrainConfig | None = None,
          callbacks: Sequence[Callable[[TrainState], None]] = (),
          loss_fn: Callable[..., torch.Tensor] | None = None) -> TrainResult:
    """Train ``model`` to predict ε with L_simple (Algorithm 1).

    Args:
        model: ε_θ, called ``model(x_t, t)`` or, when it has ``null_class`` (conditional), ``model(x_t, t, y)``.
        diffusion: the schedule (moved to the training device).
        data: TensorDataset with images (N, C, H, W) in [-1, 1] and labels (N,), or a tensor of images.
        config: TrainConfig.
        callbacks: called with a :class:`TrainState` every ``config.log_every`` steps (plots, logging,
            evaluation); a callback that returns ``True`` stops training after that step (early stopping).
        loss_fn: ``loss_fn(model, diffusion, x0, y, generator) -> scalar tensor``; default
            ``diffusion.loss_simple`` (a lesson passes the learner's own L_simple here).
    Returns:
        TrainResult with the raw and EMA models, the per-step losses, the wall time and the throughput.
    """
    cfg = config or TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(cfg).__name__}.")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(model, diffusion, x0, y, generator); "
                        f"got {type(loss_fn).__name__}.")
    ds = _as_dataset(data)
    if ds.images.ndim != 4 or not ds.images.is_floating_point():
        raise ValueError(f"training images must be a float tensor (N, C, H, W) in [-1, 1]; got "
                         f"{ds.images.dtype} of shape {tuple(ds.images.shape)}.")
    lo, hi = float(ds.images.min()), float(ds.images.max())
    if lo >= 0.0 and hi <= 1.0:
        raise ValueError(f"training images look like they are in [0, 1] (min {lo:.2f}, max {hi:.2f}); "
                         "DDPM expects data scaled to [-1, 1]: use x * 2 - 1.")
    if cfg.batch_size > len(ds):
        raise ValueError(f"batch_size={cfg.batch_size} is larger than the data set ({len(ds)} images).")
    rank, world = _ddp_info()
    device = get_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    set_seed(cfg.seed)                        # identical init on every rank (DDP broadcasts rank 0 anyway)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1000 * rank)
    perm_gen = torch.Generator().manual_seed(cfg.seed + 1000 * rank + 1)

    conditional = isinstance(getattr(model, "null_class", None), int)
    p_uncond = cfg.p_uncond
    if p_uncond is None:
        p_uncond = float(getattr(getattr(model, "config", None), "class_dropout_prob", 0.1)) if conditional else 0.0

    channels_last = device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    diffusion = diffusion.to(device)
    n, B = ds.images.shape[0], cfg.batch_size
    batches = _epoch_batches(n, B, perm_gen, device if cfg.resident_data else torch.device("cpu"))
    if cfg.resident_data:
        images = ds.images.to(device=device, dtype=torch.float32).contiguous(memory_format=memory_format)
        labels = ds.labels.to(device)

        def next_batch():
            idx = next(batches)
            return images[idx], labels[idx]
    else:
        host = torch.utils.data.TensorDataset(ds.images.float(), ds.labels)
        feed = iter(torch.utils.data.DataLoader(host, batch_sampler=(idx.tolist() for idx in batches),
                                                pin_memory=device.type == "cuda"))

        def next_batch():
            x, y = next(feed)
            return (x.to(device, non_blocking=True).contiguous(memory_format=memory_format),
                    y.to(device, non_blocking=True))

    ema_fn = ema_multi_avg_fn(cfg.ema_decay, cfg.ema_warmup)
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_fn, use_buffers=True)
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)

    opt_kwargs = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **opt_kwargs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    amp_dtype = resolve_amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext

    losses: list[float] = []
    pending: list[torch.Tensor] = []
    model.train()
    start = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc="training", disable=not cfg.progress or rank != 0, leave=False)
    for step in range(1, cfg.steps + 1):
        x0, y_data = next_batch()
        y = None
        if conditional:
            y = drop_labels(y_data, p_uncond, model.null_class, generator=gen)
        with autocast():
            if loss_fn is None:
                loss = diffusion.loss_simple(train_model, x0, y=y, generator=gen)
            else:
                loss = loss_fn(train_model, diffusion, x0, y, gen)
                if not (isinstance(loss, torch.Tensor) and loss.ndim == 0):
                    raise ValueError(f"loss_fn must return a scalar tensor; got "
                                     f"{type(loss).__name__} of shape {tuple(getattr(loss, 'shape', ()))}.")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        ema_fn.update[0] = step - 1                               # step 1 copies the weights: update 0
        ema.update_parameters(model)
        pending.append(loss.detach())
        if step % cfg.log_every == 0 or step == cfg.steps:
            vals = torch.stack(pending).float().cpu().tolist()     # one device sync per log interval
            pending.clear()
            if not all(math.isfinite(v) for v in vals):
                raise FloatingPointError(f"the loss became {vals[-1]} at step {step}; lower TrainConfig.lr "
                                         f"(now {cfg.lr}) or keep grad_clip on.")
            losses.extend(vals)
            mean = sum(vals) / len(vals)
            bar.update(len(vals))
            bar.set_postfix(loss=f"{mean:.4f}")
            state = TrainState(step, mean, losses, model, ema.module, time.perf_counter() - start)
            stops = [cb(state) for cb in callbacks]           # every callback runs, then any may stop
            if any(s is True for s in stops):
                break
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    model.eval()
    ema.module.eval()
    return TrainResult(model, ema.module, losses, wall, step * B * world / wall, cfg)


@torch.no_grad()
def remove_ema_start(ema_model: nn.Module, first_model: nn.Module, decay: float, updates: int) -> nn.Module:
    """Take the first weights' share out of an EMA: the bias correction of an exponential average.

    For a constant decay (``TrainConfig(ema_warmup=False)``). With the warm-up, θ_1's share after n updates is
    at most ∏_{k=1}^{n−1} (1 + k)/(10 + k) = 10!·n!/(n + 9)! (below 10⁻³ from n = 7 on): nothing to remove.

    :func:`train`'s EMA (torch's ``AveragedModel``) copies the weights after step 1, θ_1, then averages:
    after ``updates`` steps ``ema = β^(n−1)·θ_1 + Σ_{s=2..n} (1 − β)·β^(n−s)·θ_s`` with β = ``decay``. When
    n is not much larger than 1 / (1 − β), θ_1 — barely trained — keeps a visible share (β = 0.999 after
    2400 steps: 9 %) and the samples look speckled. Subtracting it and renormalising,
    ``(ema − β^(n−1)·θ_1) / (1 − β^(n−1))``, leaves the same exponential weights over steps 2 … n, summing to 1
    (the correction Adam applies to its moment estimates, Kingma & Ba 2015, §3).

    Args:
        ema_model: the EMA model (changed in place and returned); first_model: the weights after step 1
            (``train`` with ``steps=1`` and the same config and seed reproduces them on the same machine).
        decay: β; updates: n, the number of EMA updates (the steps trained), >= 2.
    """
    if not is_number(decay) or not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be the EMA's β in (0, 1); got {decay!r}.")
    if not is_int(updates) or updates < 2:
        raise ValueError(f"updates must be an int >= 2 (one copy, then at least one average); got {updates!r}.")
    share = decay ** (updates - 1)
    first = dict(first_model.state_dict())
    for name, v in ema_model.state_dict().items():
        if v.is_floating_point():
            v.copy_((v - share * first[name].to(v)) / (1.0 - share))
    return ema_model


# ----------------------------------------------------------------------------------------------
# Command line (also the torchrun entry point)
# ----------------------------------------------------------------------------------------------
def _synthetic_data(n: int, size: int, seed: int) -> TensorDataset:
    """Blobs whose position encodes one of 10 labels: a data set that needs no files (tests, benchmarks)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    ang = labels.float() / 10 * 2 * math.pi
    cx, cy = 0.5 * torch.cos(ang), 0.5 * torch.sin(ang)
    blob = torch.exp(-((xx - cx.view(-1, 1, 1)) ** 2 + (yy - cy.view(-1, 1, 1)) ** 2) / 0.08)
    images = (blob * 2 - 1 + 0.05 * torch.randn(n, size, size, generator=g)).clamp(-1, 1).unsqueeze(1)
    return TensorDataset(images, labels, tuple(str(i) for i in range(10)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_utils.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion_mnist", choices=["fashion_mnist", "mnist", "synthetic"])
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--num-res-blocks", type=int, default=1)
    p.add_argument("--attention", action="store_true")
    p.add_argument("--num-classes", type=int, default=None, help="10 for class-conditional (CFG) training")
    p.add_argument("--schedule", default="linear", choices=["linear", "cosine"])
    p.add_argument("--T", type=int, default=1000)
    for f in ("steps", "batch_size", "warmup_steps", "seed", "log_every"):
        p.add_argument("--" + f.replace("_", "-"), type=int, default=getattr(TrainConfig, f))
    for f in ("lr", "ema_decay"):
        p.add_argument("--" + f.replace("_", "-"), type=float, default=getattr(TrainConfig, f))
    p.add_argument("--amp", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default=None, help="checkpoint path (.pt); a .sha256 and .json are written beside it")
    p.add_argument("--summary-dir", default=None,
                   help="also write each rank's JSON summary to DIR/summary_rank<R>.json (ranks print at once)")
    a = p.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and a.device in ("auto", "cuda") else "gloo"
        dist.init_process_group(backend)
    rank, world = _ddp_info()
    try:
        set_seed(a.seed)                                   # model initialisation is seeded too
        if a.data == "synthetic":
            data = _synthetic_data(a.limit or 2048, a.image_size, a.seed)
        else:
            from .data import load_dataset
            data = load_dataset(a.data, train=True, image_size=a.image_size, limit=a.limit)
        model = UNet(UNetConfig(channels=tuple(int(c) for c in a.channels.split(",")),
                                num_res_blocks=a.num_res_blocks, attention=a.attention,
                                num_classes=a.num_classes))
        diffusion = GaussianDiffusion(make_betas(a.schedule, a.T))
        cfg = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, warmup_steps=a.warmup_steps,
                          ema_decay=a.ema_decay, seed=a.seed, device=a.device, amp=a.amp, compile=a.compile,
                          log_every=a.log_every, progress=not a.no_progress)
        result = train(model, diffusion, data, cfg)
        digest = float(sum(p.detach().double().sum() for p in result.model.parameters()))
        summary = {"rank": rank, "world_size": world, "steps": a.steps, "final_loss": result.losses[-1],
                   "first_loss": result.losses[0], "wall_time_s": round(result.wall_time, 2),
                   "images_per_second": round(result.images_per_second, 1), "param_digest": digest,
                   "device": str(next(result.model.parameters()).device), "torch": torch.__version__}
        print(json.dumps(summary), flush=True)
        if a.summary_dir:
            Path(a.summary_dir).mkdir(parents=True, exist_ok=True)
            (Path(a.summary_dir) / f"summary_rank{rank}.json").write_text(json.dumps(summary))
        if a.out and rank == 0:
            meta = {"command": "python -m course_utils.train " + " ".join(argv if argv is not None else
                                                                          __import__("sys").argv[1:]),
                    "train_config": asdict(cfg), **summary}
            out = save_checkpoint(a.out, result.ema_model, diffusion, meta)
            Path(str(out) + ".json").write_text(json.dumps(meta, indent=2) + "\n")
            print(f"saved {out}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
