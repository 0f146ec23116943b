"""Time to quality on CPU: training wall time until a class-conditional model reaches the target
class agreement (default 80 %) under classifier-free guidance, ours vs the diffusers tutorial's loop.

Each contender trains from scratch on 16 px FashionMNIST (60 000 images, batch 128) at matched parameter
count. Every ``--eval-every`` steps the clock stops and the model is judged: ``--per-class`` samples
per class (DDIM, ``--ddim-steps`` steps, η = 0, x̂0 clipped, guidance w = ``--w``, fixed seed), classified by
the shipped FashionMNIST classifier; class agreement is the fraction classified as the class asked
for. The time to quality is the training time (evaluations excluded) at the first evaluation that
reaches the target. Ours is judged on its EMA weights (what ``course_utils.train`` hands out for
sampling); the diffusers loop on its raw weights (the tutorial keeps no EMA). A contender that has not
reached the target when its time budget runs out is reported as "> budget".

    python -m bench.time_to_quality                        # ours (its fast CPU setting) vs diffusers
    python -m bench.time_to_quality --contenders ours,ours-fp32,diffusers --budget-min 20
    python -m bench.time_to_quality --contenders diffusers-ourlr --append bench/results/time_to_quality_cpu.json

Contenders: ``ours`` (course_utils.train with bf16 autocast where the CPU runs bf16 natively, else fp32),
``ours-fp32``, ``diffusers`` (the tutorial's loop and hyper-parameters: lr 1e-4, 500 warm-up steps),
``diffusers-ourlr`` (the same loop given our lr 2e-3 and 100 warm-up steps: is the gap the recipe?) and
``diffusers-ourlr-bf16`` (that, under bf16 autocast).

**Recipe contenders**: ``ours`` or ``ours-fp32`` followed by ``+``-joined changes, each one idea
(``ours+ema-warmup+min-snr`` combines two): ``ema-warmup`` (EMA decay min(0.995, (1 + n)/(10 + n))),
``min-snr`` (min-SNR-5 loss weighting, Hang et al. 2023), ``v-pred`` (the network predicts v, Salimans & Ho
2022), ``x0-pred`` (the network predicts x0, plain ‖x0 − x̂0‖²), ``cosine`` (the cosine schedule, Nichol &
Dhariwal 2021), ``T250`` (250 timesteps, β range scaled by 1000/T), ``lr4e-3`` (another peak learning rate),
``wu200`` (another warm-up), ``compile`` (torch.compile), ``loader`` (the batches drawn through a torch
DataLoader from host memory, as the tutorial does, instead of gathered from the training set held on the device:
what resident data buys); and placement at about the same parameter count:
``attn`` (self-attention at the 8 × 8 level, +3 % parameters), ``ch16-32-64`` (other channels per level: here
three levels, 16 → 8 → 4 px, −3 % parameters).
With ``--seeds 0,1,2`` every contender runs once per seed (seed of the training and of the judge's noise),
round-robin, and the table gives the median and the range:

    python -m bench.time_to_quality --name time_to_quality_contenders_cpu --seeds 0,1 --eval-every 50 \
        --contenders ours,ours-fp32,ours+ema-warmup,ours+min-snr,diffusers-ourlr,diffusers-ourlr-bf16
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import torch

from course_utils.data import load_fashion_mnist
from course_utils.diffusion import GaussianDiffusion
from course_utils.grading import assess_class_agreement
from course_utils.models import count_parameters
from course_utils.objectives import EpsFromV, EpsFromX0, loss_min_snr, loss_v, loss_x0
from course_utils.schedules import cosine_betas, linear_betas
from course_utils.train import TrainConfig, resolve_amp_dtype, train
from course_utils.utils import cpu_has_native_bf16, get_device

from . import baselines
from .common import machine_info, markdown_table, write_result

IMAGE_SIZE = 16
AMP_NAMES = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}   # a record's "amp": what ran


def judge(eps_model, diffusion, args, seed: int | None = None, image_size: int = IMAGE_SIZE) -> float:
    """Class agreement of ``args.per_class`` guided DDIM samples per class from a fixed seed (the course's
    assessment helper; ``diffusion`` clips x̂0). The shipped classifier resizes every sample to 28 px, so it judges
    any ``image_size`` (bench.scaling trains at 28 and 32 px)."""
    seed = args.seed if seed is None else seed
    return assess_class_agreement(eps_model, diffusion, per_class=args.per_class, w=args.w, seed=seed,
                                  num_steps=args.ddim_steps, image_size=image_size).agreement


class _Clock:
    """Training time with the evaluations cut out; records the curve and decides when to stop."""

    def __init__(self, name, target, budget_s, judge_fn):
        self.name, self.target, self.budget_s, self.judge_fn = name, target, budget_s, judge_fn
        self.curve: list[dict] = []
        self.eval_s = 0.0
        self.reached: dict | None = None

    def check(self, step: int, train_s: float, model) -> bool:
        t0 = time.perf_counter()
        agreement = self.judge_fn(model)
        self.eval_s += time.perf_counter() - t0
        self.curve.append({"step": step, "train_s": round(train_s, 1), "class_agreement": round(agreement, 4)})
        print(f"  {self.name:<10} step {step:5d}  train {train_s:7.1f} s  agreement {agreement:.3f}", flush=True)
        if agreement >= self.target and self.reached is None:
            self.reached = self.curve[-1]
        return self.reached is not None or train_s >= self.budget_s


# the recipe contenders measured by `python -m bench`: one change each against ours (the recipe before this
# benchmark: constant EMA decay), the references, then the changes that paid, combined
CONTENDERS = ("ours", "ours-fp32", "ours+ema-warmup", "ours+min-snr", "ours+v-pred", "ours+lr4e-3+wu200",
              "ours+cosine", "ours+T250", "diffusers-ourlr", "diffusers-ourlr-bf16", "ours+ema-warmup+v-pred",
              "ours+ema-warmup+v-pred+compile", "ours+x0-pred", "ours+attn", "ours+ch16-32-64",
              "ours+ema-warmup+v-pred+ch16-32-64", "ours+loader")
RECIPE = {"lr": 2e-3, "warmup_steps": 100, "ema_decay": 0.995}      # ours, and diffusers-ourlr's lr and warm-up
DIFFUSERS = ("diffusers", "diffusers-ourlr", "diffusers-ourlr-bf16")   # the tutorial loop's contenders
CHANGES = {         # a recipe contender's "+" tokens: what each one changes, and its setting (key of the run, value)
    "ema-warmup": ("EMA decay min(0.995, (1 + n)/(10 + n)) at update n", "ema_warmup", True),
    "min-snr": ("min-SNR-5 loss weights (Hang et al. 2023)", "loss", "min-snr"),
    "v-pred": ("v-prediction (Salimans & Ho 2022)", "loss", "v"),
    "x0-pred": ("x0-prediction (plain x0 loss)", "loss", "x0"),
    "cosine": ("cosine schedule (Nichol & Dhariwal 2021)", "schedule", "cosine"),
    "compile": ("torch.compile", "compile", True),
    "attn": ("self-attention at the lowest level", "model", {"attention": True}),
    "loader": ("batches through a DataLoader from host memory (not resident on the device)", "resident_data", False),
}


def parse_recipe(name: str, fast_amp: str) -> dict:
    """``ours[-fp32][+change…]`` → the settings of that run (see the module doc)."""
    head, *tokens = name.split("+")
    if head not in ("ours", "ours-fp32"):
        raise ValueError(f"a recipe contender starts with ours or ours-fp32; got {name!r}.")
    r = {"amp": "off" if head == "ours-fp32" else fast_amp, "loss": "eps", "schedule": "linear", "T": 1000,
         "ema_warmup": False, "compile": False, "resident_data": True, "model": {}, **RECIPE, "changes": []}
    for tok in tokens:
        if tok in CHANGES:
            what, key, value = CHANGES[tok]
            if key == "loss" and r["loss"] != "eps":
                raise ValueError(f"{name!r} names two objectives; min-snr (for an ε-model), v-pred and x0-pred do "
                                 f"not combine here.")
            r["changes"].append(what)
            if key == "model":
                r["model"].update(value)
            else:
                r[key] = value
        elif m := re.fullmatch(r"ch(\d+(?:-\d+)+)", tok):
            r["model"]["channels"] = tuple(int(c) for c in m.group(1).split("-"))
            r["changes"].append(f"channels {r['model']['channels']}")
        elif m := re.fullmatch(r"T(\d+)", tok):
            r["T"] = int(m.group(1))
            r["changes"].append(f"T = {r['T']} (β range × 1000/T)")
        elif m := re.fullmatch(r"lr([0-9.e-]+)", tok):
            r["lr"] = float(m.group(1))
            r["changes"].append(f"peak lr {r['lr']:g}")
        elif m := re.fullmatch(r"wu(\d+)", tok):
            r["warmup_steps"] = int(m.group(1))
            r["changes"].append(f"{r['warmup_steps']} warm-up steps")
        else:
            raise ValueError(f"unknown change {tok!r} in {name!r}; choose from {sorted(CHANGES)}, T<n>, lr<x>, wu<n>, "
                             f"ch<a>-<b>[-<c>…].")
    return r


def recipe_diffusion(r: dict) -> GaussianDiffusion:
    T = r["T"]
    betas = (cosine_betas(T) if r["schedule"] == "cosine"
             else linear_betas(T, 1e-4 * 1000 / T, min(0.999, 0.02 * 1000 / T)))
    return GaussianDiffusion(betas, clip_x0=True)                 # samplers clip x̂0


def run_ours(name, data, diffusion, device, args, amp: str, seed: int | None = None, recipe: dict | None = None) -> dict:
    seed = args.seed if seed is None else seed
    r = recipe or parse_recipe("ours", amp)
    if recipe is not None:
        diffusion = recipe_diffusion(r).to(device)
    loss_fn = {"eps": None, "min-snr": loss_min_snr, "v": loss_v, "x0": loss_x0}[r["loss"]]   # train's signature
    wrap = {"v": EpsFromV, "x0": EpsFromX0}.get(r["loss"])
    as_eps = (lambda m: wrap(m, diffusion)) if wrap else (lambda m: m)
    torch.manual_seed(seed)
    model = baselines.our_unet(**r["model"])
    size = data.images.shape[-1]                                  # judged at the size it trains on
    clock = _Clock(name, args.target, args.budget_min * 60,
                   lambda m: judge(as_eps(m), diffusion, args, seed, size))
    cfg = TrainConfig(steps=10 ** 6, batch_size=args.batch, lr=r["lr"], warmup_steps=r["warmup_steps"],
                      ema_decay=r["ema_decay"], ema_warmup=r["ema_warmup"], compile=r["compile"],
                      resident_data=r["resident_data"],
                      seed=seed, device=str(device), amp=r["amp"], log_every=args.eval_every, progress=False)

    def callback(state):
        return clock.check(state.step, state.elapsed - clock.eval_s, state.ema_model)
    result = train(model, diffusion, data, cfg, callbacks=[callback], loss_fn=loss_fn)
    out = {"name": name, "params": count_parameters(model), "amp": AMP_NAMES[resolve_amp_dtype(r["amp"], device)],
           "ema_decay": cfg.ema_decay,
           "lr": cfg.lr, "judged": f"EMA weights (decay {cfg.ema_decay})", "curve": clock.curve,
           "reached": clock.reached, "steps_run": len(result.losses),
           "train_s": round(result.wall_time - clock.eval_s, 1)}
    if recipe is not None:
        out.update(seed=seed, changes=r["changes"], warmup_steps=r["warmup_steps"])
    return out


def run_diffusers(name, diffusion, device, args, lr: float = 1e-4, warmup_steps: int = 500,
                  amp: str = "tutorial", seed: int | None = None) -> dict:
    seed = args.seed if seed is None else seed
    n_ours = count_parameters(baselines.our_unet())
    widths, n = baselines.matched_diffusers_widths(n_ours, IMAGE_SIZE)
    loader = baselines.fashion_mnist_loader(args.batch, IMAGE_SIZE, limit=args.limit, seed=seed)
    total = 50 * len(loader)                                     # the tutorial's 50 epochs
    loop = baselines.DiffusersLoop(widths, loader, device, total_steps=total, seed=seed, lr=lr,
                                   warmup_steps=warmup_steps, amp=amp)
    clock = _Clock(name, args.target, args.budget_min * 60, lambda m: judge(m, diffusion, args, seed))
    train_s, step = 0.0, 0
    while True:
        t0 = time.perf_counter()
        for _ in range(args.eval_every):
            loop.step()
        loop.flush_losses()                                      # syncs the device
        train_s += time.perf_counter() - t0
        step += args.eval_every
        if clock.check(step, train_s, loop.eps_model):
            break
    amp_name = AMP_NAMES[loop.autocast_dtype]
    return {"name": name, "params": n, "widths": list(widths), "amp": amp_name, "seed": seed,
            "lr": lr, "warmup_steps": warmup_steps, "judged": "raw weights (the tutorial keeps no EMA)",
            "curve": clock.curve,
            "reached": clock.reached, "steps_run": step, "train_s": round(train_s, 1)}


def run(args) -> dict:
    device = get_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_fashion_mnist(train=True, image_size=IMAGE_SIZE, limit=args.limit)
    diffusion = GaussianDiffusion(linear_betas(1000), clip_x0=True).to(device)   # samplers clip x̂0
    native = cpu_has_native_bf16()
    fast_amp = "auto"                     # the trainer's default numerics (course_utils.train.resolve_amp_dtype)
    out = {"benchmark": "time_to_quality", "machine": machine_info(device),
           "command": "python -m bench.time_to_quality " + " ".join(args.argv), "target": args.target,
           "judge": {"per_class": args.per_class, "w": args.w, "ddim_steps": args.ddim_steps, "eta": 0.0,
                     "clip_x0": True, "seed": args.seed, "eval_every_steps": args.eval_every},
           "batch": args.batch, "budget_min": args.budget_min, "cpu_native_bf16": native,
           "contenders": []}
    for name in args.contenders.split(","):
        torch.manual_seed(args.seed)
        if name == "ours":
            r = run_ours(name, data, diffusion, device, args, fast_amp)
        elif name == "ours-fp32":
            r = run_ours(name, data, diffusion, device, args, "off")
        elif name == "diffusers":
            r = run_diffusers(name, diffusion, device, args)
        elif name == "diffusers-ourlr":            # the tutorial's loop given our learning rate and warm-up
            r = run_diffusers(name, diffusion, device, args, lr=RECIPE["lr"], warmup_steps=RECIPE["warmup_steps"])
        else:
            raise ValueError(f"unknown contender {name!r}; choose from ours, ours-fp32, diffusers, diffusers-ourlr.")
        r["budget_min"] = args.budget_min
        out["contenders"].append(r)
    if args.append:                       # keep the earlier run's contenders, machine line and wall time
        old = json.loads(Path(args.append).read_text())
        names = {c["name"] for c in out["contenders"]}
        out["contenders"] = [c for c in old["contenders"] if c["name"] not in names] + out["contenders"]
        _carry_append(out, old)
    base = next((c for c in out["contenders"] if c["name"] == "diffusers"), None)
    for c in out["contenders"]:
        t = c["reached"]["train_s"] if c["reached"] else None
        c["time_to_quality_s"] = t
        if base is not None and c is not base and t:
            bt = base["reached"]["train_s"] if base["reached"] else None
            c["speedup_vs_diffusers"] = round(bt / t, 2) if bt else None
            c["speedup_vs_diffusers_at_least"] = round((bt or base["train_s"]) / t, 2)
    return out


def _carry_append(out: dict, old: dict) -> None:
    """An appending run's record keeps the earlier file's machine line, chains the commands and adds up the wall
    time (main adds ``earlier_wall_time_s`` to this run's)."""
    out["appended_runs"] = old.get("appended_runs", []) + [{"command": out["command"], "machine": out["machine"]}]
    out["command"] = old["command"] + " && " + out["command"]
    out["machine"] = old["machine"]
    out["earlier_wall_time_s"] = old.get("wall_time_s", 0) + old.get("earlier_wall_time_s", 0)
    if "note" in old:                             # a note written into the file is kept
        out.setdefault("note", old["note"])


def _check_contender(name: str, fast_amp: str) -> None:
    """Refuse an unknown contender before any training."""
    if name.startswith("ours"):
        parse_recipe(name, fast_amp)
    elif name not in DIFFUSERS:
        raise ValueError(f"unknown contender {name!r}; see python -m bench.time_to_quality --help.")


def _one_run(name, data, device, args, fast_amp, seed) -> dict:
    _check_contender(name, fast_amp)
    if name.startswith("ours"):                  # its schedule comes from its recipe (run_ours)
        return run_ours(name, data, None, device, args, fast_amp, seed=seed, recipe=parse_recipe(name, fast_amp))
    base = GaussianDiffusion(linear_betas(1000), clip_x0=True).to(device)
    if name == "diffusers":
        return run_diffusers(name, base, device, args, seed=seed)
    return run_diffusers(name, base, device, args, lr=RECIPE["lr"], warmup_steps=RECIPE["warmup_steps"],
                         amp="bf16" if name.endswith("bf16") else "tutorial", seed=seed)


def run_seeded(args) -> dict:
    """Every contender once per seed, round-robin (seed-major, so drift of a shared machine spreads evenly)."""
    device = get_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_fashion_mnist(train=True, image_size=IMAGE_SIZE, limit=args.limit)
    native = cpu_has_native_bf16()
    fast_amp = "auto"                     # the trainer's default numerics (course_utils.train.resolve_amp_dtype)
    names = args.contenders.split(",")
    skipped = {}
    if resolve_amp_dtype(fast_amp, device) is None:   # fp32: "ours" is ours-fp32, and emulated bf16 is no contender
        for name in names:
            if name.startswith("ours-fp32") and "ours" + name[len("ours-fp32"):] in names:
                skipped[name] = "the same run as " + "ours" + name[len("ours-fp32"):] + " on a CPU without native bf16"
            elif name == "diffusers-ourlr-bf16":
                skipped[name] = "bf16 is emulated on this CPU (no AVX512-BF16, AMX or Arm BF16), slower than fp32"
        names = [n for n in names if n not in skipped]
        for name, why in skipped.items():
            print(f"  skipping {name}: {why}", flush=True)
    for name in names:                                           # fail on a typo before hours of training
        _check_contender(name, fast_amp)
    seeds = [int(x) for x in args.seeds.split(",")]
    out = {"benchmark": "time_to_quality_contenders", "machine": machine_info(device),
           "command": "python -m bench.time_to_quality " + " ".join(args.argv), "target": args.target,
           "judge": {"per_class": args.per_class, "w": args.w, "ddim_steps": args.ddim_steps, "eta": 0.0,
                     "clip_x0": True, "seeds": seeds, "eval_every_steps": args.eval_every},
           "batch": args.batch, "budget_min": args.budget_min, "cpu_native_bf16": native,
           "recipe": RECIPE, "skipped": skipped, "contenders": []}
    by_name: dict[str, dict] = {}
    for seed in seeds:
        for name in names:
            r = _one_run(name, data, device, args, fast_amp, seed)
            c = by_name.setdefault(name, {"name": name, "params": r["params"], "amp": r["amp"],
                                          "judged": r["judged"], "changes": r.get("changes", []), "runs": []})
            c["runs"].append({k: r[k] for k in ("seed", "curve", "reached", "steps_run", "train_s")})
            if args.out_progress:                                 # a partial file survives an interrupted run
                Path(args.out_progress).write_text(json.dumps({**out, "contenders": list(by_name.values())}))
    out["contenders"] = list(by_name.values())
    if args.append:                                              # add runs (and contenders) to an earlier file
        old = json.loads(Path(args.append).read_text())
        merged = {c["name"]: c for c in old["contenders"]}
        for c in out["contenders"]:
            if c["name"] in merged:
                merged[c["name"]]["runs"] += c["runs"]
            else:
                merged[c["name"]] = c
        out["contenders"] = list(merged.values())
        out["skipped"] = {**old.get("skipped", {}), **skipped}
        _carry_append(out, old)
    return out


def seeded_summary(c: dict) -> dict:
    """Median and range of a contender's time to quality over its runs (None where a run did not reach it)."""
    times = [r["reached"]["train_s"] if r["reached"] else None for r in c["runs"]]
    reached = [t for t in times if t is not None]
    steps = [r["reached"]["step"] for r in c["runs"] if r["reached"]]
    return {"times": times, "median": statistics.median(reached) if len(reached) == len(times) else None,
            "lo": min(reached) if reached else None, "hi": max(reached) if reached else None,
            "median_steps": statistics.median(steps) if steps else None,
            "s_per_step": statistics.median(r["train_s"] / r["steps_run"] for r in c["runs"])}


def _verdict(c: dict, ref: dict | None, every: int) -> str:
    """Whether a change pays against the reference run in the same numerics: only when the ranges part by more
    than the judge's resolution. A run is judged every ``every`` steps, so its target was crossed at most one
    interval (``every`` × its seconds per step) before the reported time: "pays" needs the contender's slowest
    run to beat the reference's fastest run less one interval, "costs" the reverse."""
    if ref is None or ref is c:
        return "reference" if ref is c else "–"
    a, b = seeded_summary(c), seeded_summary(ref)
    if a["median"] is None:
        return "not reached in every run"
    if b["median"] is None:
        return "reference not reached"
    if a["hi"] < b["lo"] - every * b["s_per_step"]:
        return "pays"
    if a["lo"] - every * a["s_per_step"] > b["hi"]:
        return "costs"
    return "within the noise"


def contenders_table(result: dict) -> str:
    """The recipe contenders: median time to quality, range over seeds, speed-up vs diffusers given our recipe
    in the same numerics (fp32 vs diffusers-ourlr, bf16 vs diffusers-ourlr-bf16) and vs ours in those numerics."""
    cs = {c["name"]: c for c in result["contenders"]}

    def ref(c, kind):
        bf16 = c["amp"] == "bf16"
        if kind == "diffusers":
            return cs.get("diffusers-ourlr-bf16" if bf16 else "diffusers-ourlr")
        return cs.get("ours" if bf16 else "ours-fp32") or _fp32_ours(cs, c["amp"])

    rows = []
    for c in result["contenders"]:
        s = seeded_summary(c)
        d = ref(c, "diffusers")
        ds = seeded_summary(d) if d else None
        ratio = (f"{ds['median'] / s['median']:.2f}×" if ds and ds["median"] and s["median"] else None)
        best = max((p["class_agreement"] for r in c["runs"] for p in r["curve"]), default=None)
        times = ", ".join(f"{t:.0f}" if t is not None else f"> {r['train_s']:.0f}" for t, r in zip(s["times"], c["runs"]))
        rows.append([c["name"], "; ".join(c["changes"]) or ("the diffusers tutorial's loop" if "diffusers" in c["name"]
                                                              else "our recipe"),
                     c["amp"], len(c["runs"]),
                     f"{s['median']:.0f} s" if s["median"] is not None else "not reached",
                     f"{s['lo']:.0f}–{s['hi']:.0f} s ({times})" if s["lo"] is not None else times,
                     f"{s['median_steps']:.0f}" if s["median_steps"] else None,
                     f"{1000 * s['s_per_step']:.0f}", f"{best:.1%}" if best is not None else None, ratio,
                     _verdict(c, ref(c, "ours"), result["judge"]["eval_every_steps"])
                     if c["name"].startswith("ours") else "–"])
    return markdown_table(["contender", "what changes", "autocast", "runs", f"time to {result['target']:.0%} (median)",
                           "range (each run)", "steps (median)", "ms/step", "best agreement",
                           "vs diffusers-ourlr, same autocast", "vs ours, same autocast"], rows)


def _fp32_ours(cs: dict, amp: str) -> dict | None:
    """``ours`` as the fp32 reference where it ran in fp32 (a CPU without native bf16, no ours-fp32 row)."""
    ours = cs.get("ours")
    return ours if ours is not None and ours["amp"] == amp == "off" else None


def best_vs_diffusers(result: dict) -> dict:
    """Per numerics (bf16, off): the fastest ours-contender by median and its speed-up over diffusers-ourlr in the
    same numerics, with the ratio of the ranges' worst ends (slowest ours run vs fastest diffusers run)."""
    cs = {c["name"]: c for c in result["contenders"]}
    out = {}
    for amp, ref_name in (("off", "diffusers-ourlr"), ("bf16", "diffusers-ourlr-bf16")):
        ref = cs.get(ref_name)
        rs = seeded_summary(ref) if ref else None
        ours = [(seeded_summary(c), c) for c in result["contenders"] if c["name"].startswith("ours") and c["amp"] == amp]
        ours = [(s, c) for s, c in ours if s["median"] is not None]
        if not ours or not rs or rs["median"] is None:
            out[amp] = None
            continue
        s, c = min(ours, key=lambda sc: sc[0]["median"])
        out[amp] = {"name": c["name"], "speedup": round(rs["median"] / s["median"], 2),
                    "worst_case": round(rs["lo"] / s["hi"], 2), "ref": ref_name}
    return out


def table(result: dict) -> str:
    rows = []
    for c in result["contenders"]:
        t = c["time_to_quality_s"]
        best = max(c["curve"], key=lambda p: p["class_agreement"]) if c["curve"] else None
        ratio = c.get("speedup_vs_diffusers")
        if ratio is None and c.get("speedup_vs_diffusers_at_least"):
            ratio = f"> {c['speedup_vs_diffusers_at_least']}"
        judged = c["judged"] + (f" (decay {c['ema_decay']})" if "ema_decay" in c and "decay" not in c["judged"] else "")
        rows.append([c["name"], f"{c['params']:,}", c["amp"], c["lr"], judged,
                     f"{t:.0f} s ({c['reached']['step']} steps)" if t else f"> {c['train_s']:.0f} s (not reached in {c.get('budget_min', '?')} min)",
                     f"{best['class_agreement']:.1%} at {best['step']}" if best else None,
                     f"{ratio}×" if ratio else ("1×" if c["name"] == "diffusers" else None)])
    return markdown_table(["contender", "params", "autocast", "lr", "judged on", f"time to {result['target']:.0%}",
                           "best agreement (step)", "speed-up vs diffusers"], rows)


def main(argv=None) -> int:
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.time_to_quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contenders", default="ours,diffusers")
    p.add_argument("--target", type=float, default=0.80)
    p.add_argument("--budget-min", type=float, default=20.0, help="training minutes per contender")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--w", type=float, default=2.0)
    p.add_argument("--ddim-steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only (smoke tests)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--name", default=None, help="results file name (default time_to_quality_<device>)")
    p.add_argument("--append", default=None, help="a results file whose other contenders are kept (a later run "
                   "adds contenders to an earlier one)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds: every contender once per seed (recipe "
                   "contenders, medians and ranges); without it one run per contender at --seed")
    p.add_argument("--out-progress", default=None, help="with --seeds: rewrite this file after every run")
    args = p.parse_args(argv)
    args.argv = argv
    t0 = time.perf_counter()
    result = run_seeded(args) if args.seeds else run(args)
    result["wall_time_s"] = round(time.perf_counter() - t0 + result.pop("earlier_wall_time_s", 0), 1)
    print(contenders_table(result) if args.seeds else table(result))
    path = write_result(args.name or f"time_to_quality_{result['machine']['device']}", result,
                        Path(args.out) if args.out else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
