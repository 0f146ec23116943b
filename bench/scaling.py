"""Scaling: how the trainer's speed and the grading command's time per submission grow with the work.

* **Trainer**: images/s of ``course_utils.train.train`` (its own loop: EMA, clipping, the schedule; the numerics
  ``--amp`` names) as one factor grows from the benchmarks' base point (the shipped ``cfg16`` model, 16 px,
  batch 128): the batch (32 … 256), the image size (16, 28, 32 px: FashionMNIST resized, the same two-level
  U-Net) and the width (the channels × 1, 1.5, 2). Each row trains ``--blocks`` + 1 blocks of ``--block``
  steps; the first block is warm-up, the others give the median and the range of images/s.
* **Seconds to quality** (``--part quality``, its own record ``scaling_quality_<device>.json``): the training
  time until 80 % class agreement, judged as in :mod:`bench.time_to_quality` (20 guided DDIM-20 samples per class,
  w = 2, the shipped classifier, which resizes every sample to 28 px), for the base point, 28 and 32 px and the
  widths × 1.5 and × 2, with the best recipe at the trainer's own U-Net (``QUALITY_RECIPE``), once per seed.
* **Grading**: ``course_utils.autograde.grade_lesson`` (one bubblewrap sandbox per submission, as an
  instructor runs it) on N simulated hand-ins of lesson 02, half the solution notebook and half the untouched
  student notebook, for each N in ``--submissions`` and each parallelism in ``--jobs``: wall seconds in all
  (the nbgrader course built once, the gradebook written once, included), seconds per submission, and
  whether every solution got full marks and every blank notebook none.

    python -m bench.scaling                                   # both parts, the recorded sizes
    python -m bench.scaling --part grading --submissions 10,50,200 --jobs 1,2
    python -m bench.scaling --pairs 10:1,10:2,50:1,50:2,200:2       # the recorded run
    python -m bench.scaling --part quality --seeds 0,1        # seconds to quality (about 40 min on 2 cores)
    python -m bench.scaling --quick                           # a smoke test
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from course_utils.data import load_fashion_mnist
from course_utils.diffusion import GaussianDiffusion
from course_utils.models import count_parameters
from course_utils.schedules import linear_betas
from course_utils.train import TrainConfig, train
from course_utils.utils import get_device

from . import baselines
from . import time_to_quality as ttq
from .common import REPO, machine_info, markdown_table, write_result

LESSON = "02_forward_diffusion"
BASE = {"batch": 128, "image_size": 16, "width": 1.0}
GRID = ([{"batch": b} for b in (32, 64, 128, 256)] + [{"image_size": s} for s in (28, 32)]
        + [{"width": w} for w in (1.5, 2.0)])
QUALITY_GRID = [{}] + [{"image_size": s} for s in (28, 32)] + [{"width": w} for w in (1.5, 2.0)]
QUALITY_RECIPE = "ours+ema-warmup+v-pred"   # the best recipe on the two-level U-Net the widths scale (bench.time_to_quality)


def trainer_row(point: dict, device: torch.device, amp: str, block: int, blocks: int, limit: int) -> dict:
    p = {**BASE, **point}
    data = load_fashion_mnist(train=True, image_size=p["image_size"], limit=limit)
    model = baselines.our_unet(p["width"])
    marks: dict[int, float] = {}
    cfg = TrainConfig(steps=block * (blocks + 1), batch_size=p["batch"], lr=2e-3, warmup_steps=100, seed=0,
                      device=str(device), amp=amp, log_every=block, progress=False)
    train(model, GaussianDiffusion(linear_betas(1000)).to(device), data, cfg,
          callbacks=[lambda s: marks.setdefault(s.step, s.elapsed)])
    rates = [block * p["batch"] / (marks[(i + 1) * block] - marks[i * block]) for i in range(1, blocks + 1)]
    median = statistics.median(rates)
    return {**p, "params": count_parameters(model), "channels": list(model.config.channels),
            "images_per_s": [round(r, 1) for r in rates], "median": round(median, 1),
            "ms_per_step": round(1000 * p["batch"] / median, 1)}


def quality_row(point: dict, device: torch.device, args) -> dict:
    """Seconds to ``args.target`` class agreement at one point of QUALITY_GRID, once per seed in ``args.seeds``."""
    p = {**BASE, **point}
    data = load_fashion_mnist(train=True, image_size=p["image_size"], limit=args.limit)
    recipe = ttq.parse_recipe(QUALITY_RECIPE, args.amp)
    recipe["model"]["width"] = p["width"]
    judge = argparse.Namespace(target=args.target, budget_min=args.budget_min, eval_every=args.eval_every,
                               per_class=args.per_class, w=2.0, ddim_steps=20, batch=p["batch"], seed=0)
    runs = []
    for seed in (int(x) for x in args.seeds.split(",")):
        r = ttq.run_ours(QUALITY_RECIPE, data, None, device, judge, args.amp, seed=seed, recipe=recipe)
        reached = r["reached"]
        runs.append({"seed": seed, "reached": reached, "steps_run": r["steps_run"], "train_s": r["train_s"],
                     "ms_per_step": round(1000 * r["train_s"] / r["steps_run"], 1), "amp": r["amp"]})
        print(f"  quality {point or 'base'} seed {seed}: "
              + (f"{reached['train_s']} s" if reached else f"> {args.budget_min:g} min"), flush=True)
    model = baselines.our_unet(p["width"])
    return {**p, "params": count_parameters(model), "channels": list(model.config.channels), "runs": runs}


def grading_row(n: int, jobs: int, work: Path) -> dict:
    from course_utils.autograde import grade_lesson

    subs = work / f"subs_{n}_{jobs}"
    subs.mkdir(parents=True)
    for i in range(n):
        src = REPO / ("solutions" if i % 2 == 0 else "notebooks") / LESSON / f"{LESSON}.ipynb"
        shutil.copy2(src, subs / f"student{i:03d}.ipynb")
    t0 = time.perf_counter()
    results = grade_lesson(LESSON, subs, course=REPO, out=work / f"out_{n}_{jobs}", progress=lambda *_: None,
                           jobs=jobs, seed=0)
    wall = time.perf_counter() - t0
    right = all((r.score == r.max_score) if int(r.student[7:]) % 2 == 0 else r.score == 0 for r in results)
    return {"submissions": n, "jobs": jobs, "wall_s": round(wall, 1), "s_per_submission": round(wall / n, 2),
            "median_submission_s": statistics.median(r.seconds for r in results), "scores_as_expected": right,
            "statuses": sorted({r.status for r in results})}


def run(args) -> dict:
    device = get_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part == "quality":
        out = {"benchmark": "scaling_quality", "machine": machine_info(device), "amp": args.amp, "base": BASE,
               "recipe": QUALITY_RECIPE, "target": args.target, "budget_min": args.budget_min,
               "judge": {"per_class": args.per_class, "w": 2.0, "ddim_steps": 20, "eval_every_steps": args.eval_every},
               "quality": []}
        for point in (QUALITY_GRID[:2] if args.quick else QUALITY_GRID):
            out["quality"].append(quality_row(point, device, args))
        return out
    out = {"benchmark": "scaling", "machine": machine_info(device), "amp": args.amp, "base": BASE,
           "block": args.block, "blocks": args.blocks, "trainer": [], "grading": []}
    if args.part in ("all", "trainer"):
        grid = GRID[:2] if args.quick else GRID
        for point in grid:
            row = trainer_row(point, device, args.amp, args.block, args.blocks, args.limit)
            print(f"  trainer {point}: {row['median']} img/s {row['images_per_s']}", flush=True)
            out["trainer"].append(row)
    if args.part in ("all", "grading"):
        with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
            pairs = ([tuple(int(v) for v in x.split(":")) for x in args.pairs.split(",")] if args.pairs else
                     [(int(n), int(j)) for n in args.submissions.split(",") for j in args.jobs.split(",")])
            for n, jobs in pairs:
                row = grading_row(n, jobs, Path(tmp))
                print(f"  grading {n} submissions, jobs {jobs}: {row['wall_s']} s "
                      f"({row['s_per_submission']} s each)", flush=True)
                out["grading"].append(row)
    return out


def quality_table(result: dict) -> str:
    """Seconds to quality per point: median and range over the seeds, the steps and the cost of a step."""
    base, rows = result["base"], []
    for r in result["quality"]:
        grown = [k for k in ("image_size", "width") if r[k] != base[k]] or ["(base point)"]
        times = [run["reached"]["train_s"] for run in r["runs"] if run["reached"]]
        steps = [run["reached"]["step"] for run in r["runs"] if run["reached"]]
        missed = len(r["runs"]) - len(times)
        t = f"{statistics.median(times):.0f} ({min(times):.0f}–{max(times):.0f})" if times else ""
        if missed:
            t += ("; " if t else "") + f"{missed} of {len(r['runs'])} runs > {result['budget_min']:g} min"
        rows.append([", ".join(grown), r["image_size"], f"× {r['width']:g} {tuple(r['channels'])}", f"{r['params']:,}",
                     t, "/".join(map(str, steps)) or "—",
                     f"{statistics.median(run['ms_per_step'] for run in r['runs']):.0f}"])
    return markdown_table(["grows", "image px", "width (channels)", "params",
                           f"training s to {result['target']:.0%} (median, range)", "steps (per seed)",
                           "ms/step (median)"], rows)


def tables(result: dict) -> tuple[str, str]:
    base = result["base"]
    rows = []
    for r in result["trainer"]:
        grown = [k for k in ("batch", "image_size", "width") if r[k] != base[k]] or ["(base point)"]
        rows.append([", ".join(grown), r["batch"], r["image_size"], f"× {r['width']:g} {tuple(r['channels'])}",
                     f"{r['params']:,}", f"{r['median']:.0f}",
                     f"{min(r['images_per_s']):.0f}–{max(r['images_per_s']):.0f}", f"{r['ms_per_step']:.0f}"])
    trainer = markdown_table(["grows", "batch", "image px", "width (channels)", "params", "images/s (median)",
                              "range over blocks", "ms/step"], rows)
    rows = [[g["submissions"], g["jobs"], f"{g['wall_s']:.0f}", f"{g['s_per_submission']:.2f}",
             f"{g['median_submission_s']:.1f}", "yes" if g["scores_as_expected"] else "NO",
             ", ".join(g["statuses"])] for g in result["grading"]]
    grading = markdown_table(["submissions", "jobs (parallel sandboxes)", "wall s (all)", "s per submission",
                              "one submission's s (median)", "every score right", "statuses"], rows)
    return trainer, grading


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("all", "trainer", "grading", "quality"), default="all",
                   help="all: the trainer's speed and the grading; quality: seconds to quality (its own record)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--amp", default="off", choices=("off", "bf16", "auto"),
                   help="the trainer's numerics (default fp32: bf16 pays only where the CPU runs it natively)")
    p.add_argument("--block", type=int, default=10, help="steps per timed block")
    p.add_argument("--blocks", type=int, default=3, help="timed blocks after one warm-up block")
    p.add_argument("--limit", type=int, default=4096, help="training images loaded (speed does not depend on it)")
    p.add_argument("--submissions", default="10,50,200")
    p.add_argument("--jobs", default="1,2")
    p.add_argument("--pairs", default=None, help="submissions:jobs pairs instead of the product of the two, "
                   "e.g. 10:1,10:2,200:2")
    p.add_argument("--seeds", default="0,1", help="quality: one run per seed")
    p.add_argument("--target", type=float, default=0.80, help="quality: the class agreement to reach")
    p.add_argument("--budget-min", type=float, default=15.0, help="quality: training minutes per run")
    p.add_argument("--eval-every", type=int, default=50, help="quality: steps between judgements")
    p.add_argument("--per-class", type=int, default=20, help="quality: judged samples per class")
    p.add_argument("--quick", action="store_true", help="two trainer (or quality) rows, tiny blocks")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    if a.part == "quality":
        a.limit = None                                          # the full training set, as time_to_quality
    if a.quick:
        a.block, a.blocks, a.limit = 2, 2, 512
        a.budget_min, a.eval_every, a.per_class, a.seeds = 0.02, 3, 1, a.seeds.split(",")[0]
    t0 = time.perf_counter()
    result = run(a)
    result["command"] = "python -m bench.scaling " + " ".join(argv)
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    for t in ((quality_table(result),) if a.part == "quality" else tables(result)):
        print(t)
    path = write_result(f"{result['benchmark']}_{result['machine']['device']}", result, Path(a.out) if a.out else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
