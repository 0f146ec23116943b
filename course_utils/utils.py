"""Seeding, device choice, image grids; the sha256 sidecar helpers are re-exported from :mod:`course_utils.checkpoints`."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from .checkpoints import sha256_file, verify_sha256, write_sha256  # re-exported: the hashing helpers
from .validation import is_int

__all__ = ["set_seed", "get_device", "run_mode", "GRADING_ENV", "to_display", "make_grid", "show_images", "in_colab",
           "sha256_file", "write_sha256", "verify_sha256", "tool_env"]


def set_seed(seed: int) -> torch.Generator:
    """Seed python's ``random``, numpy and torch (CPU and every GPU) with one integer.

    Returns:
        a CPU ``torch.Generator`` seeded with the same value, for functions that take ``generator``.
    """
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve a device: ``"auto"`` picks cuda, then mps, then cpu; anything else is checked.

    Raises:
        ValueError: for an unknown name or a device this machine does not have (the message says
            what is available).
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}.")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'mps'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible; use device='auto' "
                         "(falls back to the CPU) or, in Colab, Runtime → Change runtime type → GPU.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but Apple's MPS backend is not available; use 'auto'.")
    return dev


GRADING_ENV = {"COURSE_GRADING": "1"}    # what the grader (and the tests' grading runs) set: see run_mode


# CPU flags of the instructions that compute in bf16 (x86: AVX512-BF16, AMX; Arm: the BF16 extension)
_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes in bf16 natively (AVX512-BF16 or AMX on x86, BF16 on Arm), where bf16
    autocast speeds training up; False elsewhere, where oneDNN emulates bf16 and it is slower than fp32.

    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is not the test: it says True on any AVX512 CPU, and on an
    AVX512 Xeon without AVX512-BF16 a training step of the course's U-Net took 0.62–0.73 s under bf16
    autocast against 0.38–0.46 s in fp32. ``cpuinfo``: the text of ``/proc/cpuinfo`` (read on Linux when
    None; where there is none, e.g. macOS, the answer is False).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return bool(_BF16_FLAGS & set(value.split()))
    return False


def run_mode(device: str | torch.device = "auto") -> str:
    """The sizes a lesson's demonstration cells use: ``"gpu"`` (full runs, many samples) on a GPU,
    ``"cpu"`` (short runs, few samples: what a learner's laptop runs in a minute or two) on the CPU, and
    ``"grading"`` whenever ``COURSE_GRADING=1`` is set — the course's grader sets it (``python -m
    course_utils.autograde``; the test suite's nbgrader runs set it too): demonstrations shrink to the
    smallest sizes that still run every line, while the test cells, which alone decide a grade, are the
    same in every mode.

    Raises:
        ValueError: ``COURSE_GRADING`` set to something other than ``"0"``, ``"1"`` or empty.
    """
    flag = os.environ.get("COURSE_GRADING", "")
    if flag not in ("", "0", "1"):
        raise ValueError(f"COURSE_GRADING must be '1' (the grader's run) or '0'/unset; got {flag!r}.")
    if flag == "1":
        return "grading"
    return "cpu" if get_device(device).type == "cpu" else "gpu"


def tool_env(extra: dict | None = None) -> dict:
    """The environment for a child ``nbgrader``/``jupyter`` process: this interpreter's bin/ first on PATH.

    nbgrader shells out to ``alembic`` and jupyter to kernels by name; with the venv's bin/ first they are
    the venv's even when the venv was never activated. ``extra`` adds or overrides variables.
    """
    import sys

    env = {**os.environ, **(extra or {})}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def in_colab() -> bool:
    """True inside Google Colab."""
    return "COLAB_RELEASE_TAG" in os.environ or "google.colab" in __import__("sys").modules


def to_display(x: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to [0, 1] (clipped), detached on the CPU, for plotting.

    Args:
        x: (B, C, H, W) or (C, H, W) in [-1, 1].
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"expected a floating-point image tensor in [-1, 1]; got {getattr(x, 'dtype', type(x))}.")
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


def make_grid(x: torch.Tensor, nrow: int = 8, padding: int = 1) -> torch.Tensor:
    """Tile a batch (B, C, H, W) in [-1, 1] into one (H', W', 3) image in [0, 1], white between the tiles.

    The layout of ``torchvision.utils.make_grid(…, pad_value=1)`` (grey repeated to three channels; a
    single image without padding), written with einops: importing torchvision imports ``torch._dynamo``
    (3–4 s on a 2-core CPU), which every notebook's first figure would pay.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"make_grid expects a (B, C, H, W) tensor; got shape {tuple(getattr(x, 'shape', ()))}.")
    if not is_int(nrow) or nrow < 1 or not is_int(padding) or padding < 0:
        raise ValueError(f"make_grid needs an int nrow ≥ 1 and an int padding ≥ 0; got nrow={nrow!r}, padding={padding!r}.")
    img = to_display(x)
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    if img.shape[0] == 1:
        return img[0].permute(1, 2, 0)
    cols = min(nrow, img.shape[0])
    rows = -(-img.shape[0] // cols)
    tiles = torch.nn.functional.pad(img, (padding, 0, padding, 0), value=1.0)      # white above and left of each
    blank = torch.ones((rows * cols - img.shape[0], *tiles.shape[1:]), dtype=tiles.dtype)
    grid = rearrange(torch.cat([tiles, blank]), "(r c) ch h w -> (r h) (c w) ch", r=rows)
    return torch.nn.functional.pad(grid, (0, 0, 0, padding, 0, padding), value=1.0)  # and below/right of the grid


def show_images(x: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, figsize=None):
    """Plot a batch of images (B, C, H, W) in [-1, 1] as a grid with matplotlib; returns the Axes."""
    import matplotlib.pyplot as plt

    grid = make_grid(x, nrow=nrow)
    if ax is None:
        rows = -(-x.shape[0] // nrow)
        _, ax = plt.subplots(figsize=figsize or (min(nrow, x.shape[0]) * 0.9, rows * 0.9))
    ax.imshow(grid.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax
