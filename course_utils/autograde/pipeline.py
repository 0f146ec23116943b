"""Grade a folder of submissions for one lesson: run each in a sandbox, decide every test outside it.

For each submission, in order:

1. **check** the file against the released notebook (:mod:`.submissions`; the advisory scan flags code a
   person should read, and scores nothing);
2. **make inputs** for every check call of every test cell (:mod:`.plan`), from the *source* notebook
   (hidden tests included) and a seed drawn at grading time, here in the trusted process;
3. **run** the student's notebook in its own sandbox (:mod:`.sandbox`, :mod:`.runner`): the test cells'
   text never runs there; instead each planned call runs the student's function on the filed inputs and
   files plain outputs, while the package's answer to that exercise is unavailable (:mod:`.kernel`);
4. **judge** the outputs in this process (:mod:`.judge`), which never loads student code;
5. **record** the scores in nbgrader's gradebook and the autograded notebook (:mod:`.gradebook`), one JSON
   record per student, ``grades.csv`` and the printed table.

Records are written only here, in folders the sandbox cannot see; the grading course (``<out>/work``) is
rebuilt on every run from the source notebooks, and re-running skips a submission whose file, limits and
source are unchanged (its scores are taken from its record, not from anything the sandbox wrote).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import handin as handins
from . import sandbox
from .gradebook import autograded_notebook, record_scores
from .judge import judge_call, load_outputs
from .plan import PlanError, locked_constants, make_inputs, plan_test_cells
from .submissions import _nbgrader_meta, _test_cells, find_submissions, prepare_submission

__all__ = ["Limits", "SubmissionResult", "grade_lesson", "write_summary", "main"]


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's grading run."""

    cell_timeout: int = 120            # seconds per cell; the kernel is interrupted, the next cell runs
    submission_timeout: int = 900      # seconds for the whole notebook; the sandbox is killed after it
    memory_mb: int = 6144              # address-space limit of each process in the sandbox (torch maps a lot)
    cpu_seconds: int = 1800            # CPU-time limit per process (all threads)
    network: bool = False              # False: the sandbox has its own, empty network namespace

    def __post_init__(self):
        for name in ("cell_timeout", "submission_timeout", "memory_mb", "cpu_seconds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"Limits.{name} must be a positive int; got {v!r}.")


@dataclass
class SubmissionResult:
    """One student's grade and what the grader noticed."""

    student: str
    source: str
    sha256: str | None = None
    score: float = 0.0
    max_score: float = 0.0
    tests: dict[str, float | None] = field(default_factory=dict)   # test cell grade_id → points
    flags: list[str] = field(default_factory=list)                  # reasons a person should look
    status: str = "graded"            # graded | needs attention | not gradable
    seconds: float = 0.0
    limits: dict = field(default_factory=dict)
    sandbox: str = ""
    seed: int = 0                     # the grading-time seed the inputs were made from
    verdicts: dict[str, str] = field(default_factory=dict)         # test grade_id → the judge's ✓/✗ lines
    source_sha256: str = ""           # the source notebook the tests came from
    handin_sha256: str | None = None  # a file handed in beside the notebook (lesson 07's checkpoint)

    @property
    def attention(self) -> bool:
        return bool(self.flags)


# making inputs and judging seed torch's global RNG (the checks' references are built under manual_seed):
# with parallel jobs only the sandboxed runs overlap, the trusted steps take turns
_TRUSTED = threading.Lock()


def _env(extra: dict | None = None) -> dict:
    from ..utils import tool_env
    return tool_env({"PYTHONWARNINGS": "ignore", **(extra or {})})


def _build_course(course: Path, source_dir: Path, lesson: str, work: Path) -> Path:
    """A fresh nbgrader course in ``work`` with this lesson generated from the source folder."""
    if work.exists():
        shutil.rmtree(work)
    (work / "solutions").mkdir(parents=True)
    shutil.copy2(course / "nbgrader_config.py", work)
    shutil.copytree(source_dir / lesson, work / "solutions" / lesson,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pt", "*.gif"))
    cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", lesson, "--force"]
    proc = subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {lesson} failed:\n{proc.stdout}\n{proc.stderr}")
    return work


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                 # macOS
        return os.cpu_count() or 1


def resolve_jobs(jobs: int) -> int:
    """``jobs`` ≥ 1 as given; 0 → one per usable CPU."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ValueError(f"jobs must be an int ≥ 0 (0: one per CPU); got {jobs!r}.")
    return jobs or usable_cpus()


def _sandbox_threads(jobs: int) -> int | None:
    """OMP threads of each sandbox when ``jobs`` run at once: None (inherit) for one job or when the grader's
    environment sets OMP_NUM_THREADS, else the CPUs shared out so the kernels do not oversubscribe them."""
    if jobs == 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    return max(1, usable_cpus() // jobs)


def _sandbox_env(limits: Limits, threads: int | None = None) -> tuple[tuple[str, str], ...]:
    from ..utils import GRADING_ENV        # here, not at the top: the sandbox's runner imports this module, not torch
    keep = {k: v for k, v in os.environ.items() if k.startswith("COURSE_") or k in ("OMP_NUM_THREADS", "LANG")}
    if threads is not None:
        keep["OMP_NUM_THREADS"] = str(threads)
    bin_dir = str(Path(sys.executable).parent)
    env = {**keep, "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/home",
           "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime", "JUPYTER_DATA_DIR": "/tmp/jupyter-data",
           "IPYTHONDIR": "/tmp/ipython", "MPLCONFIGDIR": "/tmp/matplotlib", "MPLBACKEND": "Agg",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONWARNINGS": "ignore", **GRADING_ENV,
           "TMPDIR": "/tmp"}
    return tuple(sorted(env.items()))


def _make_inputs(calls, inputs: dict, scratch: Path, seed: int) -> None:
    """Every planned call's inputs, made here and filed for the sandbox (``inputs`` is filled in)."""
    import torch

    for c in calls:
        # the assessment grades the hand-in, installed in the sandbox's working folder under its usual name
        overrides = {"checkpoint": handins.CHECKPOINT_NAME} if c.check == "check_assessment" else None
        inputs[c.key] = make_inputs(c, seed, overrides)
        torch.save(inputs[c.key], scratch / "inputs" / f"{c.key.replace('#', '__')}.pt")


def _verify_handin(calls, path: Path, lesson: str, constants: dict, res: SubmissionResult, scratch: Path):
    """The checked hand-in (lesson 07's checkpoint) installed in the sandbox's folder, or None if none is graded."""
    if not any(c.check == "check_assessment" for c in calls):
        return None
    handin = handins.verify_checkpoint(handins.find_checkpoint(path, lesson),
                                       int(constants.get("MAX_PARAMETERS", 600_000)))
    res.handin_sha256 = handin.sha256
    res.flags.extend(handin.flags)
    if handin.ok:
        handins.install(handin, scratch / "work")
    else:
        res.flags.extend(f"assessment scored 0: {p}" for p in handin.problems)
    return handin


def _judge_all(tests, plans: dict, scratch: Path, inputs: dict, handin, res: SubmissionResult,
               points: dict) -> None:
    """Each test's points and verdicts from the filed outputs, in this process (student code never loaded)."""
    for t in tests:
        texts, passed = [], True
        for c in plans.get(t, []):
            outputs, why = load_outputs(scratch / "outputs" / f"{c.key.replace('#', '__')}.pt")
            if c.check == "check_assessment" and handin is not None and not handin.ok:
                outputs, why = None, "; ".join(handin.problems)
            v = judge_call(c.check, inputs[c.key], outputs, why)
            if c.check == "check_assessment" and v.passed:
                flag = handins.near_copies_of_training_images(outputs.get("samples", {}).get("value"))
                if flag:
                    res.flags.append(flag)
            passed &= v.passed
            texts.append(v.text)
        res.tests[t] = points.get(t, 0.0) if passed and plans.get(t) else 0.0
        res.verdicts[t] = "\n".join(texts)


def _grade_one(work: Path, lesson: str, student: str, path: Path, release: dict, plans: dict, limits: Limits,
               out_dir: Path, hide: tuple[Path, ...], sandboxed: bool, seed: int,
               constants: dict, threads: int | None = None) -> tuple[SubmissionResult, dict]:
    t0 = time.perf_counter()
    ok, how = sandbox.available() if sandboxed else (False, "")
    res = SubmissionResult(student, str(path), limits=asdict(limits), seed=seed,
                           sandbox=how if sandboxed else "NOT sandboxed (--trusting): student code ran as the grader")
    tests = _test_cells(release)
    points = {_nbgrader_meta(c)["grade_id"]: float(_nbgrader_meta(c).get("points", 0)) for c in release["cells"]
              if _nbgrader_meta(c).get("grade")}
    res.tests = {t: 0.0 for t in tests}
    res.max_score = float(sum(points.values()))
    try:
        res.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        pass
    prep = prepare_submission(path, release)
    res.flags.extend(prep.flags)
    if prep.notebook is None:
        res.status = "not gradable"
        res.seconds = round(time.perf_counter() - t0, 1)
        return res, prep.__dict__ | {"notebook": None}

    scratch = out_dir / "sandbox" / student
    if scratch.exists():
        shutil.rmtree(scratch)
    (scratch / "inputs").mkdir(parents=True)
    (scratch / "outputs").mkdir()
    calls = [c for t in tests for c in plans.get(t, [])]
    inputs = {}
    with _TRUSTED:
        _make_inputs(calls, inputs, scratch, seed)
        handin = _verify_handin(calls, path, lesson, constants, res, scratch)
    (scratch / "submission.ipynb").write_text(json.dumps(prep.notebook), encoding="utf-8")
    (scratch / "plan.json").write_text(json.dumps({"cell_timeout": limits.cell_timeout, "calls": [
        {"key": c.key, "test": c.test, "check": c.check, "subjects": list(c.subjects)} for c in calls]}))
    if sandboxed:
        for p in [scratch, *scratch.rglob("*")]:
            os.chown(p, sandbox.NOBODY, sandbox.NOBODY)
        spec = sandbox.SandboxSpec(scratch, hide, limits.network, _sandbox_env(limits, threads))
        cmd = sandbox.command(spec, [sys.executable, "-m", "course_utils.autograde.runner", sandbox.INSIDE])
    else:
        cmd = [sys.executable, "-m", "course_utils.autograde.runner", str(scratch)]
        if threads is not None:
            cmd = ["env", f"OMP_NUM_THREADS={threads}", *cmd]
    log = out_dir / "logs" / f"{student}.log"
    log.parent.mkdir(exist_ok=True)
    rc, timed_out = sandbox.run_sandboxed(cmd, log, limits.submission_timeout, limits.memory_mb,
                                          limits.cpu_seconds)
    if timed_out:
        res.flags.append(f"the whole notebook ran longer than {limits.submission_timeout} s and was stopped")
    status = {}
    try:
        if (scratch / "status.json").is_file() and not (scratch / "status.json").is_symlink():
            status = json.loads((scratch / "status.json").read_text()[:100_000])
    except (ValueError, OSError):
        status = {}
    if status.get("timeouts"):
        res.flags.append(f"a cell ran longer than the cell timeout ({limits.cell_timeout} s) and was interrupted")
    if status.get("dead_at") is not None or (rc not in (0, None) and not timed_out):
        res.flags.append("the kernel died (the code killed its own process or ran out of memory); the tests "
                         f"after that point score 0 — see {log}")
    with _TRUSTED:
        _judge_all(tests, plans, scratch, inputs, handin, res, points)
    executed = None
    ex = scratch / "executed.ipynb"
    if ex.is_file() and not ex.is_symlink() and ex.stat().st_size < 200_000_000:
        try:
            executed = json.loads(ex.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            executed = None
    shutil.rmtree(scratch, ignore_errors=True)
    res.score = float(sum(res.tests.values()))
    if res.flags:
        res.status = "needs attention"
    res.seconds = round(time.perf_counter() - t0, 1)
    return res, {"notebook": prep.notebook, "executed": executed}


def grade_lesson(lesson: str, submissions: str | os.PathLike, course: str | os.PathLike = ".",
                 out: str | os.PathLike | None = None, limits: Limits | None = None, progress=print,
                 source: str | os.PathLike | None = None, trusting: bool = False,
                 seed: int | None = None, jobs: int = 1) -> list[SubmissionResult]:
    """Grade every submission of ``lesson`` in ``submissions``; see the module docstring.

    Args:
        lesson: the lesson folder name, e.g. "02_forward_diffusion".
        submissions: nbgrader's ``submitted/`` folder or a flat folder of ``<student>.ipynb``.
        course: the course root (``nbgrader_config.py``).
        out: results folder (default ``<course>/grading/<lesson>``); re-running reuses finished results.
        limits: :class:`Limits`.
        source: the folder of source notebooks with the hidden tests (default ``<course>/solutions``); keep
            it private (outside the released repository) — the sandbox never sees it.
        trusting: grade without a sandbox (only for code you trust; refused otherwise where bubblewrap
            cannot run).
        seed: the grading-time seed of the inputs (default: a fresh random one, recorded per student).
        jobs: submissions graded at the same time, each in its own sandbox (0: one per usable CPU). With more
            than one, each sandbox gets ``OMP_NUM_THREADS`` = CPUs // jobs unless the environment sets it.
            Only this process writes records, gradebook and summary (the last two in the submissions' order);
            making inputs and judging take turns, only the sandboxed runs overlap.
    Returns:
        one :class:`SubmissionResult` per student (also in ``out/grades.csv`` and ``out/<student>.json``).
    """
    limits = limits or Limits()
    jobs = resolve_jobs(jobs)
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a course_utils.autograde.Limits; got {type(limits).__name__}.")
    course = Path(course).resolve()
    source_dir = Path(source).resolve() if source is not None else course / "solutions"
    src = source_dir / lesson / f"{lesson}.ipynb"
    if not src.exists():
        have = sorted(p.name for p in source_dir.glob("*") if p.is_dir()) if source_dir.is_dir() else []
        raise ValueError(f"no lesson {lesson!r} in {source_dir}; the lessons are {have}.")
    sandboxed = not trusting
    if sandboxed:
        ok, why = sandbox.available()
        if not ok:
            raise ValueError(f"cannot sandbox student code on this machine: {why}. Install it, or pass "
                             "--trusting to run the submissions unsandboxed (only for code you trust).")
    found = find_submissions(lesson, submissions)
    out_dir = Path(out).resolve() if out is not None else course / "grading" / lesson
    out_dir.mkdir(parents=True, exist_ok=True)
    source_nb = json.loads(src.read_text(encoding="utf-8"))
    try:
        plans = plan_test_cells(source_nb)
    except PlanError as err:
        raise ValueError(f"{lesson}: {err}") from None
    source_digest = hashlib.sha256(src.read_bytes()).hexdigest()
    constants = locked_constants(source_nb)
    work = _build_course(course, source_dir, lesson, out_dir / "work")
    release = json.loads((work / "notebooks" / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8"))
    hide = tuple(dict.fromkeys([source_dir, out_dir, Path(submissions).resolve(), course / "solutions",
                                course / "grading", course / "gradebook.db"]))
    seed = secrets.randbelow(2 ** 31) if seed is None else int(seed)
    results: dict[str, SubmissionResult] = {}
    todo = []
    for i, (student, path) in enumerate(found.items(), 1):
        record = out_dir / f"{student}.json"
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        if record.exists():
            old = json.loads(record.read_text())
            ck = handins.find_checkpoint(path, lesson)
            ck_digest = hashlib.sha256(ck.read_bytes()).hexdigest() if ck is not None and ck.is_file() else None
            if old.get("sha256") == digest and old.get("limits") == asdict(limits) \
                    and old.get("source_sha256") == source_digest \
                    and old.get("handin_sha256") in (None, ck_digest):
                results[student] = SubmissionResult(**old)
                progress(f"[{i}/{len(found)}] {student}: already graded ({old['score']:g}/{old['max_score']:g})")
                continue
        todo.append((i, student, path))
    threads = _sandbox_threads(jobs)

    def grade(item):
        i, student, path = item
        res, nbs = _grade_one(work, lesson, student, path, release, plans, limits, out_dir, hide, sandboxed, seed,
                              constants, threads)
        res.source_sha256 = source_digest
        return i, student, res, nbs

    def keep(i, student, res, nbs):              # here, in this process: the only writer of the records
        (out_dir / f"{student}.json").write_text(json.dumps(asdict(res), indent=1))
        if nbs.get("notebook") is not None:
            graded = autograded_notebook(nbs.get("executed"), nbs["notebook"], release, res.verdicts)
            (out_dir / "autograded").mkdir(exist_ok=True)
            (out_dir / "autograded" / f"{student}.ipynb").write_text(json.dumps(graded, indent=1), encoding="utf-8")
        results[student] = res
        progress(f"[{i}/{len(found)}] {student}: {res.score:g}/{res.max_score:g} in {res.seconds:.0f} s"
                 + (f" — {res.status}" if res.flags else ""))

    if jobs == 1 or len(todo) < 2:
        for item in todo:
            keep(*grade(item))
    else:                                        # the sandboxes run in parallel; threads only wait and judge
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grade") as pool:
            errors = []
            for fut in as_completed([pool.submit(grade, item) for item in todo]):
                try:                             # the others' records are kept before an error is raised
                    keep(*fut.result())
                except Exception as err:         # noqa: BLE001 — re-raised below, after every record is written
                    errors.append(err)
            if errors:
                raise errors[0]
    results = [results[student] for student in found]
    _record_in_course(work, lesson, results, out_dir)
    write_summary(results, out_dir)
    return results


def _record_in_course(work: Path, lesson: str, results: list[SubmissionResult], out_dir: Path) -> None:
    """Gradebook entries and autograded notebooks in the grading course, from the trusted records."""
    record_scores(work, lesson, {r.student: {t: (p or 0.0) for t, p in r.tests.items()} for r in results})
    for r in results:
        nb = out_dir / "autograded" / f"{r.student}.ipynb"
        if nb.exists():
            dst = work / "autograded" / r.student / lesson
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(nb, dst / f"{lesson}.ipynb")


def write_summary(results: list[SubmissionResult], out_dir: Path) -> Path:
    tests = list(dict.fromkeys(t for r in results for t in r.tests))
    path = out_dir / "grades.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "score", "max_score", "status", "seconds", *tests, "flags"])
        for r in results:
            w.writerow([r.student, f"{r.score:g}", f"{r.max_score:g}", r.status, r.seconds,
                        *[f"{r.tests.get(t) or 0:g}" for t in tests], " | ".join(r.flags)])
    return path


def _print_table(results: list[SubmissionResult], out_dir: Path) -> None:
    width = max([len(r.student) for r in results] + [7])
    print(f"\n{'student':<{width}}  score   status            seconds")
    for r in results:
        print(f"{r.student:<{width}}  {r.score:>4g}/{r.max_score:<3g} {r.status:<17} {r.seconds:>6.1f}")
    attention = [r for r in results if r.flags]
    if attention:
        print(f"\n{len(attention)} submission(s) need attention:")
        for r in attention:
            for flag in r.flags:
                print(f"  {r.student}: {flag}")
    if results:
        print(f"\nsandbox: {results[0].sandbox or 'n/a'}")
    print(f"grades: {out_dir / 'grades.csv'}")
    print(f"gradebook (nbgrader generate_feedback / export / formgrader): {out_dir / 'work'}")


def main(argv: list[str] | None = None) -> int:
    from . import __doc__ as doc

    p = argparse.ArgumentParser(prog="python -m course_utils.autograde", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lesson", help="lesson folder name, e.g. 02_forward_diffusion")
    p.add_argument("submissions", help="nbgrader's submitted/ folder or a folder of <student>.ipynb files")
    p.add_argument("--course", default=".", help="course root (default: current directory)")
    p.add_argument("--source", default=None,
                   help="folder of the source notebooks with hidden tests (default: <course>/solutions)")
    p.add_argument("--out", default=None, help="results folder (default: <course>/grading/<lesson>)")
    d = Limits()
    p.add_argument("--cell-timeout", type=int, default=d.cell_timeout, help="seconds per cell")
    p.add_argument("--submission-timeout", type=int, default=d.submission_timeout, help="seconds per notebook")
    p.add_argument("--memory-mb", type=int, default=d.memory_mb, help="address-space limit per process")
    p.add_argument("--cpu-seconds", type=int, default=d.cpu_seconds, help="CPU-time limit per process")
    p.add_argument("--allow-network", action="store_true", help="do not isolate the network")
    p.add_argument("--seed", type=int, default=None, help="grading-time seed of the inputs (default: random)")
    p.add_argument("--trusting", action="store_true",
                   help="run submissions without the sandbox (only for code you trust)")
    p.add_argument("--jobs", type=int, default=0,
                   help="submissions graded at once, each in its own sandbox (default 0: one per CPU)")
    a = p.parse_args(argv)
    try:
        limits = Limits(a.cell_timeout, a.submission_timeout, a.memory_mb, a.cpu_seconds, a.allow_network)
        out_dir = Path(a.out) if a.out else Path(a.course).resolve() / "grading" / a.lesson
        results = grade_lesson(a.lesson, a.submissions, a.course, out_dir, limits, source=a.source,
                               trusting=a.trusting, seed=a.seed, jobs=a.jobs)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _print_table(results, out_dir)
    return 0
