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
import contextlib
import copy
import functools
import statistics
import time
from typing import Callable
from unittest import mock

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


def _compile_mode(mode: str | None):
    """A context in which ``torch.compile`` defaults to ``mode`` (None: leave it alone). TrainConfig.compile is
    a plain on/off switch; "reduce-overhead" (inductor with CUDA graphs) is injected here by the benchmark."""
    if mode in (None, "default"):
        return contextlib.nullcontext()
    return mock.patch.object(torch, "compile", functools.partial(torch.compile, mode=mode))


def _ours(data, diffusion, device, batch, warmup, steps, compile_mode: str | None = None, **options) -> float:
    """Images/s of ``course_utils.train`` after ``warmup`` steps (the trainer's own loop, EMA included)."""
    marks: dict[int, float] = {}
    cfg = TrainConfig(steps=warmup + steps, batch_size=batch, lr=2e-3, warmup_steps=100, seed=0,
                      device=str(device), log_every=warmup, progress=False, **options)
    with _compile_mode(compile_mode):
        result = train(baselines.our_unet(), diffusion, data, cfg,
                       callbacks=[lambda s: marks.setdefault(s.step, s.elapsed)])
    return steps * batch / (result.wall_time - marks[warmup])


def _mfu(flops_per_image: int, images_per_s: float, peak: float) -> float:
    return flops_per_image * images_per_s / peak


def run(quick: bool = False, device_name: str = "auto", batch: int = 128, threads: int | None = None,
        warmup: int | None = None, steps: int | None = None, variants: bool = True, repeats: int | None = None,
        image_size: int = IMAGE_SIZE, batches: tuple[int, ...] | None = None,
        compile_modes: tuple[str, ...] = ("default",), on_progress: Callable[[dict], None] | None = None) -> dict:
    """Measure every contender ``repeats`` times, round-robin (drift of a shared machine hits all alike);
    the table reports the median images/s and the spread.

    ``image_size`` (16, 28 or 32), ``batches`` (the extra "ours, batch b" rows; default (64, 256), none when
    quick) and ``compile_modes`` (one "ours + torch.compile" row per ``torch.compile`` mode, e.g.
    ("default", "reduce-overhead")) are the GPU check's knobs; the defaults are the CPU report's setting.
    ``on_progress`` gets the partial result (``"partial": True``) after every measurement, so that a run cut
    short by a time limit still leaves its figures."""
    if image_size not in (16, 28, 32):
        raise ValueError(f"image_size must be 16, 28 or 32 (the sizes course_utils.data provides); got {image_size!r}.")
    device = get_device(device_name)
    if threads:
        torch.set_num_threads(threads)
    warmup = warmup or (2 if quick else 10)
    steps = steps or (3 if quick else (60 if device.type == "cpu" else 300))
    repeats = repeats or (1 if quick else 3)
    limit = 8 * batch if quick else None
    data = load_fashion_mnist(train=True, image_size=image_size, limit=limit)
    diffusion = GaussianDiffusion(linear_betas(1000))
    ours_model = baselines.our_unet()
    n_ours = count_parameters(ours_model)
    widths, n_diff = baselines.matched_diffusers_widths(n_ours, image_size)

    x0 = data.images[:batch].to(device)
    y = data.labels[:batch].to(device)
    flops_ours = _flops_per_image(ours_model.to(device), diffusion.to(device), x0, y)
    flops_diff = count_flops(lambda: baselines.DiffusersEps(baselines.diffusers_unet(widths, image_size).to(device))(
        x0, torch.randint(0, 1000, (batch,), device=device), y).pow(2).mean().backward()) // batch

    amp_default = resolve_amp_dtype("auto", device)
    default_dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp_default, "fp32")
    # fp32 convolutions run on TF32 tensor cores on CUDA unless cuDNN's TF32 is switched off (torch's default: on)
    fp32 = "tf32" if device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"
    # one peak per dtype, measured once before any loop runs, so that every row divides by the same figure
    # (a quick run's small matmul: an emulated bf16 matmul of 2048² takes minutes on a CPU without native bf16)
    peaks = {d: peak_flops(device, d, n=256 if quick else None) for d in sorted({default_dtype, fp32, "bf16"} |
                                                       ({"fp16"} if device.type == "cuda" else set()))}
    print(f"device {device}; ours {n_ours} params, diffusers widths {widths} → {n_diff} params; batch {batch}; "
          f"{repeats} round(s) of {warmup} warm-up + {steps} timed steps")

    loader = baselines.fashion_mnist_loader(batch, image_size, limit=limit)
    torch.manual_seed(0)
    diff = baselines.DiffusersLoop(widths, loader, device, total_steps=10 ** 6, image_size=image_size)
    naive = baselines.NaiveLoop(baselines.our_unet(), diffusion, loader, device)
    cuda = device.type == "cuda"
    # (name, params, FLOPs per image, dtype for MFU, batch, note, measure() → images/s)
    contenders = [
        ("diffusers UNet2DModel tutorial loop", n_diff, flops_diff, "fp16" if cuda else "fp32", batch,
         "DataLoader + per-item transforms; " + ("fp16 autocast + GradScaler" if cuda else "fp32"),
         lambda: batch / timed_steps(diff.step, device, warmup, steps)),
        ("naive eager fp32 loop (our U-Net)", n_ours, flops_ours, fp32, batch, "DataLoader, fp32, no EMA",
         lambda: batch / timed_steps(naive.step, device, warmup, steps)),
        ("ours: course_utils.train (default)", n_ours, flops_ours, default_dtype, batch,
         "resident data, EMA" + (", bf16/fp16 autocast, channels_last, fused AdamW" if cuda else ", fp32"),
         lambda: _ours(data, diffusion, device, batch, warmup, steps)),
    ]
    if variants:
        experiments = [("ours + channels_last", {"channels_last": True}, default_dtype, not cuda),
                       ("ours, contiguous (no channels_last)", {"channels_last": False}, default_dtype, cuda),
                       ("ours + bf16 autocast", {"amp": "bf16"}, "bf16", not (cuda and default_dtype == "bf16")),
                       ("ours, fp32 (no autocast)", {"amp": "off"}, fp32, cuda)]
        for mode in compile_modes:
            name = "ours + torch.compile" + ("" if mode == "default" else f"(mode={mode!r})")
            experiments.append((name, {"compile": True, "compile_mode": mode}, default_dtype, True))
        for name, opts, dtype, wanted in experiments:
            if wanted:
                note = "CUDA graphs (inductor's cudagraph trees)" if opts.get("compile_mode") == "reduce-overhead" else ""
                contenders.append((name, n_ours, flops_ours, dtype, batch, note,
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
        for b in (batches if batches is not None else (64, 256)) if not quick else ():
            contenders.append((f"ours, batch {b}", n_ours, flops_ours, default_dtype, b, "",
                               lambda b=b: _ours(data, diffusion, device, b, warmup, steps)))

    samples: dict[str, list[float]] = {c[0]: [] for c in contenders}
    errors: dict[str, str] = {}
    machine = machine_info(device)

    def assemble() -> dict:
        """The result from the rounds measured so far (a contender not measured yet has no row)."""
        rows = []
        for name, params, flops, dtype, b, note, _ in contenders:
            if name in errors:
                rows.append({"name": name, "error": errors[name]})
                continue
            if not samples[name]:
                continue
            ips = statistics.median(samples[name])
            rows.append({"name": name, "params": params, "batch": b, "images_per_s": round(ips, 1),
                         "images_per_s_runs": [round(v, 1) for v in samples[name]],
                         "gflop_per_image": round(flops / 1e9, 4), "dtype": dtype,
                         "mfu": round(_mfu(flops, ips, peaks[dtype][0]), 5), "note": note})
        by = {r["name"]: r for r in rows if "images_per_s" in r}

        def ratio(other: str):
            ours = by.get("ours: course_utils.train (default)")
            return round(ours["images_per_s"] / by[other]["images_per_s"], 3) if ours and other in by else None
        return {
            "benchmark": "train_throughput", "machine": machine, "quick": quick,
            "command": "python -m bench.train_throughput" + (" --quick" if quick else ""),
            "image_size": image_size, "batch": batch, "warmup_steps": warmup, "timed_steps": steps, "repeats": repeats,
            "diffusers_widths": list(widths),
            "peak_flops": {k: {"flops": v[0], "source": v[1]} for k, v in peaks.items()},
            "rows": rows,
            "ratios": {"ours_vs_diffusers": ratio("diffusers UNet2DModel tutorial loop"),
                       "ours_vs_naive": ratio("naive eager fp32 loop (our U-Net)")},
        }

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
            if on_progress is not None:
                on_progress({**assemble(), "partial": True})
    return assemble()


def table(result: dict) -> str:
    rows = []
    # None: that baseline failed or was not measured (a partial run); its ratio column then stays empty
    base = next((r.get("images_per_s") for r in result["rows"] if r["name"].startswith("diffusers")), None)
    naive = next((r.get("images_per_s") for r in result["rows"] if r["name"].startswith("naive")), None)
    for r in result["rows"]:
        if "error" in r:
            rows.append([r["name"], None, None, None, None, None, None, None, None, r["error"]])
            continue
        runs = r.get("images_per_s_runs") or [r["images_per_s"]]
        spread = f"{min(runs):,.0f}–{max(runs):,.0f}" if len(runs) > 1 else None
        rows.append([r["name"], f"{r['params']:,}", r["batch"], r["images_per_s"], spread,
                     f"{r['images_per_s'] / base:.2f}×" if base else None,
                     f"{r['images_per_s'] / naive:.2f}×" if naive else None, r["gflop_per_image"], f"{100 * r['mfu']:.2f} % ({r['dtype']})",
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
    p.add_argument("--image-size", type=int, default=IMAGE_SIZE, choices=(16, 28, 32))
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per measurement (default 10; --quick 2)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 60 CPU, 300 GPU)")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes of the extra 'ours, batch b' rows "
                   "(default 64,256; 'none' for no such rows)")
    p.add_argument("--compile-modes", default="default", help="comma-separated torch.compile modes, one row each "
                   "(e.g. default,reduce-overhead: the latter uses CUDA graphs)")
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    p.add_argument("--name", default=None, help="results file name (default train_throughput_<device>[_quick])")
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    a = p.parse_args(argv)
    batches = None if a.batches is None else tuple(int(b) for b in a.batches.split(",") if b not in ("", "none"))
    from pathlib import Path
    t0 = time.perf_counter()

    def finish(result: dict) -> dict:
        if argv and argv != ["--quick"]:
            result["command"] = "python -m bench.train_throughput " + " ".join(argv)
        result["wall_time_s"] = round(time.perf_counter() - t0, 1)
        return result

    def name(result: dict) -> str:
        return a.name or f"train_throughput_{result['machine']['device']}" + ("_quick" if a.quick else "")

    def progress(partial: dict) -> None:          # only where asked (--out): the report's files stay whole
        write_result(name(partial), finish(partial), Path(a.out))
    result = finish(run(a.quick, a.device, a.batch, a.threads, variants=not a.no_variants, repeats=a.repeats,
                        warmup=a.warmup, steps=a.steps, image_size=a.image_size, batches=batches,
                        compile_modes=tuple(a.compile_modes.split(",")),
                        on_progress=progress if a.out else None))
    print(table(result))
    print("ratios:", result["ratios"])
    path = write_result(name(result), result, Path(a.out) if a.out else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
