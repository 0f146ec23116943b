"""Training throughput: ``course_utils.train`` vs the diffusers tutorial's loop vs a naive eager loop.

All three train a class-conditional ε-model on 16 px FashionMNIST with the same batch size, on the same
device, in the same process, at (nearly) the same parameter count: the course's ``UNet(channels=(32, 64),
num_classes=10)`` and a ``UNet2DModel`` whose widths are searched to match it. Images/s are measured after
warm-up steps (``torch.compile`` compiles during warm-up); model FLOPs per image come from torch's
``FlopCounterMode`` over one forward + backward pass (matmuls and convolutions), and model-FLOPs
utilisation (MFU) divides the achieved FLOP/s by the device's peak (the data sheet on known GPUs, a
measured matmul on a CPU).

The rows named "ours + …" are the fast-path experiments: each changes one ``TrainConfig`` option, so
the table shows which of them pays on this device.

    python -m bench.train_throughput                 # CPU or GPU, whichever course_utils picks
    python -m bench.train_throughput --quick         # a few steps, for a smoke test
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from course_utils.data import load_fashion_mnist
from course_utils.diffusion import GaussianDiffusion
from course_utils.models import count_parameters
from course_utils.schedules import linear_betas
from course_utils.train import TrainConfig, resolve_amp_dtype, train
from course_utils.utils import get_device

from . import baselines
from .common import count_flops, machine_info, markdown_table, peak_flops, timed_steps, write_result

IMAGE_SIZE = 16


def _flops_per_image(model, diffusion, x0, y) -> int:
    """Training FLOPs per image: one forward and backward pass of L_simple on a copy of the model."""
    m = copy.deepcopy(model).train()
    count = count_flops(lambda: diffusion.loss_simple(m, x0, y=y).backward())
    return count // x0.shape[0]


def _ours(data, diffusion, device, batch, warmup, steps, **options) -> float:
    """Images/s of ``course_utils.train`` after ``warmup`` steps (the trainer's own loop, EMA included)."""
    marks: dict[int, float] = {}
    cfg = TrainConfig(steps=warmup + steps, batch_size=batch, lr=2e-3, warmup_steps=100, seed=0,
                      device=str(device), log_every=warmup, progress=False, **options)
    result = train(baselines.our_unet(), diffusion, data, cfg, callbacks=[lambda s: marks.setdefault(s.step, s.elapsed)])
    return steps * batch / (result.wall_time - marks[warmup])


def _mfu(flops_per_image: int, images_per_s: float, peak: float) -> float:
    return flops_per_image * images_per_s / peak


def run(quick: bool = False, device_name: str = "auto", batch: int = 128, threads: int | None = None,
        warmup: int | None = None, steps: int | None = None, variants: bool = True, repeats: int | None = None) -> dict:
    """Measure every contender ``repeats`` times, round-robin (drift of a shared machine hits all alike);
    the table reports the median images/s and the spread."""
    device = get_device(device_name)
    if threads:
        torch.set_num_threads(threads)
    warmup = warmup or (2 if quick else 10)
    steps = steps or (3 if quick else (60 if device.type == "cpu" else 300))
    repeats = repeats or (1 if quick else 3)
    limit = 8 * batch if quick else None
    data = load_fashion_mnist(train=True, image_size=IMAGE_SIZE, limit=limit)
    diffusion = GaussianDiffusion(linear_betas(1000))
    ours_model = baselines.our_unet()
    n_ours = count_parameters(ours_model)
    widths, n_diff = baselines.matched_diffusers_widths(n_ours, IMAGE_SIZE)

    x0 = data.images[:batch].to(device)
    y = data.labels[:batch].to(device)
    flops_ours = _flops_per_image(ours_model.to(device), diffusion.to(device), x0, y)
    flops_diff = count_flops(lambda: baselines.DiffusersEps(baselines.diffusers_unet(widths).to(device))(
        x0, torch.randint(0, 1000, (batch,), device=device), y).pow(2).mean().backward()) // batch

    amp_default = resolve_amp_dtype("auto", device)
    default_dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp_default, "fp32")
    # one peak per dtype, measured once before any loop runs, so that every row divides by the same figure
    peaks = {d: peak_flops(device, d) for d in sorted({default_dtype, "fp32", "bf16"} |
                                                       ({"fp16"} if device.type == "cuda" else set()))}
    print(f"device {device}; ours {n_ours} params, diffusers widths {widths} → {n_diff} params; batch {batch}; "
          f"{repeats} round(s) of {warmup} warm-up + {steps} timed steps")

    loader = baselines.fashion_mnist_loader(batch, IMAGE_SIZE, limit=limit)
    torch.manual_seed(0)
    diff = baselines.DiffusersLoop(widths, loader, device, total_steps=10 ** 6)
    naive = baselines.NaiveLoop(baselines.our_unet(), diffusion, loader, device)
    cuda = device.type == "cuda"
    # (name, params, FLOPs per image, dtype for MFU, batch, note, measure() → images/s)
    contenders = [
        ("diffusers UNet2DModel tutorial loop", n_diff, flops_diff, "fp16" if cuda else "fp32", batch,
         "DataLoader + per-item transforms; " + ("fp16 autocast + GradScaler" if cuda else "fp32"),
         lambda: batch / timed_steps(diff.step, device, warmup, steps)),
        ("naive eager fp32 loop (our U-Net)", n_ours, flops_ours, "fp32", batch, "DataLoader, fp32, no EMA",
         lambda: batch / timed_steps(naive.step, device, warmup, steps)),
        ("ours: course_utils.train (default)", n_ours, flops_ours, default_dtype, batch,
         "resident data, EMA" + (", bf16/fp16 autocast, channels_last, fused AdamW" if cuda else ", fp32"),
         lambda: _ours(data, diffusion, device, batch, warmup, steps)),
    ]
    if variants:
        experiments = [("ours + channels_last", {"channels_last": True}, default_dtype, not cuda),
                       ("ours, contiguous (no channels_last)", {"channels_last": False}, default_dtype, cuda),
                       ("ours + bf16 autocast", {"amp": "bf16"}, "bf16", not (cuda and default_dtype == "bf16")),
                       ("ours, fp32 (no autocast)", {"amp": "off"}, "fp32", cuda),
                       ("ours + torch.compile", {"compile": True}, default_dtype, True)]
        for name, opts, dtype, wanted in experiments:
            if wanted:
                contenders.append((name, n_ours, flops_ours, dtype, batch, "",
                                   lambda o=opts: _ours(data, diffusion, device, batch, warmup, steps, **o)))
        if device.type == "cpu" and torch.get_num_threads() > 1 and not quick:
            n = torch.get_num_threads()

            def one_thread():
                torch.set_num_threads(1)
                try:
                    return _ours(data, diffusion, device, batch, warmup, steps)
                finally:
                    torch.set_num_threads(n)
            contenders.append(("ours, 1 thread", n_ours, flops_ours, default_dtype, batch,
                               f"torch.set_num_threads(1) instead of {n}", one_thread))
        for b in ((64, 256) if not quick else ()):
            contenders.append((f"ours, batch {b}", n_ours, flops_ours, default_dtype, b, "",
                               lambda b=b: _ours(data, diffusion, device, b, warmup, steps)))

    samples: dict[str, list[float]] = {c[0]: [] for c in contenders}
    errors: dict[str, str] = {}
    for rnd in range(repeats):
        for name, *_rest, measure in contenders:
            if name in errors:
                continue
            try:
                samples[name].append(measure())
                print(f"  round {rnd + 1}: {name:<36} {samples[name][-1]:8.1f} images/s", flush=True)
            except Exception as err:                          # e.g. no C++ compiler for torch.compile
                errors[name] = f"{type(err).__name__}: {str(err)[:200]}"
                print(f"  {name:<36} failed: {errors[name]}", flush=True)
    rows = []
    for name, params, flops, dtype, b, note, _ in contenders:
        if name in errors:
            rows.append({"name": name, "error": errors[name]})
            continue
        ips = statistics.median(samples[name])
        rows.append({"name": name, "params": params, "batch": b, "images_per_s": round(ips, 1),
                     "images_per_s_runs": [round(v, 1) for v in samples[name]],
                     "gflop_per_image": round(flops / 1e9, 4), "dtype": dtype,
                     "mfu": round(_mfu(flops, ips, peaks[dtype][0]), 5), "note": note})

    by = {r["name"]: r for r in rows if "images_per_s" in r}
    ours = by["ours: course_utils.train (default)"]["images_per_s"]
    return {
        "benchmark": "train_throughput", "machine": machine_info(device), "quick": quick,
        "command": "python -m bench.train_throughput" + (" --quick" if quick else ""),
        "image_size": IMAGE_SIZE, "batch": batch, "warmup_steps": warmup, "timed_steps": steps, "repeats": repeats,
        "diffusers_widths": list(widths),
        "peak_flops": {k: {"flops": v[0], "source": v[1]} for k, v in peaks.items()},
        "rows": rows,
        "ratios": {"ours_vs_diffusers": round(ours / by["diffusers UNet2DModel tutorial loop"]["images_per_s"], 3),
                   "ours_vs_naive": round(ours / by["naive eager fp32 loop (our U-Net)"]["images_per_s"], 3)},
    }


def table(result: dict) -> str:
    rows = []
    base = next(r for r in result["rows"] if r["name"].startswith("diffusers"))["images_per_s"]
    naive = next(r for r in result["rows"] if r["name"].startswith("naive"))["images_per_s"]
    for r in result["rows"]:
        if "error" in r:
            rows.append([r["name"], None, None, None, None, None, None, None, None, r["error"]])
            continue
        runs = r.get("images_per_s_runs") or [r["images_per_s"]]
        spread = f"{min(runs):,.0f}–{max(runs):,.0f}" if len(runs) > 1 else None
        rows.append([r["name"], f"{r['params']:,}", r["batch"], r["images_per_s"], spread, f"{r['images_per_s'] / base:.2f}×",
                     f"{r['images_per_s'] / naive:.2f}×", r["gflop_per_image"], f"{100 * r['mfu']:.2f} % ({r['dtype']})",
                     r.get("note", "")])
    return markdown_table(["loop", "params", "batch", "images/s (median)", "range", "vs diffusers", "vs naive",
                           "GFLOP/image (fwd+bwd)",
                           "MFU", "notes"], rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.train_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few steps on a small slice (smoke test)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-variants", action="store_true", help="only the three main rows")
    p.add_argument("--repeats", type=int, default=None, help="rounds over all contenders (default 3; --quick 1)")
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    result = run(a.quick, a.device, a.batch, a.threads, variants=not a.no_variants, repeats=a.repeats)
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    print(table(result))
    print("ratios:", result["ratios"])
    from pathlib import Path
    path = write_result(f"train_throughput_{result['machine']['device']}" + ("_quick" if a.quick else ""),
                        result, Path(a.out) if a.out else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
