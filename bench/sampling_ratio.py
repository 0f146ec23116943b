"""Sampling speed: the course's guided DDIM-20 against diffusers' ``DDIMScheduler`` driving the same network.

The shipped class-conditional ``cfg16`` samples ``--images`` images per round with classifier-free guidance
(w = 2, labels 0–9 in turn, x̂0 clipped to [-1, 1], η = 0), DDIM with ``--steps`` network evaluations:

* ``ours``: :meth:`course_utils.diffusion.GaussianDiffusion.ddim_sample_loop` (the conditional and null passes in
  one batched call, :func:`~course_utils.diffusion.guided_eps`), under ``torch.inference_mode``;
* ``diffusers``: the loop of the diffusers documentation — ``scheduler.set_timesteps(steps)``, then for each
  ``t``: one batched call of the same network on ``cat([x, x])`` with (labels, null labels), the guided ε
  (the same formula, :func:`~course_utils.diffusion.classifier_free_guidance`) and ``scheduler.step(ε, t, x)``
  with ``DDIMScheduler(trained_betas=cfg16's betas, clip_sample=True, set_alpha_to_one=True,
  timestep_spacing="linspace")`` and ``use_clipped_model_output=True`` (ε re-derived from the clipped x̂0, as
  :meth:`~course_utils.diffusion.GaussianDiffusion.ddim_step` does), under ``torch.no_grad``;
* each also under ``torch.autocast(device, bfloat16)`` ("+ bf16") and with the network in channels_last
  ("+ channels_last"), one option per row, so what pays shows on its own.

The contenders run round-robin, ``--rounds`` times, after one untimed warm-up call each; the table gives the
median images/s and the lowest–highest round, and the ratio of each row to the diffusers fp32 row. The two fp32
samplers start from the same x_T; their mean absolute pixel difference is printed as a check that both compute
DDIM (it is not 0: diffusers steps to ``t − T/steps`` while ours visits ``linspace(0, T−1, steps)`` exactly).

    python -m bench.sampling_ratio                          # 250 images × 5 rounds per contender
    python -m bench.sampling_ratio --images 20 --rounds 1   # a smoke run
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from pathlib import Path

import torch

from course_utils.diffusion import classifier_free_guidance
from course_utils.pretrained import load_pretrained
from course_utils.utils import get_device

from .common import machine_info, markdown_table, sync, write_result

CONTENDERS = ("ours", "ours + bf16", "ours + channels_last", "diffusers", "diffusers + bf16",
              "diffusers + channels_last")


def _autocast(device: torch.device, on: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if on else contextlib.nullcontext()


def _diffusers_scheduler(betas: torch.Tensor):
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=betas.numel(), trained_betas=betas.double().cpu().numpy(),
                         clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=True,
                         prediction_type="epsilon", timestep_spacing="linspace")


def _ours(model, diffusion, x_T, y, w, steps, device, bf16: bool) -> torch.Tensor:
    with torch.inference_mode(), _autocast(device, bf16):
        return diffusion.ddim_sample_loop(model, x_T=x_T, num_steps=steps, y=y, w=w, progress=False, clip_x0=True)


def _diffusers(model, scheduler, x_T, y, w, steps, device, bf16: bool) -> torch.Tensor:
    scheduler.set_timesteps(steps, device=device)
    x = x_T
    null = torch.full_like(y, model.null_class)
    with torch.no_grad(), _autocast(device, bf16):
        for t in scheduler.timesteps:
            tt = t.expand(2 * x.shape[0]).to(device)
            eps_c, eps_u = model(torch.cat([x, x]), tt, torch.cat([y, null])).chunk(2)
            eps = classifier_free_guidance(eps_c, eps_u, w)
            x = scheduler.step(eps.float(), t, x, use_clipped_model_output=True).prev_sample
    return x


def run(images: int = 250, rounds: int = 5, steps: int = 20, w: float = 2.0, seed: int = 0,
        device_name: str = "auto", threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    device = get_device(device_name)
    model, diffusion, _ = load_pretrained("cfg16", device)
    model.eval()
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    scheduler = _diffusers_scheduler(diffusion.betas)
    g = torch.Generator(device=device).manual_seed(seed)
    x_T = torch.randn(images, 1, 16, 16, generator=g, device=device)
    y = torch.arange(images, device=device) % 10

    calls = {
        "ours": lambda: _ours(model, diffusion, x_T, y, w, steps, device, False),
        "ours + bf16": lambda: _ours(model, diffusion, x_T, y, w, steps, device, True),
        "ours + channels_last": lambda: _ours(cl_model, diffusion, x_T, y, w, steps, device, False),
        "diffusers": lambda: _diffusers(model, scheduler, x_T, y, w, steps, device, False),
        "diffusers + bf16": lambda: _diffusers(model, scheduler, x_T, y, w, steps, device, True),
        "diffusers + channels_last": lambda: _diffusers(cl_model, scheduler, x_T, y, w, steps, device, False),
    }
    outputs = {name: fn() for name, fn in calls.items()}           # warm-up, and the samples compared below
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            seconds[name].append(time.perf_counter() - t0)
    base = statistics.median(seconds["diffusers"])
    rows = []
    for name in calls:
        s = seconds[name]
        rows.append({"contender": name, "median_s": round(statistics.median(s), 3),
                     "images_per_s": round(images / statistics.median(s), 1),
                     "images_per_s_range": [round(images / max(s), 1), round(images / min(s), 1)],
                     "vs_diffusers_fp32": round(base / statistics.median(s), 2),
                     "mean_abs_diff_to_ours_fp32": round(float((outputs[name].float() - outputs["ours"].float())
                                                               .abs().mean()), 4)})
    return {"benchmark": "sampling_ratio", "machine": machine_info(device), "checkpoint": "cfg16",
            "images_per_round": images, "rounds": rounds, "steps": steps, "w": w, "seed": seed,
            "network_evaluations_per_image": 2 * steps, "rows": rows}


def table(result: dict) -> str:
    rows = [[r["contender"], r["images_per_s"], f"{r['images_per_s_range'][0]}–{r['images_per_s_range'][1]}",
             f"{r['vs_diffusers_fp32']}×", r["mean_abs_diff_to_ours_fp32"]] for r in result["rows"]]
    return markdown_table(["sampler", "images/s (median)", "range over rounds", "vs diffusers fp32",
                           "mean |Δ pixel| to ours fp32"], rows)


def main(argv=None) -> int:
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.sampling_ratio", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=250)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--w", type=float, default=2.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--name", default=None, help="results file name (default sampling_ratio_<device>)")
    a = p.parse_args(argv)
    if a.images < 1 or a.rounds < 1:
        p.error("--images and --rounds must be at least 1")
    t0 = time.perf_counter()
    result = run(a.images, a.rounds, a.steps, a.w, device_name=a.device, threads=a.threads)
    result["command"] = "python -m bench.sampling_ratio " + " ".join(argv)
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    print(table(result))
    path = write_result(a.name or f"sampling_ratio_{result['machine']['device']}", result,
                        Path(a.out) if a.out else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
