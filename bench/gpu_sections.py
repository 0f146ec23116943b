"""The five sections of the GPU check (``python -m bench.gpu_check``; see its docstring), each run in its own
process by the driver: ``RUNNERS[name](Ctx(args))``. Also the runner of one notebook (``--run-notebook``).
Nothing here imports torch at import time: a notebook's runner process needs only nbclient."""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the package's unit-test modules (tests/unit/<name> where it has moved there, else tests/<name>)
UNIT_TEST_MODULES = ("test_schedules.py", "test_diffusion.py", "test_models.py", "test_train.py", "test_metrics.py",
                     "test_pretrained.py", "test_utils.py", "test_data.py")
TINY_UNIT_TEST_MODULES = ("test_schedules.py",)

# ------------------------------------------------------------------------------------------------ helpers

class Ctx:
    """What a section needs: device, sizes, where to write, when to stop."""

    def __init__(self, a: argparse.Namespace):
        import torch
        self.tiny = a.tiny
        self.device = torch.device("cpu" if a.tiny else "cuda")
        self.suffix = self.device.type
        self.results = Path(a.results)
        self.mirror = Path(a.mirror) if a.mirror else None
        self.deadline = time.monotonic() + a.deadline_s
        self.a = a

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def write(self, stem: str, payload: dict) -> Path:
        from .common import write_result
        path = write_result(f"{stem}_{self.suffix}", payload, self.results)
        if self.mirror:
            self.mirror.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, self.mirror / path.name)
        return path


@contextlib.contextmanager
def _no_tf32():
    """Exact fp32 on CUDA while comparing with the CPU (cuDNN convolutions default to TF32)."""
    import torch
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _max_diff(a, b) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def _environment() -> dict:
    import torch
    env = {"python": sys.executable, "torch": torch.__version__, "cuda_build": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "pythonpath": os.environ.get("PYTHONPATH"),
           "course_data_dir": os.environ.get("COURSE_DATA_DIR")}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2 ** 30, 1), capability=f"{p.major}.{p.minor}",
                   multiprocessors=p.multi_processor_count)
    for mod in ("diffusers", "nbclient", "ipykernel", "ipywidgets", "pytest", "xdist", "numpy", "matplotlib"):
        try:
            env[mod] = getattr(__import__(mod), "__version__", "installed")
        except Exception as err:                                  # noqa: BLE001 - report, do not stop
            env[mod] = f"missing ({type(err).__name__})"
    return env


# ------------------------------------------------------------------------------ 1. unit tests on the device

def _unet(cond: bool = True, channels=(16, 32)):
    from course_utils.models import UNet
    return UNet(channels=channels, num_classes=10 if cond else None)


def _agreement_checks(ctx: Ctx):
    """(name, kind, fn) where fn() → (measured, tolerance, passed); kind "agreement" compares the device with the
    CPU, "smoke" only runs the code path (the tiny mode, where the device is the CPU, is all smoke)."""
    import torch

    from course_utils.diffusion import GaussianDiffusion
    from course_utils.schedules import linear_betas

    dev = ctx.device
    g = torch.Generator().manual_seed(0)
    S = 16
    x0 = torch.rand(8, 1, S, S, generator=g) * 2 - 1
    t = torch.randint(0, 1000, (8,), generator=g)
    y = torch.arange(8) % 10
    noise = torch.randn(8, 1, S, S, generator=g)
    diff_cpu = GaussianDiffusion(linear_betas(1000), clip_x0=True)
    diff_dev = GaussianDiffusion(linear_betas(1000), clip_x0=True).to(dev)
    torch.manual_seed(0)
    net_cpu = _unet().eval()
    with torch.no_grad():        # a fresh U-Net's last layer is zero (ε̂ = 0 everywhere): give every weight a value
        for p in net_cpu.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    net_dev = copy.deepcopy(net_cpu).to(dev)

    def buffers():
        d = max(_max_diff(b, dict(diff_dev.named_buffers())[n]) for n, b in diff_cpu.named_buffers())
        return d, 0.0, d == 0.0

    def q_sample():
        d = _max_diff(diff_cpu.q_sample(x0, t, noise), diff_dev.q_sample(x0.to(dev), t.to(dev), noise.to(dev)))
        return d, 1e-6, d <= 1e-6

    def loss():
        with _no_tf32(), torch.no_grad():
            a = diff_cpu.loss_simple(net_cpu, x0, y=y, t=t, noise=noise)
            b = diff_dev.loss_simple(net_dev, x0.to(dev), y=y.to(dev), t=t.to(dev), noise=noise.to(dev))
        d = abs(float(a) - float(b)) / abs(float(a))
        return d, 1e-4, d <= 1e-4

    def forward_fp32():
        with _no_tf32(), torch.no_grad():
            d = _max_diff(net_cpu(x0, t, y), net_dev(x0.to(dev), t.to(dev), y.to(dev)))
        return d, 1e-4, d <= 1e-4

    def channels_last():
        cl = copy.deepcopy(net_dev).to(memory_format=torch.channels_last)
        xd = x0.to(dev)
        with _no_tf32(), torch.no_grad():
            d = _max_diff(net_dev(xd, t.to(dev), y.to(dev)),
                          cl(xd.contiguous(memory_format=torch.channels_last), t.to(dev), y.to(dev)))
        return d, 1e-4, d <= 1e-4

    def bf16():
        xd, td, yd = x0.to(dev), t.to(dev), y.to(dev)
        with torch.no_grad():
            ref = net_dev(xd, td, yd).float()
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                out = net_dev(xd, td, yd).float()
        rel = float((out - ref).norm() / ref.norm())
        return rel, 0.05, bool(torch.isfinite(out).all()) and rel <= 0.05

    def ddim():
        x_T = torch.randn(10, 1, S, S, generator=g)
        lab = torch.arange(10)
        with _no_tf32():
            a = diff_cpu.ddim_sample_loop(net_cpu, x_T=x_T, num_steps=10, eta=0.0, y=lab, w=2.0, progress=False)
            b = diff_dev.ddim_sample_loop(net_dev, x_T=x_T.to(dev), num_steps=10, eta=0.0, y=lab.to(dev), w=2.0,
                                          progress=False)
        d = _max_diff(a, b)
        return d, 1e-3, d <= 1e-3

    def real_images(n):
        from course_utils.data import load_fashion_mnist
        return load_fashion_mnist(train=False, image_size=S, limit=n).images

    def classifier():
        from course_utils.metrics import classify
        real = real_images(128 if ctx.tiny else 2000)
        with _no_tf32():
            same = float((classify(real).cpu() == classify(real.to(dev)).cpu()).float().mean())
        return same, 0.99, same >= 0.99

    def frechet():
        from course_utils.metrics import frechet_distance
        real = real_images(256 if ctx.tiny else 2000)
        half = real.shape[0] // 2
        fake = (real[half:] + 0.2 * torch.randn(real[half:].shape, generator=g)).clamp(-1, 1)
        with _no_tf32():
            a = frechet_distance(real[:half], fake)
            b = frechet_distance(real[:half].to(dev), fake.to(dev))
        d = abs(a - b) / max(abs(a), 1e-6)
        return d, 1e-3, d <= 1e-3

    def train_path(amp: str):
        def run():
            from course_utils.train import TrainConfig, resolve_amp_dtype, train
            data = torch.rand(256, 1, S, S, generator=g) * 2 - 1
            net = _unet(cond=False)
            schedule = GaussianDiffusion(linear_betas(1000))       # train() moves it to the device in place
            before = [p.detach().clone() for p in net.parameters()]
            steps = 6 if ctx.tiny else 40
            cfg = TrainConfig(steps=steps, batch_size=32, lr=2e-3, warmup_steps=2, device=str(dev), amp=amp,
                              log_every=steps, progress=False)
            r = train(net, schedule, data, cfg)
            moved = any(not torch.equal(a, b.cpu()) for a, b in zip(before, r.model.parameters()))
            finite = all(v == v and abs(v) < float("inf") for v in r.losses)
            dtype = resolve_amp_dtype(amp, dev)
            # a 3×3 kernel (a 1×1 one has the same strides in both memory formats)
            conv = max((p for p in r.model.parameters() if p.ndim == 4 and p.shape[-1] > 1), key=lambda p: p.shape[1])
            return {"final_loss": round(r.losses[-1], 4), "autocast": str(dtype),
                    "channels_last": conv.is_contiguous(memory_format=torch.channels_last)}, None, finite and moved
        return run

    def cfg16_assessment():
        from course_utils.grading import assess_class_agreement
        from course_utils.pretrained import load_pretrained
        model, diffusion, _ = load_pretrained("cfg16", device=dev)
        r = assess_class_agreement(model, diffusion, per_class=1 if ctx.tiny else 20, w=2.0, seed=0,
                                   num_steps=2 if ctx.tiny else 20)
        if ctx.tiny:                                  # 10 samples, 2 steps: runs, gives a fraction
            return r.agreement, None, 0.0 <= r.agreement <= 1.0
        return r.agreement, 0.9, r.agreement >= 0.9

    kind = "smoke" if ctx.tiny else "agreement"
    checks = [("GaussianDiffusion buffers .to(device) equal the CPU's", kind, buffers),
              ("q_sample, fixed t and ε", kind, q_sample),
              ("L_simple, fixed t and ε (fp32, TF32 off), relative", kind, loss),
              ("conditional U-Net forward, fp32 (TF32 off)", kind, forward_fp32),
              ("U-Net forward, channels_last vs contiguous (TF32 off)", kind, channels_last),
              ("U-Net forward, bf16 autocast vs fp32, relative L2", kind, bf16),
              ("guided DDIM-10 (w = 2, η = 0) from a fixed x_T (TF32 off)", kind, ddim),
              ("shipped classifier: same predictions, fraction", kind, classifier),
              ("Fréchet distance (float64 statistics), relative", kind, frechet),
              ("train(): the GPU path (amp auto, channels_last, fused AdamW, EMA)", "smoke", train_path("auto"))]
    if not ctx.tiny:
        checks += [("train(): fp16 autocast + GradScaler", "smoke", train_path("fp16")),
                   ("cfg16 graded on the device (lesson 07's assessment, 20 per class, DDIM-20, w = 2)", "goal",
                    cfg16_assessment)]
    else:
        checks += [("cfg16 graded (1 per class, DDIM-2): runs", "smoke", cfg16_assessment)]
    return checks


def _unit_test_files(tiny: bool) -> list[str]:
    out = []
    for name in (TINY_UNIT_TEST_MODULES if tiny else UNIT_TEST_MODULES):
        for folder in ("tests/unit", "tests"):
            if (REPO / folder / name).exists():
                out.append(f"{folder}/{name}")
                break
    return out


def _junit_counts(path: Path) -> dict:
    import xml.etree.ElementTree as ET
    root = ET.parse(path).getroot()
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for case in root.iter("testcase"):
        counts["tests"] += 1
        for tag, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            el = case.find(tag)
            if el is not None:
                counts[key] += 1
                if tag != "skipped":
                    failed.append(f"{case.get('classname')}::{case.get('name')}: {(el.get('message') or '')[:200]}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failed": failed[:30]}


def section_unit_tests(ctx: Ctx) -> int:
    import torch

    from .common import machine_info
    out = {"benchmark": "gpu_tests", "machine": machine_info(ctx.device), "tiny": ctx.tiny,
           "what": "(a) agreement checks: each call on the device against the same call on the CPU (kind "
                   "'agreement'), or a code path that must run and give finite numbers (kind 'smoke'); (b) the "
                   "package's unit tests, unchanged, under this machine's Python and torch (CPU tensors: "
                   "tests/conftest.py has no device fixture)",
           "checks": [], "pytest": None}
    for name, kind, fn in _agreement_checks(ctx):
        t0 = time.perf_counter()
        try:
            measured, tol, passed = fn()
            row = {"check": name, "kind": kind, "status": "passed" if passed else "failed", "measured": measured,
                   "tolerance": tol}
        except Exception as err:                                  # noqa: BLE001 - record and go on
            row = {"check": name, "kind": kind, "status": "error", "error": f"{type(err).__name__}: {str(err)[:300]}"}
        row["seconds"] = round(time.perf_counter() - t0, 2)
        out["checks"].append(row)
        print(f"  {row['status']:<7} {name}: {row.get('measured', row.get('error'))}", flush=True)
        ctx.write("gpu_tests", out)
    files = _unit_test_files(ctx.tiny)
    budget = ctx.left() - 3
    if budget < 10 or not files:
        out["pytest"] = {"status": "skipped", "reason": "no time left" if files else "no unit-test files found"}
    else:
        junit = Path(tempfile.mkdtemp(prefix="gpu-check-junit-")) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
               f"--junitxml={junit}", *files]
        if not ctx.tiny and _has("xdist") and (os.cpu_count() or 1) >= 8:
            cmd += ["-n", "8"]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=budget)
            status = "passed" if proc.returncode == 0 else "failed"
            tail = (proc.stdout + proc.stderr)[-1500:]
        except subprocess.TimeoutExpired as err:
            status, tail = "timeout", str(err.stdout or "")[-1500:]
        out["pytest"] = {"status": status, "command": " ".join(cmd[1:]), "files": files,
                         "seconds": round(time.perf_counter() - t0, 1), "tail": tail,
                         **(_junit_counts(junit) if junit.exists() else {})}
        print(f"  pytest {status}: {out['pytest'].get('passed')} passed, {out['pytest'].get('failures')} failed",
              flush=True)
    out["torch_cuda"] = torch.version.cuda
    ctx.write("gpu_tests", out)
    return 0


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------------------------ 2. training throughput

def section_train_throughput(ctx: Ctx) -> int:
    from . import train_throughput
    if ctx.tiny:
        args = ["--quick", "--no-variants", "--batch", "8", "--image-size", "28"]
    else:
        args = ["--image-size", "28", "--batch", "256", "--repeats", "2", "--warmup", "15", "--steps", "200",
                "--batches", "1024", "--compile-modes", "default,reduce-overhead"]
    args += ["--device", ctx.device.type] + shlex.split(ctx.a.throughput_args or "")
    args += ["--out", str(ctx.results), "--name", f"train_throughput_{ctx.suffix}"]
    rc = train_throughput.main(args)
    if ctx.mirror:
        ctx.mirror.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ctx.results / f"train_throughput_{ctx.suffix}.json", ctx.mirror)
    return rc


# ------------------------------------------------------------------------------ 3. the airbench attempt

AIRBENCH_GOALS = {"class_agreement": 0.90, "frechet_distance": 10.0, "train_s": 60.0}


def _airbench_args(ctx: Ctx) -> argparse.Namespace:
    tiny = ctx.tiny
    p = argparse.ArgumentParser(prog="gpu_check airbench")
    p.add_argument("--budget-s", type=float, default=2.0 if tiny else AIRBENCH_GOALS["train_s"])
    p.add_argument("--eval-every-s", type=float, default=1.0 if tiny else 10.0)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--channels", default="8,16" if tiny else "32,64,128")
    p.add_argument("--batch", type=int, default=16 if tiny else 256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=2 if tiny else 100)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--schedule", default="linear", choices=("linear", "cosine"))
    p.add_argument("--compile", action="store_true", help="torch.compile (its compile time counts as training)")
    p.add_argument("--per-class", type=int, default=2 if tiny else 50, help="samples per class, evaluations")
    p.add_argument("--final-per-class", type=int, default=2 if tiny else 200, help="samples per class, the last one")
    p.add_argument("--ddim-steps", type=int, default=2 if tiny else 20)
    p.add_argument("--w", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=256 if tiny else None, help="training images (default all 60 000)")
    p.add_argument("--real-limit", type=int, default=64 if tiny else None, help="test images for the FD (all 10 000)")
    return p.parse_args(shlex.split(ctx.a.airbench_args or ""))


def section_airbench(ctx: Ctx) -> int:
    import torch

    from course_utils.data import load_fashion_mnist
    from course_utils.diffusion import GaussianDiffusion
    from course_utils.metrics import class_agreement, frechet_distance
    from course_utils.models import UNet, count_parameters
    from course_utils.schedules import cosine_betas, linear_betas
    from course_utils.train import TrainConfig, train

    from .common import machine_info
    a = _airbench_args(ctx)
    dev, S = ctx.device, a.image_size
    data = load_fashion_mnist(train=True, image_size=S, limit=a.limit)
    real = load_fashion_mnist(train=False, image_size=S, limit=a.real_limit).images.to(dev)
    betas = linear_betas(1000) if a.schedule == "linear" else cosine_betas(1000)
    diffusion = GaussianDiffusion(betas, clip_x0=True).to(dev)
    model = UNet(channels=tuple(int(c) for c in a.channels.split(",")), num_classes=10)
    cfg = TrainConfig(steps=10 ** 7, batch_size=a.batch, lr=a.lr, warmup_steps=a.warmup, ema_decay=a.ema,
                      seed=a.seed, device=str(dev), log_every=1 if ctx.tiny else 25, progress=False,
                      compile=a.compile)

    @torch.inference_mode()
    def evaluate(ema_model, per_class: int) -> dict:
        ema_model.eval()
        labels = torch.arange(10, device=dev).repeat_interleave(per_class)
        g = torch.Generator(device=dev).manual_seed(a.seed)
        xs = [diffusion.ddim_sample_loop(ema_model, (len(lb), 1, S, S), num_steps=a.ddim_steps, eta=0.0, y=lb,
                                         w=a.w, generator=g, progress=False) for lb in labels.split(1000)]
        x = torch.cat(xs).float()
        return {"class_agreement": round(class_agreement(x, labels), 4),
                "frechet_distance": round(frechet_distance(real, x), 3), "samples": int(x.shape[0])}

    out = {"benchmark": "airbench", "machine": machine_info(dev), "tiny": ctx.tiny, "goals": AIRBENCH_GOALS,
           "config": {**vars(a), "params": count_parameters(model), "amp": cfg.amp, "T": 1000},
           "judge": f"EMA weights; DDIM-{a.ddim_steps} (η = 0, x̂0 clipped), guidance w = {a.w}, seed {a.seed}; shipped "
                    f"classifier: class agreement, and the Fréchet distance of its 128-d features against "
                    f"{real.shape[0]} test images",
           "curve": [], "final": None}
    clock = {"eval_s": 0.0, "next": a.eval_every_s}

    def judged(state, per_class: int) -> dict:
        t0 = time.perf_counter()
        ev = evaluate(state.ema_model, per_class)
        clock["eval_s"] += time.perf_counter() - t0
        return ev

    def callback(state):
        train_s = state.elapsed - clock["eval_s"]
        done = train_s >= a.budget_s or ctx.left() < (5 if ctx.tiny else 20)    # keep time for the last judgement
        if train_s >= clock["next"] or done:
            ev = judged(state, a.per_class)
            out["curve"].append({"step": state.step, "train_s": round(train_s, 2), **ev})
            print(f"  step {state.step:6d} train {train_s:6.1f} s  agreement {ev['class_agreement']:.3f}  "
                  f"FD {ev['frechet_distance']:.2f}", flush=True)
            clock["next"] += a.eval_every_s
            ctx.write("airbench", out)
        return done

    result = train(model, diffusion, data, cfg, callbacks=[callback])
    out["steps_run"] = len(result.losses)
    out["train_s"] = round(result.wall_time - clock["eval_s"], 2)
    out["images_per_s"] = round(len(result.losses) * a.batch / out["train_s"], 1)
    state = type("S", (), {"ema_model": result.ema_model})
    out["final"] = {"train_s": out["train_s"], "step": out["steps_run"], **judged(state, a.final_per_class)}

    def first(pred):
        return next((p["train_s"] for p in out["curve"] + [out["final"]] if pred(p)), None)
    ok_a = lambda p: p["class_agreement"] >= AIRBENCH_GOALS["class_agreement"]       # noqa: E731
    ok_f = lambda p: p["frechet_distance"] <= AIRBENCH_GOALS["frechet_distance"]     # noqa: E731
    out["reached"] = {"class_agreement_at_s": first(ok_a), "frechet_distance_at_s": first(ok_f),
                      "both_at_s": first(lambda p: ok_a(p) and ok_f(p))}
    fin = out["final"]
    out["verdict"] = ("met" if ok_a(fin) and ok_f(fin) and out["train_s"] <= AIRBENCH_GOALS["train_s"] * 1.02
                      else "not met")
    print(f"  final: agreement {fin['class_agreement']:.3f}, FD {fin['frechet_distance']:.2f} after "
          f"{out['train_s']} s of training ({out['verdict']})", flush=True)
    ctx.write("airbench", out)
    return 0


# ------------------------------------------------------------------------------ 4. sampling

def section_sampling(ctx: Ctx) -> int:
    from . import sampling
    if ctx.tiny:
        sizes = ["--samples", "4", "--ddpm-samples", "2", "--ddpm-steps", "10", "--steps", "2", "--batch", "4",
                 "--real-limit", "64"]
    else:
        sizes = ["--samples", "1000", "--ddpm-samples", "1000", "--steps", "20,50", "--batch", "1000"]
    common = sizes + ["--etas", "0", "--device", ctx.device.type, "--out", str(ctx.results)]
    rc = 0
    # tiny: cfg16 only (the guided path; tests/test_bench.py's smoke run covers ddpm16), DDPM respaced to 10 steps
    for ckpt, stem in (("ddpm16", "sampling"), ("cfg16", "sampling_cfg16"))[1 if ctx.tiny else 0:]:
        rc |= sampling.main(common + ["--checkpoint", ckpt, "--w", "2", "--name", f"{stem}_{ctx.suffix}"])
        if ctx.mirror:
            ctx.mirror.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ctx.results / f"{stem}_{ctx.suffix}.json", ctx.mirror)
    return rc


# ------------------------------------------------------------------------------ 5. the lessons in GPU mode

STUB_NOTEBOOK = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                            "source": "from course_utils.utils import get_device\ndevice = get_device('auto')\n"
                                      "print(f'running on {device}')"}],
                 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                 "nbformat": 4, "nbformat_minor": 5}
TINY_LESSONS = ("stub",)
LESSON_CAP_S = {"07_final_assessment": 150, "04_training_sampling": 120, "05_time_embeddings": 120}


def all_lessons() -> list[str]:
    """The start page and every lesson folder under solutions/ (read from disk: no registry needed)."""
    sol = REPO / "solutions"
    found = sorted(p.name for p in sol.iterdir() if p.is_dir() and re.match(r"\d\d_", p.name)
                   and (p / f"{p.name}.ipynb").exists())
    return (["00_start_here"] if (sol / "00_start_here.ipynb").exists() else []) + found


def _scratch_copy(lesson: str, work: Path) -> Path:
    dst = work / lesson
    if lesson == "stub":
        dst.mkdir(parents=True)
        (dst / "stub.ipynb").write_text(json.dumps(STUB_NOTEBOOK))
    elif lesson == "00_start_here":
        dst.mkdir(parents=True)
        shutil.copy2(REPO / "solutions" / f"{lesson}.ipynb", dst)
    else:
        shutil.copytree(REPO / "solutions" / lesson, dst,
                        ignore=shutil.ignore_patterns("*.gif", "assessment_model.pt*", ".ipynb_checkpoints"))
    return dst / f"{lesson}.ipynb"


def _kill_tagged(tag: str) -> None:
    """End the processes this check started that carry GPU_CHECK_TAG=tag (a notebook's kernel starts its own
    session, so killing the child's process group alone would leave it running)."""
    needle = f"GPU_CHECK_TAG={tag}".encode()
    for pid_dir in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (pid_dir / "environ").read_bytes().split(b"\0") and int(pid_dir.name) != os.getpid():
                os.kill(int(pid_dir.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _run_notebook_child(path: Path, timeout: float) -> dict:
    """Execute one notebook in place of this process (``--run-notebook``); the result on the last line."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + timeout
    client = NotebookClient(nb, timeout=int(timeout), kernel_name="python3",
                            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                            resources={"metadata": {"path": str(path.parent)}})
    row = {"status": "ok", "error": None}
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellTimeoutError:
        row.update(status="timeout", error=f"stopped after {timeout:.0f} s (a cell was still running)")
    except CellExecutionError as err:
        row.update(status="error", error=f"{err.ename}: {str(err.evalue)[:300]}")
    except DeadKernelError as err:
        row.update(status="error", error=f"DeadKernelError: {str(err)[:300]}")
    row["seconds"] = round(time.perf_counter() - t0, 1)
    code = [c for c in nb.cells if c.cell_type == "code"]
    row["cells"], row["cells_run"] = len(code), sum(1 for c in code if c.get("execution_count"))
    lines = [o.get("text", "") for c in code for o in c.get("outputs", []) if o.get("output_type") == "stream"]
    row["device_line"] = next((ln.strip()[:160] for txt in lines for ln in txt.splitlines() if "running on" in ln), None)
    nbformat.write(nb, path.with_name("executed.ipynb"))
    return row


def section_lessons(ctx: Ctx) -> int:
    from .common import machine_info
    lessons = ctx.a.lessons.split(",") if ctx.a.lessons else (list(TINY_LESSONS) if ctx.tiny else all_lessons())
    lessons.sort(key=lambda n: -LESSON_CAP_S.get(n, 60))            # the long ones start first
    workers = ctx.a.lesson_workers or (1 if ctx.tiny else 3)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-lessons-"))
    data_dir = os.environ.get("COURSE_DATA_DIR") or str(REPO / "data")
    out = {"benchmark": "course_runtime", "machine": machine_info(ctx.device), "tiny": ctx.tiny,
           "how": f"nbclient, kernel python3, in a scratch copy of each solution folder; {workers} notebook(s) at a "
                  "time (run times of concurrent notebooks include their sharing of the GPU and CPU); each "
                  "notebook in the mode it picks on this device; lesson 07 with COURSE_MODE=full",
           "workers": workers, "rows": []}
    lock = threading.Lock()

    def one(lesson: str) -> dict:
        limit = min(LESSON_CAP_S.get(lesson, 60) * (1 if not ctx.tiny else 0.5), ctx.left() - 5)
        row = {"lesson": lesson, "mode": "COURSE_MODE=full" if lesson.startswith("07_") else "auto (device)"}
        if limit < 5:
            return {**row, "status": "skipped", "error": "no time left", "seconds": 0}
        nb = _scratch_copy(lesson, work)
        tag = uuid.uuid4().hex
        env = {**os.environ, "GPU_CHECK_TAG": tag, "COURSE_DATA_DIR": data_dir, "PYTHONWARNINGS": "ignore",
               "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        if lesson.startswith("07_"):
            env.update(COURSE_MODE="full", COURSE_ASSESSMENT_OUT=str(nb.parent / "assessment_model.pt"))
        cmd = [sys.executable, "-m", "bench.gpu_check", "--run-notebook", str(nb), "--notebook-timeout", str(limit)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            text, _ = proc.communicate(timeout=limit + 30)
            res = next((json.loads(ln[len("GPU_CHECK_RESULT "):]) for ln in reversed(text.splitlines())
                        if ln.startswith("GPU_CHECK_RESULT ")), None)
            row.update(res or {"status": "error", "error": f"no result (exit {proc.returncode}): {text[-400:]}"})
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            row.update(status="timeout", error=f"killed after {limit + 30:.0f} s")
        finally:
            _kill_tagged(tag)
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        with lock:
            out["rows"].append(row)
            ctx.write("course_runtime", out)
        print(f"  {lesson:<28} {row['status']:<8} {row.get('seconds')} s  {row.get('error') or ''}", flush=True)
        return row

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, lessons))
    order = {n: i for i, n in enumerate(sorted(lessons))}
    out["rows"].sort(key=lambda r: order.get(r["lesson"], 99))
    ctx.write("course_runtime", out)
    return 0


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)



RUNNERS = {"unit_tests": section_unit_tests, "train_throughput": section_train_throughput,
           "airbench": section_airbench, "sampling": section_sampling, "lessons": section_lessons}
