"""The GPU check (issue 21): what the course has never run on a GPU, measured in one go of about 8 minutes.

    bench/gpu_check.sh                           # on the GPU machine: sets up the environment, then runs this
    python -m bench.gpu_check                    # this machine's CUDA GPU → bench/results/*_cuda.json, BENCHMARKS.md
    python -m bench.gpu_check --only airbench,lessons    # rerun some sections (the others' files stay)
    python -m bench.gpu_check --tiny             # the same end to end on a CPU at tiny sizes, into a temp folder

Sections, in the order they run, each in its own process under a time limit (one that overruns is
stopped and recorded as "timeout"; each writes its file as it goes, so a run cut short leaves figures):

1. ``unit_tests`` → ``gpu_tests_cuda.json``: (a) CUDA agreement checks written for this script (schedule
   buffers, q_sample, L_simple with fixed t and ε, the U-Net in fp32, channels_last and bf16 autocast,
   guided DDIM from a fixed x_T, the classifier and the Fréchet distance: each on the GPU against the same
   call on the CPU; train() on its GPU path with bf16 and with fp16 + GradScaler; cfg16 graded on the GPU);
   (b) the package's unit tests (pytest, not slow), unchanged, under this machine's Python and torch.
   tests/conftest.py has no device fixture, so (b)'s tensors stay on the CPU: (b) proves the package under
   the GPU machine's software, (a) proves the CUDA paths.
2. ``train_throughput`` → ``train_throughput_cuda.json``: bench.train_throughput at 28 px, batch 256:
   ours (bf16 autocast, channels_last, fused AdamW, EMA) vs the diffusers tutorial loop vs the naive loop,
   plus torch.compile in its default mode and in mode "reduce-overhead" (inductor's CUDA graphs; the trainer
   has no CUDA-graph option of its own), MFU against the data-sheet peak (bench/common.py).
3. ``airbench`` → ``airbench_cuda.json``: a class-conditional 28 px FashionMNIST model trained for at most
   60 s (wall time of training, evaluations excluded), judged every 10 s and at the end: class agreement of
   guided DDIM samples with the shipped classifier (goal ≥ 90 %) and the Fréchet distance in its feature
   space against the 10 000 test images (goal ≤ 10).
4. ``sampling`` → ``sampling_cuda.json``, ``sampling_cfg16_cuda.json``: bench.sampling, DDPM-1000 and
   DDIM-20/50 of the shipped ddpm16, and of cfg16 with guidance w = 2; images/s and Fréchet distance.
5. ``lessons`` → ``course_runtime_cuda.json``: every solution notebook top to bottom (nbclient, in a
   scratch copy), in its GPU mode (the notebooks pick sizes from get_device: on CUDA their FAST is False),
   lesson 07 with COURSE_MODE=full (its assessment training and grading); three at a time.

``gpu_check_cuda.json`` records each section's status, time and limit. Without a CUDA device the script
exits with status 2, unless ``--tiny``; ``--tiny`` never writes into bench/results.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from pathlib import Path

from .gpu_sections import AIRBENCH_GOALS, RUNNERS, Ctx, _environment, _kill_group, _kill_tagged, _run_notebook_child

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"     # as bench.common's (which imports torch: see below)
# bench.common (and so torch) is imported inside the functions: a notebook's runner process needs only nbclient

SECTIONS = ("unit_tests", "train_throughput", "airbench", "sampling", "lessons")
# seconds per section on a GPU, 450 in all (the device tool's command limit is 600 s, set-up included); time a
# section leaves unused rolls forward to the next
BUDGET_S = {"unit_tests": 60, "train_throughput": 130, "airbench": 100, "sampling": 40, "lessons": 120}
# tiny: safety nets only (a loaded 2-core machine can be 5x slower than an idle one)
TINY_BUDGET_S = {"unit_tests": 240, "train_throughput": 240, "airbench": 240, "sampling": 240, "lessons": 240}
FILES = {"unit_tests": ("gpu_tests",), "train_throughput": ("train_throughput",), "airbench": ("airbench",),
         "sampling": ("sampling", "sampling_cfg16"), "lessons": ("course_runtime",)}
NO_CUDA = ("gpu_check: no CUDA device here (torch {torch}, built for CUDA {cuda}); this check measures a GPU. "
           "Run bench/gpu_check.sh on a GPU machine, or add --tiny for the CPU smoke run of the same script.")


# ------------------------------------------------------------------------------ the driver

def _child_args(a: argparse.Namespace, results: Path, section: str, limit: float) -> list[str]:
    cmd = [sys.executable, "-m", "bench.gpu_check", "--section", section, "--results", str(results),
           "--deadline-s", f"{limit:.0f}"]
    for flag, value in (("--mirror", a.mirror), ("--throughput-args", a.throughput_args),
                        ("--airbench-args", a.airbench_args), ("--lessons", a.lessons),
                        ("--lesson-workers", a.lesson_workers)):
        if value:
            cmd += [flag, str(value)]
    return cmd + (["--tiny"] if a.tiny else [])


def _run_section(a: argparse.Namespace, results: Path, section: str, limit: float, suffix: str) -> dict:
    """One section in a child process (its own session) under ``limit`` seconds; output streamed with a prefix."""
    tag = uuid.uuid4().hex
    env = {**os.environ, "GPU_CHECK_TAG": tag, "PYTHONUNBUFFERED": "1"}
    tail: deque[str] = deque(maxlen=25)
    t0 = time.monotonic()
    proc = subprocess.Popen(_child_args(a, results, section, limit), cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def pump():
        for line in proc.stdout:
            tail.append(line.rstrip())
            print(f"[{section}] {line}", end="", flush=True)
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=limit)
        status = "ok" if rc == 0 else "failed"
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        rc, status = None, "timeout"
    _kill_tagged(tag)
    reader.join(timeout=5)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s, _CPU_SEEN[0] = cpu.ru_utime + cpu.ru_stime - _CPU_SEEN[0], cpu.ru_utime + cpu.ru_stime
    files = [f"{stem}_{suffix}.json" for stem in FILES[section] if (results / f"{stem}_{suffix}.json").exists()]
    return {"section": section, "status": status, "rc": rc, "seconds": round(time.monotonic() - t0, 1),
            "cpu_s": round(cpu_s, 1),
            "limit_s": round(limit), "files": files, "tail": list(tail)}


_CPU_SEEN = [0.0]      # CPU seconds of finished child processes counted so far


def _render(results: Path, tiny: bool) -> Path:
    from . import __main__ as report
    from .common import read_results
    if not tiny:
        return report.render()
    # the tiny run's *_cpu files stand in for *_cuda ones, so that the GPU parts of the report are exercised
    res = {re.sub(r"_cpu$", "_cuda", k): v for k, v in read_results(results).items()}
    return report.render(res, results / "BENCHMARKS.md")


# ------------------------------------------------------------------------------ the report's GPU section

GPU_KEYS = ("gpu_check_cuda", "gpu_tests_cuda", "course_runtime_cuda", "airbench_cuda", "sampling_cfg16_cuda")


def _md(header, rows) -> str:
    from .common import markdown_table
    return markdown_table(header, rows)


def _pct(v) -> str | None:
    return None if v is None else f"{100 * v:.1f} %"


def report_lines(results: dict) -> list[str]:
    """BENCHMARKS.md's section "On a GPU", from the GPU check's ``*_cuda.json`` files; nothing when none is there."""
    if not any(k in results for k in GPU_KEYS):
        return []
    out = ["## On a GPU (`bench/gpu_check.sh`)", ""]
    summary = results.get("gpu_check_cuda")
    if summary:
        m, env = summary["machine"], summary.get("environment", {})
        out += [f"Measured {m['date']} on {m['device_name']} (torch {m['torch']}, CUDA {env.get('cuda_build')}, "
                f"commit {m.get('git_commit')}). Command: `{summary.get('command')}` ({summary.get('wall_time_s')} s "
                f"of a {summary.get('budget_s')} s budget).", "",
                _md(["section", "status", "seconds", "limit (s)", "files"],
                    [[s["section"], s["status"], s.get("seconds"), s.get("limit_s"), ", ".join(s.get("files", []))]
                     for s in summary["sections"]]), ""]
    out += ["### Goals on the GPU", "", _md(["goal", "measured", "status"], _gpu_goals(results)), ""]
    tests = results.get("gpu_tests_cuda")
    if tests:
        rows = [[c["check"], c["kind"], c["status"], _fmt(c.get("measured", c.get("error"))), c.get("tolerance"),
                 c.get("seconds")] for c in tests["checks"]]
        out += ["### Unit tests on the GPU", "", tests["what"] + ".", "",
                _md(["check", "kind", "status", "measured", "tolerance", "s"], rows), ""]
        pt = tests.get("pytest") or {}
        if pt.get("status") == "skipped":
            out += [f"pytest: skipped ({pt.get('reason')}).", ""]
        elif pt:
            out += [f"pytest (`{pt.get('command')}`): {pt.get('status')}, {pt.get('passed')} passed, "
                    f"{pt.get('failures')} failed, {pt.get('errors')} errors, {pt.get('skipped')} skipped in "
                    f"{pt.get('seconds')} s." + "".join(f"\n- {f}" for f in pt.get("failed", [])), ""]
    lessons = results.get("course_runtime_cuda")
    if lessons:
        rows = [[r["lesson"], r.get("mode"), r["status"], r.get("seconds"), r.get("device_line"), r.get("error")]
                for r in lessons["rows"]]
        out += ["### Lessons in their GPU mode", "", lessons["how"] + ".", "",
                _md(["lesson", "mode", "status", "run all (s)", "the notebook says", "error"], rows), ""]
    air = results.get("airbench_cuda")
    if air:
        c = air["config"]
        rows = [[p["train_s"], p["step"], _pct(p["class_agreement"]), p["frechet_distance"], p["samples"]]
                for p in air["curve"]]
        fin, reached = air.get("final"), air.get("reached", {})
        out += ["### Time to quality on the GPU (the \"airbench\" attempt)", "",
                f"A class-conditional {c['image_size']} px U-Net (channels {c['channels']}, {c['params']:,} parameters, "
                f"T = {c['T']}, {c['schedule']} β), course_utils.train at batch {c['batch']}, lr {c['lr']}, warm-up "
                f"{c['warmup']}, EMA {c['ema']}, autocast {c['amp']}, compile {c['compile']}; training budget "
                f"{c['budget_s']} s (evaluations excluded). Judged: {air['judge']}. Goals: class agreement ≥ "
                f"{AIRBENCH_GOALS['class_agreement']:.0%}, Fréchet distance ≤ {AIRBENCH_GOALS['frechet_distance']:g} "
                f"within {AIRBENCH_GOALS['train_s']:g} s.", "",
                _md(["training s", "step", "class agreement", "Fréchet distance", "samples"], rows), ""]
        if fin:
            out += [f"Final ({fin['samples']} samples, after {fin['train_s']} s and {fin['step']} steps, "
                    f"{air.get('images_per_s')} images/s): class agreement {_pct(fin['class_agreement'])}, Fréchet "
                    f"distance {fin['frechet_distance']}. Goals first met (training time): agreement "
                    f"{_s(reached.get('class_agreement_at_s'))}, distance {_s(reached.get('frechet_distance_at_s'))}, "
                    f"both {_s(reached.get('both_at_s'))}.", ""]
    rows = []
    for key in ("sampling_cuda", "sampling_cfg16_cuda"):
        r = results.get(key)
        for row in (r or {}).get("rows", []):
            guide = f", w = {r['guidance_w']}" if "guidance_w" in r else ""
            rows.append([r["checkpoint"] + guide, row["sampler"], row["eta"], row["steps"], row["samples"],
                         row["images_per_s"], row["frechet_distance"]])
    if rows:
        out += ["### Sampling on the GPU", "", "Batch of up to 1000 per call, x̂0 clipped; guidance runs the "
                "conditional and the null pass in one batch.", "",
                _md(["checkpoint", "sampler", "η", "steps", "samples", "images/s", "Fréchet distance ↓"], rows), ""]
    return out


def _fmt(v):
    if isinstance(v, dict):
        return ", ".join(f"{k} {x}" for k, x in v.items())
    if isinstance(v, float):
        return f"{v:.3g}"
    return v


def _s(v) -> str:
    return "not reached" if v is None else f"at {v} s"


def _gpu_goals(results: dict) -> list[list]:
    rows = []
    tp = results.get("train_throughput_cuda")
    ours = next((r for r in (tp or {}).get("rows", []) if r["name"] == "ours: course_utils.train (default)"
                 and "mfu" in r), None)
    rows.append(["MFU ≥ 30 % (default trainer)", f"{_pct(ours['mfu'])} ({ours['dtype']}, {tp['image_size']} px)"
                 if ours else "not measured", ("met" if ours["mfu"] >= 0.3 else "not met") if ours else "open"])
    air = results.get("airbench_cuda")
    fin = (air or {}).get("final")
    rows.append(["≥ 90 % class agreement and Fréchet distance ≤ 10 in ≤ 60 s of training (28 px)",
                 f"{_pct(fin['class_agreement'])}, {fin['frechet_distance']} after {fin['train_s']} s" if fin
                 else "not measured", air.get("verdict", "open") if fin else "open"])
    les = results.get("course_runtime_cuda")
    if les:
        ok = sum(r["status"] == "ok" for r in les["rows"])
        rows.append(["every lesson's GPU mode runs without code changes", f"{ok}/{len(les['rows'])} ran to the end",
                     "met" if ok == len(les["rows"]) and les["rows"] else "not met"])
    else:
        rows.append(["every lesson's GPU mode runs without code changes", "not measured", "open"])
    tests = results.get("gpu_tests_cuda")
    if tests:
        passed = sum(c["status"] == "passed" for c in tests["checks"])
        pt = tests.get("pytest") or {}
        rows.append(["the package on CUDA (agreement checks; unit tests under the GPU machine's software)",
                     f"{passed}/{len(tests['checks'])} checks; pytest {pt.get('passed')} passed, "
                     f"{pt.get('failures')} failed", "met" if passed == len(tests["checks"]) and pt.get("status") ==
                     "passed" else "not met"])
    return rows


# ------------------------------------------------------------------------------ what travels to the GPU machine

# The GPU machine's image, as /work/.library/device/KINDS.md lists it (read 2026-11-17): python3 3.12 with these.
DEVICE_HAS = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers
flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py
markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-ml-py onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp""".split())
CARRY_ROOTS = ("diffusers", "nbclient", "nbformat", "jupyter-client", "ipykernel", "ipywidgets")
# needed by pip's metadata, not at run time (ipykernel imports debugpy and IPython jedi only when present; the two
# widget packages are JupyterLab's front-end assets): left behind to stay under the 64 MiB that travels
CARRY_SKIP = {"debugpy", "jedi", "parso", "widgetsnbextension", "jupyterlab-widgets"}
CARRY_LIMIT_MIB = 62


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def carry_packages(roots=CARRY_ROOTS) -> dict[str, str]:
    """{name: version} of the packages to carry: the roots and what they need (this venv's versions, markers read
    for CPython 3.12 on Linux), less what the GPU machine has and CARRY_SKIP."""
    from importlib import metadata

    from packaging.requirements import Requirement
    env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
    out: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = _norm(todo.pop())
        if name in out or name in DEVICE_HAS or name in CARRY_SKIP:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as err:
            raise ValueError(f"{name} is needed on the GPU machine but not installed here; run ./course.sh setup "
                             "first (the wheels are downloaded at this venv's versions).") from err
        out[name] = dist.version
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return dict(sorted(out.items()))


def _travel_bytes() -> int:
    """Bytes of what the device tool sends besides the carried paths: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout
    return sum((REPO / f).stat().st_size for f in out.decode().split("\0") if f and (REPO / f).is_file())


def prepare_carry(dest: Path) -> int:
    """Fill ``dest`` (build/gpu_carry) with the wheels and the data the GPU machine lacks; report the size."""
    import gzip

    from course_utils.data import DEBIAN_DIR, RAW_FILES, prepare
    wheels, raw = dest / "wheels", dest / "data" / "FashionMNIST" / "raw"
    wheels.mkdir(parents=True, exist_ok=True)
    raw.mkdir(parents=True, exist_ok=True)
    pins = carry_packages()
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
            "--implementation", "cp", "-d", str(wheels)]
    for n in (39, 35, 34, 31, 28, 27, 24, 17, 5):
        base += ["--platform", f"manylinux_2_{n}_x86_64"]
    base += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64", "--platform", "any"]
    print(f"carry: {len(pins)} wheels: " + ", ".join(f"{k}=={v}" for k, v in pins.items()), flush=True)
    if subprocess.run(base + [f"{k}=={v}" for k, v in pins.items()]).returncode != 0:
        failed = [k for k, v in pins.items() if subprocess.run(base + [f"{k}=={v}"]).returncode != 0]
        if failed:
            print(f"carry: no wheel for {failed}: the GPU run will miss them", file=sys.stderr)
            return 1
    have = {_norm(w.name.split("-")[0]) for w in wheels.glob("*.whl")}
    for w in wheels.glob("*.whl"):                                 # leftovers of an earlier prepare
        name, version = _norm(w.name.split("-")[0]), w.name.split("-")[1]
        if pins.get(name) != version:
            w.unlink()
    src = DEBIAN_DIR if all((DEBIAN_DIR / f"{f}.gz").exists() for f in RAW_FILES) else None
    for f in RAW_FILES:
        target = raw / f"{f}.gz"
        if target.exists():
            continue
        if src is not None:
            shutil.copy2(src / f"{f}.gz", target)
        else:
            with open(Path(prepare(download=False)) / "FashionMNIST" / "raw" / f, "rb") as fin, \
                    gzip.open(target, "wb") as fout:
                shutil.copyfileobj(fin, fout)
    carry = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    tree = _travel_bytes()
    total = (carry + tree) / 2 ** 20
    print(f"carry: {dest} {carry / 2 ** 20:.1f} MiB (wheels: {len(have)}) + working tree {tree / 2 ** 20:.1f} MiB = "
          f"{total:.1f} MiB of the tool's 64 MiB", flush=True)
    if total > CARRY_LIMIT_MIB:
        print(f"carry: over {CARRY_LIMIT_MIB} MiB: the device call would be refused; shrink the working tree",
              file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (a smoke run; results in a temp folder)")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(SECTIONS)}")
    p.add_argument("--results", default=None, help="results folder (default bench/results; --tiny: a temp folder)")
    p.add_argument("--mirror", default=None, help="also copy every results file here as soon as it is written "
                   "(the device tool's $OUT: what is there comes back even after a timeout)")
    p.add_argument("--budget-s", type=float, default=None, help="the whole run's time limit (default: the sum of "
                   "the sections' budgets, 450 s on a GPU)")
    p.add_argument("--no-render", action="store_true", help="leave BENCHMARKS.md as it is")
    p.add_argument("--throughput-args", default=None, help="extra arguments for bench.train_throughput")
    p.add_argument("--airbench-args", default=None, help="extra arguments for the airbench section, e.g. "
                   "'--channels 64,128,256 --batch 512'")
    p.add_argument("--lessons", default=None, help="comma-separated lesson folders (default: all)")
    p.add_argument("--lesson-workers", type=int, default=None, help="notebooks at a time (default 3; --tiny 1)")
    p.add_argument("--prepare-carry", default=None, metavar="DIR", help="fill DIR with the wheels and data the GPU "
                   "machine lacks (bench/gpu_check.sh prepare: build/gpu_carry) and print what will travel")
    p.add_argument("--section", default=None, help=argparse.SUPPRESS)
    p.add_argument("--deadline-s", type=float, default=600, help=argparse.SUPPRESS)
    p.add_argument("--run-notebook", default=None, help=argparse.SUPPRESS)
    p.add_argument("--notebook-timeout", type=float, default=60, help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.prepare_carry:
        return prepare_carry(Path(a.prepare_carry))
    if a.run_notebook:                                             # child: one notebook
        print("GPU_CHECK_RESULT " + json.dumps(_run_notebook_child(Path(a.run_notebook), a.notebook_timeout)))
        return 0
    import torch

    from .common import machine_info, write_result
    if a.section:                                                  # child: one section
        if a.section not in RUNNERS:
            p.error(f"unknown section {a.section!r}; choose from {', '.join(SECTIONS)}")
        return RUNNERS[a.section](Ctx(a))
    if not a.tiny and not torch.cuda.is_available():
        print(NO_CUDA.format(torch=torch.__version__, cuda=torch.version.cuda), file=sys.stderr)
        return 2
    names = a.only.split(",") if a.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    if a.results is None:
        a.results = tempfile.mkdtemp(prefix="gpu-check-tiny-") if a.tiny else str(RESULTS)
    results = Path(a.results).resolve()
    if a.tiny and results == RESULTS.resolve():
        p.error("--tiny never writes into bench/results (tiny figures are not measurements); pass another --results")
    results.mkdir(parents=True, exist_ok=True)
    budgets = TINY_BUDGET_S if a.tiny else BUDGET_S
    total = a.budget_s or sum(budgets[n] for n in names)
    suffix = "cpu" if a.tiny else "cuda"
    device = torch.device(suffix)
    summary = {"benchmark": "gpu_check", "machine": machine_info(device), "tiny": a.tiny,
               "command": "python -m bench.gpu_check " + " ".join(argv), "budget_s": total,
               "environment": _environment(), "sections": []}
    t0 = time.monotonic()
    mirror = Path(a.mirror) if a.mirror else None

    def save() -> None:
        summary["wall_time_s"] = round(time.monotonic() - t0, 1)
        path = write_result(f"gpu_check_{suffix}", summary, results)
        if mirror:
            mirror.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, mirror / path.name)
    save()
    print(f"gpu_check: {summary['machine']['device_name']}; sections {', '.join(names)}; budget {total:.0f} s; "
          f"results in {results}", flush=True)
    for i, name in enumerate(names):
        remaining = total - (time.monotonic() - t0)
        later = sum(budgets[n] for n in names[i + 1:])
        limit = min(remaining, max(budgets[name], remaining - later))   # time saved earlier rolls forward
        if limit < 10:
            summary["sections"].append({"section": name, "status": "skipped", "reason": "no time left"})
        else:
            print(f"== {name} (limit {limit:.0f} s)", flush=True)
            summary["sections"].append(_run_section(a, results, name, limit, suffix))
        save()
    if not a.no_render:
        summary["report"] = str(_render(results, a.tiny))
        save()
    for s in summary["sections"]:
        print(f"  {s['section']:<17} {s['status']:<8} {s.get('seconds', 0):7.1f} s (limit {s.get('limit_s')}, "
              f"CPU {s.get('cpu_s')} s)")
    print(f"gpu_check: done in {summary['wall_time_s']} s; results in {results}"
          + (f"; report {summary.get('report')}" if not a.no_render else ""))
    return 0 if all(s["status"] == "ok" for s in summary["sections"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
