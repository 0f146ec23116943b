"""Sampling: DDPM-1000 (Algorithm 2) vs DDIM at 10/20/50/100 steps — time per 1000 images and quality.

A table in the spirit of Song et al. 2021, Table 1, for 16 px FashionMNIST: the shipped unconditional
checkpoint ``ddpm16`` (lesson 04) samples ``--samples`` images per setting from a fixed seed, with x̂0
clipped to [-1, 1] as the reference samplers do; quality is the Fréchet distance between the shipped
classifier's 128-d features of the samples and of the 10 000 test images (lower is better; with a few
hundred samples the estimate is biased upwards, so compare rows, not papers). η = 0 is deterministic
DDIM; η = 1 puts back DDPM's noise on the same strided steps; the last row is full DDPM with σ² = β̃.

    python -m bench.sampling                     # 1000 samples per setting
    python -m bench.sampling --samples 64 --steps 10,20 --ddpm-samples 8 --ddpm-steps 10   # a smoke test
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from course_utils.data import load_fashion_mnist
from course_utils.metrics import frechet_distance
from course_utils.pretrained import load_pretrained

from course_utils.utils import get_device

from .common import count_flops, machine_info, markdown_table, sync, write_result


@torch.inference_mode()
def _sample(model, diffusion, n, batch, seed, device, ddpm: bool, steps: int = 50, eta: float = 0.0,
            w: float | None = None):
    """``n`` samples in batches; returns (samples on CPU, seconds spent sampling). ``ddpm``: Algorithm 2 on
    ``steps`` timesteps (all T: the ordinary sampler; fewer: a respaced chain, for smoke runs). ``w`` (a class-conditional
    model only): classifier-free guidance with labels 0, 1, …, 9, 0, … (the conditional and null passes share
    one batch)."""
    g = torch.Generator(device=device).manual_seed(seed)
    out, seconds = [], 0.0
    for start in range(0, n, batch):
        b = min(batch, n - start)
        shape = (b, model.config.in_channels, 16, 16)
        guide = {} if w is None else {"y": torch.arange(start, start + b, device=device) % 10, "w": w}
        sync(device)
        t0 = time.perf_counter()
        if ddpm:
            x = diffusion.p_sample_loop(model, shape, num_steps=steps, generator=g, progress=False, **guide)
        else:
            x = diffusion.ddim_sample_loop(model, shape, num_steps=steps, eta=eta, generator=g, progress=False,
                                           **guide)
        sync(device)
        seconds += time.perf_counter() - t0
        out.append(x.float().cpu())
    return torch.cat(out), seconds


def run(samples: int = 1000, ddpm_samples: int | None = None, steps=(10, 20, 50, 100), etas=(0.0, 1.0),
        batch: int = 500, seed: int = 0, device_name: str = "auto", threads: int | None = None,
        checkpoint: str = "ddpm16", w: float = 2.0, real_limit: int | None = None,
        ddpm_steps: int | None = None) -> dict:
    """``checkpoint``: "ddpm16" (unconditional) or "cfg16" (class-conditional, sampled with guidance ``w``);
    ``real_limit``: the first N test images as the Fréchet distance's reference (default all 10 000);
    ``ddpm_steps``: the DDPM row's steps (default all T; fewer make a respaced chain: smoke runs only)."""
    device = get_device(device_name)
    if threads:
        torch.set_num_threads(threads)
    model, diffusion, meta = load_pretrained(checkpoint, device=device)
    conditional = isinstance(getattr(model, "null_class", None), int)
    guidance = w if conditional else None
    real = load_fashion_mnist(train=False, image_size=16, limit=real_limit).images
    x = torch.randn(2, 1, 16, 16, device=device)
    t = torch.zeros(2, dtype=torch.long, device=device)
    fwd_flops = count_flops(lambda: model(x, t, torch.zeros_like(t)) if conditional else model(x, t)) // 2
    rows = []

    def add(name, eta, n_steps, n, imgs, secs):
        fd = frechet_distance(real, imgs)
        per_1000 = secs / n * 1000
        rows.append({"sampler": name, "eta": eta, "steps": n_steps, "samples": n, "seconds": round(secs, 2),
                     "seconds_per_1000_images": round(per_1000, 2), "frechet_distance": round(fd, 3),
                     "images_per_s": round(n / secs, 2)})
        print(f"  {name:<6} η={eta:<4} S={n_steps:<5} {n} samples in {secs:7.1f} s → {per_1000:8.1f} s/1000, "
              f"FD {fd:.2f}", flush=True)

    for eta in etas:
        for s in steps:
            imgs, secs = _sample(model, diffusion, samples, batch, seed, device, ddpm=False, steps=s, eta=eta,
                                 w=guidance)
            add("DDIM", eta, s, samples, imgs, secs)
    n = ddpm_samples or samples
    n_ddpm = ddpm_steps or diffusion.num_timesteps
    imgs, secs = _sample(model, diffusion, n, batch, seed, device, ddpm=True, steps=n_ddpm, w=guidance)
    add("DDPM", 1.0, n_ddpm, n, imgs, secs)
    extra = {} if guidance is None else {"guidance_w": guidance,
                                         "network_passes_per_step": 2}   # conditional + null, one batch
    return {"benchmark": "sampling", "machine": machine_info(device), "checkpoint": checkpoint, **extra,
            "checkpoint_command": meta.get("command"), "batch": batch, "seed": seed, "clip_x0": True,
            "real_images": int(real.shape[0]), "gflop_per_forward_image": round(fwd_flops / 1e9, 4),
            "rows": rows}


def table(result: dict) -> str:
    rows = [[r["sampler"] + (" (Algorithm 2, σ² = β̃)" if r["sampler"] == "DDPM" else ""), r["eta"], r["steps"],
             r["samples"], r["seconds_per_1000_images"], r["frechet_distance"]] for r in result["rows"]]
    return markdown_table(["sampler", "η", "steps S", "samples", "s per 1000 images", "Fréchet distance ↓"], rows)


def main(argv=None) -> int:
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.sampling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--ddpm-samples", type=int, default=None, help="samples for the 1000-step row (default --samples)")
    p.add_argument("--steps", default="10,20,50,100")
    p.add_argument("--etas", default="0,1")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--checkpoint", default="ddpm16", choices=("ddpm16", "cfg16"),
                   help="cfg16 is class-conditional and sampled with guidance --w")
    p.add_argument("--w", type=float, default=2.0, help="guidance weight for cfg16")
    p.add_argument("--real-limit", type=int, default=None, help="test images for the Fréchet distance (default all)")
    p.add_argument("--ddpm-steps", type=int, default=None,
                   help="steps of the DDPM row (default all T = 1000; fewer: a respaced chain, for smoke runs)")
    p.add_argument("--out", default=None)
    p.add_argument("--name", default=None, help="results file name (default sampling_<device>)")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    result = run(a.samples, a.ddpm_samples, tuple(int(s) for s in a.steps.split(",")),
                 tuple(float(e) for e in a.etas.split(",")), a.batch, device_name=a.device, threads=a.threads,
                 checkpoint=a.checkpoint, w=a.w, real_limit=a.real_limit, ddpm_steps=a.ddpm_steps)
    result["command"] = "python -m bench.sampling " + " ".join(argv)
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    print(table(result))
    path = write_result(a.name or f"sampling_{result['machine']['device']}", result, Path(a.out) if a.out else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
