"""Files handed in beside the notebook: lesson 07's trained checkpoint, verified before anything runs.

Grading never retrains. The student hands in ``assessment_model.pt`` with the notebook (nbgrader's layout:
``<student>/<lesson>/assessment_model.pt``; a flat folder: ``<student>.pt`` beside ``<student>.ipynb``).
Here, in the trusted process, the file is checked: a regular file of bounded size, loadable with
``weights_only=True`` as a course checkpoint of a class-conditional U-Net within the lesson's parameter
budget, and not a copy of a checkpoint the course ships. Only then is it copied into the sandbox, with a
sha256 sidecar written here, where the student's sampler draws the samples that the judge classifies.
After judging, samples that are near-copies of training images are flagged for review.
"""
from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Handin", "find_checkpoint", "verify_checkpoint", "near_copies_of_training_images"]

MAX_CHECKPOINT_BYTES = 50_000_000
CHECKPOINT_NAME = "assessment_model.pt"


@dataclass
class Handin:
    path: Path | None
    ok: bool = False
    sha256: str | None = None
    problems: list[str] = field(default_factory=list)      # each scores the assessment 0
    flags: list[str] = field(default_factory=list)         # for review only


def find_checkpoint(notebook: Path, lesson: str) -> Path | None:
    """The checkpoint handed in with ``notebook``, or None."""
    for p in (notebook.parent / CHECKPOINT_NAME if notebook.parent.name == lesson else None,
              notebook.with_suffix(".pt")):
        if p is not None and os.path.lexists(p):
            return p
    return None


def _shipped_state_dicts() -> dict[str, dict]:
    import torch

    from ..pretrained import RECIPES, checkpoint_path
    out = {}
    for name in RECIPES:
        p = checkpoint_path(name)
        if p.exists():
            out[name] = torch.load(p, weights_only=True, map_location="cpu")["state_dict"]
    return out


def verify_checkpoint(path: Path | None, max_parameters: int) -> Handin:
    """Check a handed-in checkpoint in the trusted process (see the module docstring)."""
    import torch

    from ..checkpoints import sha256_file
    from ..models import UNet, UNetConfig

    h = Handin(path)
    if path is None:
        h.problems.append(f"no {CHECKPOINT_NAME} was handed in with the notebook: the assessment grades the "
                          "trained checkpoint (grading never retrains); hand in the file the training cell saves")
        return h
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        h.problems.append(f"{path.name} is not a regular file")
        return h
    if st.st_size > MAX_CHECKPOINT_BYTES:
        h.problems.append(f"{path.name} is {st.st_size / 1e6:.0f} MB (limit {MAX_CHECKPOINT_BYTES / 1e6:.0f} MB)")
        return h
    h.sha256 = sha256_file(path)
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
        config = UNetConfig.from_dict(ckpt["model_config"])
        model = UNet(config)
        model.load_state_dict(ckpt["state_dict"])
    except Exception as err:  # noqa: BLE001 - anything that is not a course checkpoint
        h.problems.append(f"{path.name} is not a course checkpoint of a U-Net ({type(err).__name__}: "
                          f"{str(err)[:160]})")
        return h
    if config.num_classes is None:
        h.problems.append(f"{path.name} holds an unconditional model (num_classes=None); the assessment needs "
                          "the class-conditional model of build_model()")
    n = sum(p.numel() for p in model.parameters())
    if n > max_parameters:
        h.problems.append(f"{path.name} has {n:,} parameters, over the budget of {max_parameters:,}")
    mine = ckpt["state_dict"]
    for name, shipped in _shipped_state_dicts().items():
        if shipped.keys() != mine.keys() or any(shipped[k].shape != mine[k].shape for k in mine):
            continue
        a = torch.cat([mine[k].flatten().double() for k in mine])
        b = torch.cat([shipped[k].flatten().double() for k in mine])
        if torch.equal(a, b):
            h.problems.append(f"{path.name} is a copy of the course's shipped checkpoint {name!r}, not a model "
                              "trained by this notebook")
        else:
            cos = float(a @ b / (a.norm() * b.norm()).clamp_min(1e-12))
            if cos > 0.999:
                h.flags.append(f"review the checkpoint: its weights are {cos:.5f} similar (cosine) to the shipped "
                               f"{name!r} — fine-tuned from it rather than trained?")
    h.ok = not h.problems
    return h


def install(handin: Handin, folder: Path) -> None:
    """Copy a verified checkpoint into the sandbox's working folder, with a sidecar written here."""
    from ..checkpoints import write_sha256
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / CHECKPOINT_NAME
    shutil.copyfile(handin.path, dst)
    write_sha256(dst)


def near_copies_of_training_images(samples, threshold_rms: float = 0.05, fraction: float = 0.2) -> str | None:
    """A review flag when at least ``fraction`` of ``samples`` (N, 1, 16, 16) lie within an RMS distance of
    ``threshold_rms`` of some 16 px training image (a sampler that returns data, or a memorising model)."""
    import torch

    from ..data import load_fashion_mnist
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4 or samples.shape[-1] != 16:
        return None
    train = load_fashion_mnist(train=True, image_size=16).images.reshape(-1, 256).float()
    x = samples.reshape(samples.shape[0], -1).float().clamp(-1, 1)
    best = torch.full((x.shape[0],), float("inf"))
    for chunk in train.split(10_000):
        best = torch.minimum(best, torch.cdist(x, chunk).min(dim=1).values)
    rms = best / 16.0
    close = int((rms < threshold_rms).sum())
    if close >= fraction * x.shape[0]:
        return (f"review the samples: {close} of {x.shape[0]} are near-copies of training images (RMS distance "
                f"< {threshold_rms}); a sampler that returns data, or a model that memorised it?")
    return None
