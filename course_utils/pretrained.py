"""Shipped checkpoints that let lessons 04 and 06–09 skip training, and the one command that makes them.

Each checkpoint is a :func:`course_utils.checkpoints.save_checkpoint` file in ``course_utils/assets/`` with a
``.sha256`` sidecar (checked before ``torch.load(weights_only=True)``) and a ``.json`` record of the
exact command, seed, machine, wall time and the quality figures measured right after training.

Regenerate them (every recipe, or the named ones) with::

    python -m course_utils.pretrained build            # all recipes
    python -m course_utils.pretrained build ddpm16     # lesson 04's unconditional model only
    python -m course_utils.pretrained build clip16 text16   # lesson 08's CLIP, then its text-to-image U-Net
    python -m course_utils.pretrained list             # what is shipped, with its record

``load_pretrained("ddpm16")`` / ``load_pretrained("cfg16")`` return ``(model, diffusion, meta)``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .checkpoints import load_checkpoint, save_checkpoint, sidecar_path
from .models import UNet, UNetConfig
from .train import TrainConfig, train
from .validation import check_clip_x0

__all__ = ["Recipe", "RECIPES", "OTHER_BUILDS", "ALL_NAMES", "checkpoint_path", "load_pretrained", "build",
           "BUILD_COMMAND"]

ASSETS = Path(__file__).resolve().parent / "assets"
BUILD_COMMAND = "python -m course_utils.pretrained build"


@dataclass(frozen=True)
class Recipe:
    """How one shipped checkpoint is trained (16 px FashionMNIST, linear schedule, T = 1000)."""

    name: str
    lessons: tuple[str, ...]
    description: str
    model: UNetConfig
    train: TrainConfig
    image_size: int = 16
    T: int = 1000
    eval_per_class: int = 50          # samples per class drawn for the recorded figures
    notebook: str | None = None       # trained by running this notebook (repo-relative) in full mode
    notebook_output: str = "assessment_model.pt"   # the checkpoint that notebook writes beside itself
    extra: dict = field(default_factory=dict)


def _unet(**kw) -> UNetConfig:
    return UNetConfig(channels=(32, 64), **kw)


def _train(steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.999, seed=0,
                       ema_warmup=False, amp="off", progress=True, log_every=50)   # as the shipped checkpoints
                                                                                    # were made (fp32)


RECIPES: dict[str, Recipe] = {
    "ddpm16": Recipe(
        name="ddpm16", lessons=("04",),
        description="unconditional U-Net (channels (32, 64)) for lesson 04's sampling experiments",
        model=_unet(), train=_train(3000)),
    "cfg16": Recipe(
        name="cfg16", lessons=("06", "07"),
        description="class-conditional U-Net with a learned null class (p_uncond 0.1) for lessons 06/07, "
                    "trained by lesson 07's solution code (its notebook run in full mode)",
        # documents what the notebook's full mode runs: the same trainer, its cfg_loss applying the
        # context mask (p = 0.1) itself, hence p_uncond = 0 for train()
        # 1200 steps with an EMA decay of 0.995 (a ~200-step window) fit the 15-minute CPU budget (857.6 s on 2 threads);
        # 0.999 would keep a third of the untrained weights after 1200 steps (the lesson explains why)
        model=_unet(num_classes=10), train=dataclasses.replace(_train(1200), p_uncond=0.0, ema_decay=0.995),
        notebook="solutions/07_final_assessment/07_final_assessment.ipynb"),
    "cfg32": Recipe(
        name="cfg32", lessons=("09",),
        description="class-conditional U-Net (channels (32, 64, 64)) trained directly on 32 px images with the "
                    "cascade's training compute (lesson 09's pixel-space baseline)",
        # 950 steps of 128 at 32 px cost what the cascade's training did: cfg16's 1200 steps of 128 at 16 px plus
        # sr32's 2000 steps of 64 at 32 px, converted with one machine's per-step times (AMD EPYC, 2 threads,
        # 2026-12-04: 0.25 s, 0.53 s and 1.46 s per step): (1200 × 0.25 + 2000 × 0.53) / 1.46 ≈ 930. The shipped sr32
        # now trains 3500 steps (the residual model): a matched cfg32 would need ≈ 1475 steps; this one was not
        # rebuilt, so it has about 64 % of today's cascade compute (sharper32.json's note says so)
        model=UNetConfig(channels=(32, 64, 64), num_classes=10), image_size=32,
        train=dataclasses.replace(_train(950), p_uncond=0.1, ema_decay=0.995), eval_per_class=20),
}


# Lesson 08's models are not U-Net recipes: their own modules train, measure and record them
# (name → (module, builder function, lessons, description)).
OTHER_BUILDS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "clip16": ("course_utils.clip", "build_clip16", ("08",),
               "tiny CLIP (CNN image tower, transformer text tower) on captioned 16 px FashionMNIST; "
               "load with course_utils.clip.load_clip()"),
    "text16": ("course_utils.text2image", "build_text16", ("08",),
               "text-conditioned U-Net reading the frozen clip16 (cross-attention + pooled embedding); "
               "load with course_utils.text2image.load_text2image()"),
    "sr32": ("course_utils.cascade", "build_sr32", ("09",),
             "16 → 32 px super-resolution U-Net with noise-conditioning augmentation (the cascade's second stage "
             "after cfg16); load with course_utils.cascade.load_sr32()"),
    "ae32": ("course_utils.latent", "build_ae32", ("09",),
             "32 × 32 × 1 ↔ 4 × 8 × 8 autoencoder for latent diffusion; load with course_utils.latent.load_autoencoder()"),
    "ldm32": ("course_utils.latent", "build_ldm32", ("09",),
              "class-conditional DDPM on ae32's scaled latents; load with course_utils.latent.load_latent()"),
}
ALL_NAMES = (*RECIPES, *OTHER_BUILDS)


def _check_name(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown checkpoint {name!r}; the shipped ones are {sorted(ALL_NAMES)}"
                         + (" (this one is not a U-Net recipe: see OTHER_BUILDS)." if name in OTHER_BUILDS else "."))
    return RECIPES[name]


def checkpoint_path(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Where checkpoint ``name`` lives: ``course_utils/assets/<name>.pt`` unless ``directory`` is given."""
    if name not in OTHER_BUILDS:
        _check_name(name)
    return (Path(directory) if directory is not None else ASSETS) / f"{name}.pt"


def _evaluate_other(name: str, directory=None) -> dict:
    """The figures of lessons 08's and 09's shipped models, recomputed from the files (the code the build records)."""
    from .data import load_fashion_mnist

    if name == "sr32":
        from .cascade import evaluate_sr, load_sr32
        model, diffusion, _ = load_sr32(path=checkpoint_path(name, directory))
        return evaluate_sr(model, diffusion)
    if name == "ae32":
        from .latent import evaluate_autoencoder, load_autoencoder
        return evaluate_autoencoder(load_autoencoder(path=checkpoint_path(name, directory))[0])
    if name == "ldm32":
        raise ValueError("ldm32's figures are lesson 09's comparison table: run `python -m course_utils.sharper "
                         "evaluate` (it samples every 32 px method the same way).")
    if name == "clip16":
        from .clip import evaluate_clip, load_clip
        test = load_fashion_mnist(train=False, image_size=16)
        return evaluate_clip(load_clip(path=checkpoint_path(name, directory)), test.images, test.labels)
    from .text2image import evaluate_text2image, load_text2image
    model, diffusion, clip, _ = load_text2image(path=checkpoint_path(name, directory))
    return evaluate_text2image(model, diffusion, clip)


def _build_other(name: str, directory, progress: bool, evaluate_after: bool, steps: int | None) -> Path:
    import importlib

    module, fn, _, _ = OTHER_BUILDS[name]
    return getattr(importlib.import_module(module), fn)(directory, progress=progress, evaluate_after=evaluate_after,
                                                       steps=steps)


def load_pretrained(name: str, device: str | torch.device = "cpu", directory: str | os.PathLike | None = None,
                    clip_x0: bool | None = None) -> tuple[UNet, "object", dict]:
    """Load a shipped checkpoint after checking its sha256.

    Args:
        name: a key of :data:`RECIPES` ("ddpm16" for lesson 04, "cfg16" for lessons 06 and 07).
        device: "cpu", "cuda", "auto", …
        directory: look there instead of the package's assets folder.
        clip_x0: whether the schedule's samplers clip x̂0 to [-1, 1]; ``None`` (default): as the checkpoint
            stores it, which for the shipped ``ddpm16`` and ``cfg16`` is ``True`` (they store nothing and get
            :data:`course_utils.checkpoints.DEFAULT_CLIP_X0`); see :func:`course_utils.checkpoints.load_checkpoint`.
    Returns:
        (EMA model in eval mode, its GaussianDiffusion, the recorded meta dict).
    Raises:
        ValueError: unknown name, or the file does not match its sha256 (changed or corrupted).
        FileNotFoundError: the checkpoint is missing; the message gives the command that rebuilds it.
    """
    check_clip_x0(clip_x0)
    path = checkpoint_path(name, directory)
    if not path.exists():
        raise FileNotFoundError(f"the checkpoint {path} is missing; rebuild it with `{BUILD_COMMAND} {name}` "
                                "(or reinstall course_utils, which ships it).")
    try:
        return load_checkpoint(path, device, clip_x0=clip_x0)
    except ValueError as err:
        raise ValueError(f"{err} Rebuild it with `{BUILD_COMMAND} {name}`.") from None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@torch.inference_mode()
def evaluate(model: UNet, diffusion, image_size: int, per_class: int, seed: int = 0) -> dict:
    """Quality figures recorded beside a checkpoint: Fréchet distance (and class agreement if conditional).

    Samples with DDIM-50 (η = 0) from a fixed seed: unconditional models with and without clipping x̂0
    to [-1, 1]; conditional models with clipping, at guidance w = 0, 1, 2, 3.
    """
    from .data import load_fashion_mnist
    from .metrics import class_agreement, class_agreement_per_class, frechet_distance

    n = 10 * per_class
    real = load_fashion_mnist(train=False, image_size=image_size, limit=max(n, 1000)).images
    out: dict = {"sampler": "DDIM-50, eta 0", "samples": n, "real_test_images": real.shape[0]}
    shape = (n, model.config.in_channels, image_size, image_size)
    if model.config.num_classes is None:
        for clip in (False, True):
            g = torch.Generator().manual_seed(seed)
            x = diffusion.ddim_sample_loop(model, shape, num_steps=50, generator=g, progress=False, clip_x0=clip)
            out["frechet_distance" + ("_clip_x0" if clip else "")] = round(frechet_distance(real, x), 4)
        return out
    y = torch.arange(10).repeat_interleave(per_class)
    out["per_w"] = {}
    for w in (0.0, 1.0, 2.0, 3.0):
        g = torch.Generator().manual_seed(seed)
        x = diffusion.ddim_sample_loop(model, shape, num_steps=50, y=y, w=w, generator=g, progress=False,
                                       clip_x0=True)
        out["per_w"][str(w)] = {
            "class_agreement": round(class_agreement(x, y), 4),
            "class_agreement_per_class": {str(k): round(v, 4) for k, v in class_agreement_per_class(x, y).items()},
            "frechet_distance": round(frechet_distance(real, x), 4),
        }
    return out


def build(name: str, directory: str | os.PathLike | None = None, progress: bool = True,
          evaluate_after: bool = True, steps: int | None = None) -> Path:
    """Train recipe ``name`` from scratch, then write ``<name>.pt``, its ``.sha256`` and a ``.json`` record.

    ``steps`` overrides the recipe's step count for a quick trial build (recorded in the command).
    """
    from .data import load_fashion_mnist
    from .diffusion import GaussianDiffusion
    from .schedules import linear_betas
    from .utils import set_seed

    if name in OTHER_BUILDS:
        return _build_other(name, directory, progress, evaluate_after, steps)
    r = _check_name(name)
    if r.notebook is not None:
        return _build_from_notebook(r, directory, evaluate_after, steps)
    set_seed(r.train.seed)
    data = load_fashion_mnist(train=True, image_size=r.image_size)
    model = UNet(r.model)
    diffusion = GaussianDiffusion(linear_betas(r.T))
    cfg = TrainConfig(**{**asdict(r.train), "progress": progress, **({"steps": steps} if steps else {})})
    result = train(model, diffusion, data, cfg)
    ema = result.ema_model.cpu().eval()
    meta = {
        "name": name, "lessons": list(r.lessons), "description": r.description,
        "command": f"{BUILD_COMMAND} {name}" + (f" --steps {steps}" if steps else ""), "image_size": r.image_size, "T": r.T, "schedule": "linear",
        "model_config": r.model.to_dict(), "train_config": asdict(cfg),
        "training_images": int(data.images.shape[0]),
        "wall_time_s": round(result.wall_time, 1), "images_per_second": round(result.images_per_second, 1),
        "final_loss_mean_last_100": round(sum(result.losses[-100:]) / len(result.losses[-100:]), 5),
        "device": str(next(result.model.parameters()).device), "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} logical cpus", "torch": torch.__version__,
        "python": platform.python_version(), "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if evaluate_after:
        t0 = time.perf_counter()
        meta["evaluation"] = evaluate(ema, diffusion.cpu(), r.image_size, r.eval_per_class)
        meta["evaluation"]["wall_time_s"] = round(time.perf_counter() - t0, 1)
    path = save_checkpoint(checkpoint_path(name, directory), ema, diffusion.cpu(), meta)
    meta["sha256"] = sidecar_path(path).read_text().split()[0]
    meta["file_bytes"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def _build_from_notebook(r: Recipe, directory, evaluate_after: bool, steps: int | None) -> Path:
    """Run the recipe's solution notebook with COURSE_MODE=full; ship the checkpoint it writes."""

    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    if steps:
        raise ValueError(f"--steps does not apply to {r.name!r}: its notebook {r.notebook} sets its own steps.")
    repo = Path(__file__).resolve().parents[1]
    nb_path = repo / r.notebook
    if not nb_path.exists():
        raise FileNotFoundError(f"{nb_path} is missing: building {r.name!r} needs a course checkout "
                                "(the recipe runs that solution notebook).")
    produced = nb_path.parent / r.notebook_output
    produced.unlink(missing_ok=True)
    env_before = dict(os.environ)
    os.environ["COURSE_MODE"] = "full"
    os.environ["COURSE_ASSESSMENT_COMMAND"] = f"{BUILD_COMMAND} {r.name}"
    t0 = time.perf_counter()
    try:
        nb = nbformat.read(nb_path, as_version=4)
        ExecutePreprocessor(timeout=None, kernel_name="python3", allow_errors=True).preprocess(
            nb, {"metadata": {"path": str(nb_path.parent)}})
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    notebook_wall = time.perf_counter() - t0
    errors = [f"cell {i}: {o.get('ename')}: {str(o.get('evalue'))[:200]}" for i, c in enumerate(nb.cells)
              if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if not produced.exists():
        raise RuntimeError(f"{nb_path} ran in full mode but wrote no {produced.name}.")
    model, diffusion, nb_meta = load_checkpoint(produced)
    meta = {
        **nb_meta, "name": r.name, "lessons": list(r.lessons), "description": r.description,
        "command": f"{BUILD_COMMAND} {r.name}",
        "made_by": f"{r.notebook} executed with COURSE_MODE=full",
        "notebook_wall_time_s": round(notebook_wall, 1), "image_size": r.image_size,
        "notebook_errors": errors,
        "machine": f"{platform.machine()} {os.cpu_count()} logical cpus", "torch": torch.__version__,
        "python": platform.python_version(), "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if evaluate_after:
        t1 = time.perf_counter()
        meta["evaluation"] = evaluate(model, diffusion, r.image_size, r.eval_per_class)
        meta["evaluation"]["wall_time_s"] = round(time.perf_counter() - t1, 1)
    path = save_checkpoint(checkpoint_path(r.name, directory), model, diffusion, meta)
    produced.unlink(missing_ok=True)
    sidecar_path(produced).unlink(missing_ok=True)
    meta["sha256"] = sidecar_path(path).read_text().split()[0]
    meta["file_bytes"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def reevaluate(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Recompute the recorded quality figures of an existing checkpoint (weights unchanged, new sha256)."""
    r = _check_name(name)
    path = checkpoint_path(name, directory)
    model, diffusion, meta = load_checkpoint(path)
    t0 = time.perf_counter()
    meta["evaluation"] = evaluate(model, diffusion, r.image_size, r.eval_per_class)
    meta["evaluation"]["wall_time_s"] = round(time.perf_counter() - t0, 1)
    meta.pop("sha256", None)
    meta.pop("file_bytes", None)
    save_checkpoint(path, model, diffusion, meta)
    meta["sha256"] = sidecar_path(path).read_text().split()[0]
    meta["file_bytes"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_utils.pretrained", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="train and write the named checkpoints (default: all)")
    b.add_argument("names", nargs="*", help=f"checkpoints to build, of {list(ALL_NAMES)} (default: all, in that "
                                            f"order: text16 needs clip16)")
    b.add_argument("--out-dir", default=None, help="write there instead of course_utils/assets/")
    b.add_argument("--no-progress", action="store_true")
    b.add_argument("--no-eval", action="store_true", help="skip the quality figures (faster)")
    b.add_argument("--steps", type=int, default=None, help="override the recipe's steps (trial builds only)")
    sub.add_parser("list", help="print each recipe and the record of its shipped checkpoint")
    e = sub.add_parser("evaluate", help="recompute the recorded quality figures (weights unchanged; for clip16 and "
                                        "text16 printed, the record kept as built)")
    e.add_argument("names", nargs="+")
    e.add_argument("--dir", default=None)
    a = p.parse_args(argv)
    if a.cmd == "evaluate":
        for name in a.names:
            if name in OTHER_BUILDS:                  # lessons 08, 09: recompute and print (the record stays as built)
                try:
                    figures = _evaluate_other(name, a.dir)
                except ValueError as err:             # ldm32: its figures come from another command
                    p.error(str(err))
                print(f"{name}: {json.dumps(figures)}")
                continue
            path = reevaluate(name, a.dir)
            print(f"{path}: {json.dumps(json.loads(path.with_suffix('.json').read_text())['evaluation'])}")
        return 0
    if a.cmd == "list":
        for name, r in RECIPES.items():
            rec = checkpoint_path(name).with_suffix(".json")
            info = json.loads(rec.read_text()) if rec.exists() else {}
            print(f"{name} (lessons {', '.join(r.lessons)}): {r.description}")
            print(f"  shipped: {'yes' if info else 'no'}; wall time {info.get('wall_time_s', '–')} s on "
                  f"{info.get('device', '–')}; command `{info.get('command', BUILD_COMMAND + ' ' + name)}`")
        for name, (_, _, lessons, description) in OTHER_BUILDS.items():
            rec = checkpoint_path(name).with_suffix(".json")
            info = json.loads(rec.read_text()) if rec.exists() else {}
            print(f"{name} (lessons {', '.join(lessons)}): {description}")
            print(f"  shipped: {'yes' if info else 'no'}; wall time {info.get('wall_time_s', '–')} s; "
                  f"command `{info.get('command', BUILD_COMMAND + ' ' + name)}`")
            if info.get("evaluation"):
                print(f"  evaluation: {json.dumps(info['evaluation'])}")
        return 0
    names = a.names or list(ALL_NAMES)
    for name in names:
        if name not in OTHER_BUILDS:
            _check_name(name)
    for name in names:
        path = build(name, a.out_dir, progress=not a.no_progress, evaluate_after=not a.no_eval, steps=a.steps)
        rec = json.loads(path.with_suffix(".json").read_text())
        print(f"wrote {path} ({rec['file_bytes'] / 1e6:.2f} MB) in {rec['wall_time_s']} s of training; "
              f"evaluation: {json.dumps(rec.get('evaluation', {}))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
