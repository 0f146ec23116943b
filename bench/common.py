"""Shared pieces of the benchmarks: machine facts, timing, FLOP counting, result files, tables."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"

# Dense peak FLOP/s from the vendors' data sheets (no sparsity), for model-FLOPs utilisation on GPUs.
# H100/H200 SXM: NVIDIA's data sheets give FP32 67 TFLOP/s and, with 2:4 sparsity, TF32 989 and BF16/FP16
# 1,979 TFLOP/s; dense is half of the sparse figure. The values below are the H100 white paper's dense figures
# at the 1,830 MHz boost clock (FP32 66.9, TF32 494.7, BF16/FP16 989.4), which the H200 shares (same GH100 chip
# and clocks; only the memory differs: 141 GB HBM3e at 4.8 TB/s). "tf32" is what fp32 convolutions run on
# with cuDNN's default allow_tf32 = True.
GPU_PEAK_FLOPS = {
    # name fragment: {dtype: FLOP/s}
    "H200": {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12},
    "H100": {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12},   # SXM; PCIe is ~76 % of it
    "A100": {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "L4": {"bf16": 121e12, "fp16": 121e12, "tf32": 60e12, "fp32": 30.3e12},
    "T4": {"fp16": 65e12, "fp32": 8.1e12},
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(device: torch.device) -> dict:
    """The facts a reader needs to compare figures: date, device, threads, versions, commit."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device.type, "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "git_commit": git_commit(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    try:
        import diffusers
        info["diffusers"] = diffusers.__version__
    except ImportError:
        info["diffusers"] = None
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step: Callable[[], None], device: torch.device, warmup: int, steps: int) -> float:
    """Seconds per call of ``step`` after ``warmup`` untimed calls (device synchronised around the timing)."""
    if warmup < 0 or steps < 1:
        raise ValueError(f"warmup must be ≥ 0 and steps ≥ 1; got {warmup}, {steps}.")
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def count_flops(fn: Callable[[], None]) -> int:
    """FLOPs torch's FlopCounterMode counts while ``fn`` runs (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def measured_matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None,
                         repeats: int = 10, warmup: int = 3) -> float:
    """Best FLOP/s of an n×n matmul: the attainable peak used for MFU where no data-sheet figure exists."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(warmup):
        (a @ b).sum().item()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def peak_flops(device: torch.device, dtype: str, n: int | None = None) -> tuple[float, str]:
    """(peak FLOP/s, where the figure comes from) for MFU: the data sheet on known GPUs, else a measured n×n matmul
    (``n`` None: measured_matmul_peak's default; a smoke run passes a small one)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for frag, table in GPU_PEAK_FLOPS.items():
            if frag in name and dtype in table:
                return table[dtype], f"{frag} data sheet, dense {dtype}"
    tdtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype, torch.float32)
    if device.type == "cpu" and tdtype == torch.float16:
        tdtype = torch.float32
    return measured_matmul_peak(device, tdtype, n=n), f"measured {tdtype} matmul on this {device.type}"


def write_result(name: str, payload: dict, directory: Path | None = None) -> Path:
    directory = directory or RESULTS
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def read_results(directory: Path | None = None) -> dict[str, dict]:
    directory = directory or RESULTS
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-markdown table (also readable as plain text in a terminal)."""
    def fmt(v) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
