"""Loss weighting, after Ho et al. 2020, Table 1: the true variational bound L vs L_simple, in miniature.

On CIFAR-10 the paper's ε-model trained on the true bound (fixed isotropic Σ) reached FID 13.51 and NLL ≤ 3.70
bits/dim; trained on L_simple, FID 3.17 and NLL ≤ 3.75: the unweighted loss trades a little likelihood for much
better samples. Here two unconditional U-Nets are trained on 16 px FashionMNIST with ``course_utils.train.train``,
identical (architecture, seed, data order, optimiser, steps) except for ``loss_fn``: L_simple
(``GaussianDiffusion.loss_simple``) or the true bound's weighting (``course_utils.likelihood.loss_vlb``,
λ_t = β_t² / (2 σ_t² α_t (1 − ᾱ_t)), σ_t² = β̃_t). Each is then measured on its EMA weights by

* the Fréchet distance of ``--samples`` samples to the first ``--real`` test images, in the feature space of the
  course's shipped classifier (``course_utils.metrics``; not comparable with published FIDs);
* the negative ELBO in bits/dim on the first ``--bpd-images`` test images (``course_utils.likelihood.bits_per_dim``,
  discretised decoder; ``--bpd-terms`` stratified KL terms per image, an unbiased estimate of the sum over all
  999, not the exact bound);
* both losses on held-out images (each model should win on its own objective).

The shipped ``ddpm16`` checkpoint (L_simple, 3000 steps) gets the same Fréchet distance and bits/dim measurements.

    python -m bench.loss_weighting                                  # the recorded run
    python -m bench.loss_weighting --steps 4 --samples 8 --real 64 --bpd-images 4 --bpd-terms 3 --out /tmp/lw
"""
from __future__ import annotations

import argparse
import math
import shlex
import time
from pathlib import Path

import torch

from course_utils.data import load_fashion_mnist
from course_utils.diffusion import GaussianDiffusion
from course_utils.likelihood import bits_per_dim, loss_vlb
from course_utils.metrics import frechet_distance
from course_utils.models import UNet, UNetConfig, count_parameters
from course_utils.pretrained import load_pretrained
from course_utils.schedules import linear_betas
from course_utils.train import TrainConfig, remove_ema_start, train
from course_utils.utils import get_device

from .common import machine_info, markdown_table, write_result

IMAGE_SIZE = 16
PAPER = {"dataset": "CIFAR-10 32 px", "source": "Ho et al. 2020, Table 1",
         "rows": [{"loss": "L (true bound, fixed isotropic Σ)", "IS": 7.67, "FID": 13.51, "NLL_bits_per_dim": 3.70},
                  {"loss": "L_simple", "IS": 9.46, "FID": 3.17, "NLL_bits_per_dim": 3.75}]}
LOSSES = {"L_simple": None, "L_vlb": loss_vlb}   # None: train's default, diffusion.loss_simple


def _sample(model, diffusion, n, batch, seed, sampler: str, steps: int):
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch):
        shape = (min(batch, n - start), 1, IMAGE_SIZE, IMAGE_SIZE)
        if sampler == "ddpm":
            out.append(diffusion.p_sample_loop(model, shape, num_steps=steps, generator=g, progress=False,
                                               clip_x0=True))
        else:
            out.append(diffusion.ddim_sample_loop(model, shape, num_steps=steps, generator=g, progress=False,
                                                  clip_x0=True))
    return torch.cat(out)


def _bpd(model, diffusion, images, terms: int, seed: int) -> dict:
    r = bits_per_dim(model, diffusion, images, num_timesteps=terms, generator=torch.Generator().manual_seed(seed))
    s = r.summary()
    return {"bits_per_dim": round(s["total"], 4),
            "bits_per_dim_se": round(float(r.total.std()) / math.sqrt(r.total.shape[0]), 4),
            "L_T": round(s["L_T"], 5), "sum_L_mid": round(s["sum_L_mid"], 4), "L_0": round(s["L_0"], 4)}


@torch.no_grad()
def _held_out_losses(model, diffusion, images, seed: int) -> dict:
    out = {}
    for name, fn in (("L_simple", None), ("L_vlb", loss_vlb)):
        g = torch.Generator().manual_seed(seed)
        out[name] = round(float(diffusion.loss_simple(model, images, generator=g) if fn is None
                                else fn(model, diffusion, images, None, g)), 6)
    return out


def run(args) -> dict:
    device = get_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_fashion_mnist(train=True, image_size=IMAGE_SIZE, limit=args.limit)
    test = load_fashion_mnist(train=False, image_size=IMAGE_SIZE).images
    real = test[:args.real]
    bpd_images = test[:args.bpd_images]
    held_out = test[:args.real]
    diffusion = GaussianDiffusion(linear_betas(1000), variance="beta_tilde")     # raw formulas; samplers clip
    out = {"benchmark": "loss_weighting", "machine": machine_info(device),
           "command": "python -m bench.loss_weighting " + shlex.join(args.argv),
           "note": args.note, "paper": PAPER,
           "train": {"model": f"UNet channels {tuple(args.channels)}, unconditional", "steps": args.steps,
                     "batch": args.batch, "lr": args.lr, "warmup_steps": args.warmup, "ema_decay": args.ema_decay,
                     "ema_start_removed": True, "amp": args.amp, "grad_clip": 1.0,
                     "training_images": int(data.images.shape[0]),
                     "variance": "beta_tilde (σ_t² = β̃_t; index 0: β̃_1)", "T": 1000, "schedule": "linear"},
           "sampler": {"name": (f"DDPM respaced to {args.sample_steps} steps (Nichol & Dhariwal 2021), σ² = β̃"
                                if args.sampler == "ddpm" else f"DDIM-{args.sample_steps}, η = 0"),
                       "clip_x0": True, "samples": args.samples, "seed": 1234},
           "frechet": {"real_test_images": int(real.shape[0]), "features": "shipped FashionMNIST classifier, 128-d"},
           "bits_per_dim": {"test_images": int(bpd_images.shape[0]), "kl_terms_per_image": args.bpd_terms,
                            "estimate": f"stratified: {args.bpd_terms} of the 999 KL terms per image, each "
                                        "standing for its run of timesteps (unbiased; not the exact sum)",
                            "decoder": "discretised Gaussian, 256 levels, σ_0² = β̃_1", "seed": 99,
                            "images_rounded_to_8_bit": True},
           "rows": []}
    for seed in args.seeds:
        for name in args.losses:
            cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, warmup_steps=args.warmup,
                              ema_decay=args.ema_decay, ema_warmup=False, seed=seed, device=str(device),
                              amp=args.amp, log_every=50, progress=False)   # constant decay, as recorded
            # the weights after step 1 first (remove_ema_start needs them; this also warms up the kernels)
            torch.manual_seed(seed)
            first = train(UNet(UNetConfig(channels=tuple(args.channels))), diffusion, data,
                          TrainConfig(**{**cfg.__dict__, "steps": 1}), loss_fn=LOSSES[name]).model
            torch.manual_seed(seed)                  # the same initial weights
            model = UNet(UNetConfig(channels=tuple(args.channels)))
            result = train(model, diffusion, data, cfg, loss_fn=LOSSES[name])
            ema = remove_ema_start(result.ema_model, first, args.ema_decay, len(result.losses)).cpu().eval()
            diffusion_cpu = diffusion.cpu()
            t0 = time.perf_counter()
            samples = _sample(ema, diffusion_cpu, args.samples, args.sample_batch, 1234, args.sampler,
                              args.sample_steps)
            sample_s = time.perf_counter() - t0
            fd = frechet_distance(real, samples)
            t0 = time.perf_counter()
            bpd = _bpd(ema, diffusion_cpu, bpd_images, args.bpd_terms, 99)
            bpd_s = time.perf_counter() - t0
            row = {"name": name, "seed": seed, "params": count_parameters(ema), "train_s": round(result.wall_time, 1),
                   "final_train_loss_mean_last_50": round(sum(result.losses[-50:]) / len(result.losses[-50:]), 6),
                   "frechet_distance": round(fd, 3), **bpd, "held_out_losses": _held_out_losses(ema, diffusion_cpu,
                                                                                              held_out, 7),
                   "sample_s": round(sample_s, 1), "bits_per_dim_s": round(bpd_s, 1)}
            out["rows"].append(row)
            print(f"  {name:<9} seed {seed}: train {row['train_s']} s, FD {fd:.2f}, bits/dim "
                  f"{row['bits_per_dim']:.3f} ± {row['bits_per_dim_se']:.3f}", flush=True)
    if not args.no_ddpm16:
        model, d16, meta = load_pretrained("ddpm16")
        fd16 = frechet_distance(real, _sample(model, d16, args.samples, args.sample_batch, 1234, args.sampler,
                                              args.sample_steps))
        t0 = time.perf_counter()
        bpd = _bpd(model, d16, bpd_images, args.bpd_terms, 99)
        out["ddpm16"] = {"name": "ddpm16 (shipped, L_simple)", "command": meta.get("command"),
                         "steps": (meta.get("train_config") or {}).get("steps"), "frechet_distance": round(fd16, 3),
                         "recorded_frechet_distance_clip_x0": (meta.get("evaluation") or {}).get(
                             "frechet_distance_clip_x0"),
                         "recorded_sampler": (meta.get("evaluation") or {}).get("sampler"),
                         **bpd, "held_out_losses": _held_out_losses(model, d16, held_out, 7),
                         "bits_per_dim_s": round(time.perf_counter() - t0, 1)}
        print(f"  ddpm16: FD {fd16:.2f}, bits/dim {bpd['bits_per_dim']:.3f} ± {bpd['bits_per_dim_se']:.3f}", flush=True)
    return out


def _range(vals):
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g} – {hi:.3g}"


def table(result: dict) -> str:
    """One row per loss (ranges over seeds where there are several), then ddpm16, then the paper's CIFAR-10 rows."""
    rows = []
    for name in dict.fromkeys(r["name"] for r in result["rows"]):
        rs = [r for r in result["rows"] if r["name"] == name]
        rows.append([f"{name} ({result['train']['steps']} steps, {len(rs)} seed{'s' if len(rs) > 1 else ''})",
                     _range([r["frechet_distance"] for r in rs]), _range([r["bits_per_dim"] for r in rs]),
                     _range([r["held_out_losses"]["L_simple"] for r in rs]),
                     _range([r["held_out_losses"]["L_vlb"] for r in rs]), _range([r["train_s"] for r in rs])])
    d = result.get("ddpm16")
    if d:
        rows.append([f"ddpm16, shipped (L_simple, {d.get('steps')} steps)", f"{d['frechet_distance']:.3g}",
                     f"{d['bits_per_dim']:.3g}",
                     f"{d['held_out_losses']['L_simple']:.3g}", f"{d['held_out_losses']['L_vlb']:.3g}", None])
    for p in result["paper"]["rows"]:
        rows.append([f"paper, CIFAR-10: {p['loss']}", f"FID {p['FID']}", f"≤ {p['NLL_bits_per_dim']}", None, None,
                     None])
    return markdown_table(["model", "Fréchet distance ↓", "bits/dim ↓ (estimate)", "held-out L_simple",
                           "held-out L_vlb", "training s"], rows)


def main(argv=None) -> int:
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.loss_weighting", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=500, help="optimiser steps per model (the same for both losses)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps (ddpm16's recipe)")
    p.add_argument("--ema-decay", type=float, default=0.995,
                   help="EMA decay (0.995: a ~200-step window for a short run; the EMA's start is removed)")
    p.add_argument("--channels", default="32,64")
    p.add_argument("--amp", default="off", help="train's amp setting: 'off' (fp32, as the recorded figures were made), 'auto', 'bf16'")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--losses", default="L_simple,L_vlb")
    p.add_argument("--limit", type=int, default=None, help="training images (default all 60 000)")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--sample-batch", type=int, default=250)
    p.add_argument("--sampler", default="ddpm", choices=("ddpm", "ddim"))
    p.add_argument("--sample-steps", type=int, default=50)
    p.add_argument("--real", type=int, default=1000, help="test images for the Fréchet distance and held-out losses")
    p.add_argument("--bpd-images", type=int, default=100)
    p.add_argument("--bpd-terms", type=int, default=50, help="KL terms per image (999 = the exact sum)")
    p.add_argument("--no-ddpm16", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--note", default="", help="recorded with the results (e.g. what else ran on the machine)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    a.argv = argv
    a.channels = [int(c) for c in a.channels.split(",")]
    a.seeds = [int(s) for s in a.seeds.split(",")]
    a.losses = a.losses.split(",")
    unknown = set(a.losses) - set(LOSSES)
    if unknown:
        p.error(f"unknown loss(es) {sorted(unknown)}; choose from {sorted(LOSSES)}")
    t0 = time.perf_counter()
    result = run(a)
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    print(table(result))
    path = write_result(f"loss_weighting_{result['machine']['device']}", result, Path(a.out) if a.out else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
