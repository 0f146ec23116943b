"""Lesson 09's comparison: four ways to a 32 px FashionMNIST sample, measured the same way.

(a) ``bicubic`` — the 16 px base model ``cfg16`` (guidance w), upsampled bicubically;
(b) ``cascade`` — ``cfg16`` then the super-resolution model ``sr32`` (:mod:`course_utils.cascade`);
(c) ``latent`` — the DDPM on ``ae32``'s latents, decoded (:mod:`course_utils.latent`);
(d) ``pixel32`` — ``cfg32``, a U-Net trained directly on 32 px images for the training time of the cascade's
first version (about 64 % of today's: the record's ``note``).

For each: ``n`` samples (an equal number per class) from one seed with DDIM-20 per stage, their Fréchet
distance to the 10,000 real test images at 32 px in two feature spaces, the classifier's class agreement, and
the seconds per 1,000 images on this machine. The two feature spaces:

* the **sharp classifier** (``course_utils/assets/fashion_classifier_sharp.pt``, :data:`TRAIN_SHARP_COMMAND`):
  the course classifier's network trained on 28 and 32 px images only. It has never seen a blurred image, so
  blur moves its features — the distance that can tell a sharp 32 px image from an upsampled 16 px one;
* the **course classifier** of :mod:`course_utils.metrics`, trained with 40 % of its images blurred down to
  16 px on purpose (it scores the 16 px samples of lessons 04–08), so its features barely change with blur:
  reported for comparison, and for the class agreement. Then the augmentation sweep: the same base
samples super-resolved at each level of :data:`course_utils.cascade.AUG_SWEEP`, at each guidance weight of
:data:`AUG_SWEEP_WS`. Then the **guidance sweep** (:data:`GUIDANCE_SWEEP`): (a) and (b) again at each w, the same
``n`` labels and seeds — what the second stage adds depends on how far the base samples are from real ones, and
guidance moves them (more of the class, less of the data's spread: Ho & Salimans 2021).

Command line::

    python -m course_utils.sharper evaluate          # measure, print, write course_utils/assets/sharper32.json
    python -m course_utils.sharper show              # print the shipped record as a table
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

__all__ = ["METHODS", "GUIDANCE_SWEEP", "AUG_SWEEP_WS", "RECORD", "EVALUATE_COMMAND", "SHARP_CLASSIFIER", "TRAIN_SHARP_COMMAND", "load_sharp_classifier", "evaluate", "load_record",
           "augmentation_sweeps", "table_markdown", "main"]

RECORD = Path(__file__).resolve().parent / "assets" / "sharper32.json"
SHARP_CLASSIFIER = Path(__file__).resolve().parent / "assets" / "fashion_classifier_sharp.pt"
TRAIN_SHARP_COMMAND = ("python scripts/train_classifier.py --size-probs 0,0.5,0.5 --epochs 3 --threads 1 "
                       "--out course_utils/assets/fashion_classifier_sharp.pt")
EVALUATE_COMMAND = "python -m course_utils.sharper evaluate"
# What the figures cannot say by themselves (written into the record, shown in BENCHMARKS.md)
RECORD_NOTE = ("sr32 is the residual model (Li et al. 2022: it denoises (x − upsample(low)) / 0.1453), 3,500 steps "
               "of 64 on 2 threads (1,995 s, light tests beside it). cfg32 was matched to the first sr32's 2,000 "
               "steps, the cascade's compute at the time; with 3,500 super-resolution steps a matched cfg32 would "
               "need about 1,475 steps ((1200 × 0.25 + 3500 × 0.53) / 1.46, per-step seconds on the AMD EPYC VM), "
               "so (d) had about 64 % of the cascade's training compute")
GUIDANCE_SWEEP = (1.0, 1.5, 2.0, 3.0, 5.0)  # the guidance weights of (a) and (b) the sweep measures
AUG_SWEEP_WS = (1.0, 2.0, 3.0, 5.0)       # the guidance weights the augmentation sweep runs at
METHODS = {
    "bicubic": "(a) cfg16 16 px samples, bicubic ×2",
    "cascade": "(b) cascade: cfg16 → sr32",
    "latent": "(c) latent diffusion: ldm32 on ae32's 4 × 8 × 8 latents",
    "pixel32": "(d) cfg32, pixel space at 32 px",
}


def load_sharp_classifier(device="cpu"):
    """The sharpness-aware feature network (sha256-checked): see the module docstring."""
    from .metrics import load_classifier

    if not SHARP_CLASSIFIER.exists():
        raise FileNotFoundError(f"{SHARP_CLASSIFIER} is missing; train it with `{TRAIN_SHARP_COMMAND}`.")
    return load_classifier(SHARP_CLASSIFIER, device)


def _labels(n: int) -> torch.Tensor:
    if n % 10:
        raise ValueError(f"n must be a multiple of 10 (the same number of samples per class); got {n}.")
    return torch.arange(10).repeat_interleave(n // 10)


def _timed(fn, labels: torch.Tensor, batch: int) -> tuple[torch.Tensor, float]:
    out, t0 = [], time.perf_counter()
    for i in range(0, labels.shape[0], batch):
        out.append(fn(labels[i:i + batch], i))
    return torch.cat(out), time.perf_counter() - t0


@torch.inference_mode()
def evaluate(n: int = 1000, sweep_n: int = 500, w: float = 2.0, num_steps: int = 20, batch: int = 250,
             seed: int = 0, progress: bool = True, sweep_only: bool = False, guidance_ws=GUIDANCE_SWEEP,
             aug_ws=AUG_SWEEP_WS) -> dict:
    """Measure the four methods and the augmentation sweep (see the module docstring); returns the record."""
    from . import cascade, latent
    from .data import load_fashion_mnist
    from .metrics import class_agreement, frechet_distance
    from .pretrained import load_pretrained

    def say(msg):
        if progress:
            print(msg, flush=True)

    real = load_fashion_mnist(train=False, image_size=32).images
    sharp = load_sharp_classifier()
    y = _labels(n)
    rec: dict = {"samples": n, "w": w, "sampler": f"DDIM-{num_steps} per stage, eta 0", "seed": seed,
                 "real_test_images": int(real.shape[0]), "methods": {}}

    def fd_pair(x, labels):
        return {"frechet_distance": round(frechet_distance(real, x, sharp), 3),
                "frechet_distance_course_classifier": round(frechet_distance(real, x), 3),
                "class_agreement": round(class_agreement(x, labels), 4)}

    def score(name: str, x: torch.Tensor, seconds: float, **extra):
        rec["methods"][name] = {"description": METHODS[name], **fd_pair(x, y),
                                "seconds_per_1000": round(seconds * 1000 / n, 1), **extra}
        say(f"{name}: {rec['methods'][name]}")

    base_model, base_diffusion, _ = load_pretrained("cfg16")
    sr, sr_diffusion, sr_meta = cascade.load_sr32()

    def base_at(gw):
        def fn(labels, i):
            g = torch.Generator().manual_seed(seed + i)
            return base_diffusion.ddim_sample_loop(base_model, (labels.shape[0], 1, 16, 16), num_steps=num_steps,
                                                   y=labels, w=gw, generator=g, progress=False, clip_x0=True).clamp(-1, 1)
        return fn

    def sr_at(low, level):
        def fn(labels, i):
            return cascade.super_resolve(sr, sr_diffusion, low[i:i + labels.shape[0]], level, num_steps, seed=seed + i)
        return fn

    keep = torch.arange(0, n, max(1, n // sweep_n))[:sweep_n]          # every (n / sweep_n)-th: all classes alike
    lows, seconds = {}, {}
    for gw in dict.fromkeys((w, *aug_ws, *guidance_ws)):                 # the table's w first, each w once
        lows[gw], seconds[gw] = _timed(base_at(gw), y, batch)
    rec["augmentation_sweep"] = {"samples": int(keep.numel()), "per_level": {}}
    rec["augmentation_sweep_by_w"] = {}
    for gw in dict.fromkeys((w, *aug_ws)):
        per = {}
        for level in cascade.AUG_SWEEP:
            xs = torch.cat([cascade.super_resolve(sr, sr_diffusion, lows[gw][keep[i:i + batch]], level, num_steps,
                                                  seed=seed + i) for i in range(0, keep.numel(), batch)])
            per[str(level)] = fd_pair(xs, y[keep])
            say(f"w = {gw}, augmentation {level}: {per[str(level)]}")
        if gw == w:
            rec["augmentation_sweep"]["per_level"] = per
        else:
            rec["augmentation_sweep_by_w"][str(gw)] = per
    if sweep_only:
        return rec
    t0 = time.perf_counter()
    up = cascade.upsample(lows[w])
    score("bicubic", up, seconds[w] + time.perf_counter() - t0)
    high, t_sr = _timed(sr_at(lows[w], cascade.LESSON_AUG), y, batch)
    score("cascade", high, seconds[w] + t_sr, aug_level=cascade.LESSON_AUG)

    rec["guidance_sweep"] = {"samples": n, "aug_level": cascade.LESSON_AUG, "per_w": {}}
    for gw in guidance_ws:
        if gw == w:
            row = {k: {f: rec["methods"][k][f] for f in ("frechet_distance", "frechet_distance_course_classifier",
                                                           "class_agreement")} for k in ("bicubic", "cascade")}
        else:
            row = {"bicubic": fd_pair(cascade.upsample(lows[gw]), y),
                   "cascade": fd_pair(_timed(sr_at(lows[gw], cascade.LESSON_AUG), y, batch)[0], y)}
        row["cascade_below_bicubic"] = round(1 - row["cascade"]["frechet_distance"] / row["bicubic"]["frechet_distance"], 4)
        rec["guidance_sweep"]["per_w"][str(gw)] = row
        say(f"guidance w = {gw}: {row}")

    ae, ldm, ldm_diffusion, scale, _ = latent.load_latent()

    def lat(labels, i):
        g = torch.Generator().manual_seed(seed + i)
        z = latent.sample_latents(ldm, ldm_diffusion, labels, w, num_steps, g, latent_shape=(ae.config.latent_channels, 8, 8))
        return latent.decode_latents(ae, z, scale)

    x, t = _timed(lat, y, batch)
    score("latent", x, t)

    pix, pix_diffusion, _ = load_pretrained("cfg32")

    def p32(labels, i):
        g = torch.Generator().manual_seed(seed + i)
        return pix_diffusion.ddim_sample_loop(pix, (labels.shape[0], 1, 32, 32), num_steps=num_steps, y=labels, w=w,
                                              generator=g, progress=False, clip_x0=True).clamp(-1, 1)

    x, t = _timed(p32, y, batch)
    score("pixel32", x, t)

    rec["training_seconds"] = _training_seconds()
    rec["note"] = RECORD_NOTE
    rec.update({"command": EVALUATE_COMMAND, "threads": torch.get_num_threads(),
                "machine": f"{platform.machine()} {os.cpu_count()} logical cpus, {_cpu_name()}",
                "torch": torch.__version__,
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    return rec


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _training_seconds() -> dict:
    """The training wall times the shipped records state (cfg16's is its notebook's)."""
    from .pretrained import ASSETS

    out = {}
    for name in ("cfg16", "sr32", "ae32", "ldm32", "cfg32"):
        p = ASSETS / f"{name}.json"
        if p.exists():
            out[name] = json.loads(p.read_text()).get("wall_time_s")
    return out


def load_record(path: str | os.PathLike | None = None) -> dict:
    """The shipped comparison (``course_utils/assets/sharper32.json``)."""
    p = RECORD if path is None else Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} is missing; measure it with `{EVALUATE_COMMAND}`.")
    return json.loads(p.read_text())


def augmentation_sweeps(rec: dict | None = None) -> dict[float, dict]:
    """The record's augmentation sweeps by guidance weight, w ascending: ``{w: {"a": {"frechet_distance": …}}}``
    (the table's w, ``augmentation_sweep``, beside the others, ``augmentation_sweep_by_w``)."""
    rec = load_record() if rec is None else rec
    sweeps = {float(rec.get("w", 2.0)): rec.get("augmentation_sweep", {}).get("per_level", {}),
              **{float(k): v for k, v in rec.get("augmentation_sweep_by_w", {}).items()}}
    return {k: sweeps[k] for k in sorted(sweeps) if sweeps[k]}


def table_markdown(rec: dict | None = None) -> str:
    """The comparison as a Markdown table (BENCHMARKS.md and lesson 09 show it)."""
    rec = load_record() if rec is None else rec
    rows = ["| method | Fréchet distance, sharp classifier ↓ | … course classifier ↓ | class agreement | "
            "s / 1,000 images |", "|---|---:|---:|---:|---:|"]
    for name, m in rec["methods"].items():
        rows.append(f"| {m['description']} | {m['frechet_distance']:.2f} | "
                    f"{m.get('frechet_distance_course_classifier', float('nan')):.2f} | {100 * m['class_agreement']:.1f} % | "
                    f"{m['seconds_per_1000']:.0f} |")
    sweeps = augmentation_sweeps(rec)                                   # the lowest distance of a row in bold
    if sweeps:
        levels = list(next(iter(sweeps.values())))
        rows += ["", "| augmentation level a | " + " | ".join(levels) + " |", "|---|" + "---:|" * len(levels)]
        for gw, sweep in sweeps.items():
            best = min(levels, key=lambda a: sweep[a]["frechet_distance"])
            rows += [f"| w = {gw}: Fréchet distance, sharp classifier | "
                     + " | ".join(f"**{sweep[a]['frechet_distance']:.2f}**" if a == best else
                                  f"{sweep[a]['frechet_distance']:.2f}" for a in levels) + " |",
                     f"| w = {gw}: … course classifier | "
                     + " | ".join(f"{sweep[a].get('frechet_distance_course_classifier', float('nan')):.2f}"
                                  for a in levels) + " |"]
    per_w = rec.get("guidance_sweep", {}).get("per_w", {})
    if per_w:
        rows += ["", "| guidance w of the base stage | " + " | ".join(per_w) + " |", "|---|" + "---:|" * len(per_w)]
        for label, key, field in (("(a) bicubic: Fréchet distance, sharp classifier", "bicubic", "frechet_distance"),
                                  ("(b) cascade: Fréchet distance, sharp classifier", "cascade", "frechet_distance"),
                                  ("(a) bicubic: … course classifier", "bicubic", "frechet_distance_course_classifier"),
                                  ("(b) cascade: … course classifier", "cascade", "frechet_distance_course_classifier")):
            rows.append(f"| {label} | " + " | ".join(f"{r[key][field]:.2f}" for r in per_w.values()) + " |")
        rows.append("| (b) below (a), sharp classifier | "
                    + " | ".join(f"{100 * r['cascade_below_bicubic']:.1f} %" for r in per_w.values()) + " |")
        rows.append("| (b) class agreement | "
                    + " | ".join(f"{100 * r['cascade']['class_agreement']:.1f} %" for r in per_w.values()) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_utils.sharper", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("evaluate", help="measure the four methods and the sweep; write the record")
    e.add_argument("--n", type=int, default=1000)
    e.add_argument("--sweep-n", type=int, default=500)
    e.add_argument("--out", default=str(RECORD))
    e.add_argument("--sweep-only", action="store_true", help="only the base samples and the augmentation sweep "
                                                              "(printed, nothing written)")
    sub.add_parser("show", help="print the shipped record as a table")
    a = p.parse_args(argv)
    if a.cmd == "show":
        print(table_markdown())
        return 0
    rec = evaluate(a.n, a.sweep_n, sweep_only=a.sweep_only)
    if a.sweep_only:
        return 0
    Path(a.out).write_text(json.dumps(rec, indent=2) + "\n")
    print(table_markdown(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
