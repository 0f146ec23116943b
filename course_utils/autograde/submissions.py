"""Grade a folder of submissions for one lesson: nbgrader's autograde, one sandboxed run per student.

Student code runs on the grading machine, so each submission is graded in its own ``nbgrader autograde``
process (the kernel is its child) with

* a per-cell timeout (an infinite loop is interrupted; the rest of the notebook still runs),
* a wall-clock limit for the whole submission (the process group is killed when it is exceeded),
* memory (address space) and CPU-time limits (``setrlimit``; inherited by the kernel),
* no network where the machine allows it (a fresh network namespace with only loopback, via ``unshare``),
* a size limit on the submitted file.

Before grading, every submission is checked against the released notebook: unreadable files, empty
files, another lesson's notebook and stripped nbgrader metadata are flagged (nbgrader would grade them
0 without a word); deleted or moved test cells are put back after their answer cell (nbgrader restores
the text and points of locked cells itself); code that patches the checks, torch, numpy or builtins,
or rebinds a name the test cells use, is flagged and that exercise scores 0. One bad submission never
stops the others, and a re-run skips every submission whose file and limits are unchanged.

Command line, from the course root (the folder holding ``nbgrader_config.py``)::

    python -m course_utils.autograde 02_forward_diffusion path/to/submissions
    python -m course_utils.autograde 02_forward_diffusion submitted/ --memory-mb 4096 --cell-timeout 120

``path/to/submissions`` is nbgrader's layout (``<student>/<lesson>/<lesson>.ipynb``) or a flat folder of
``<student>.ipynb`` files. Results go to ``grading/<lesson>/`` (``grades.csv``, one JSON record per
student, the autograded notebooks); the table and the list of submissions needing attention are printed.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Limits", "SubmissionResult", "find_submissions", "scan_for_tampering", "prepare_submission",
           "grade_lesson", "main"]

MAX_NOTEBOOK_BYTES = 20_000_000
_SANDBOXED_MODULES = {"torch", "numpy", "np", "course_utils", "checks", "builtins", "__builtins__", "sys",
                      "math", "einops", "nbgrader", "unittest", "pytest", "gc", "ctypes", "inspect"}
_DANGEROUS_CALLS = {"exec", "eval", "compile", "__import__", "setattr", "delattr", "globals", "vars"}
_BUILTIN_NAMES = set(dir(builtins)) - {"_", "__doc__", "__name__", "__spec__", "__loader__", "__package__"}
_ALLOWED_PATCHES = ("torch.backends.", "plt.rcParams", "matplotlib.rcParams", "mpl.rcParams")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's grading run."""

    cell_timeout: int = 120            # seconds per cell; the kernel is interrupted, the next cell runs
    submission_timeout: int = 900      # seconds for the whole notebook; the run is killed after it
    memory_mb: int = 6144              # address-space limit of nbgrader and the kernel (torch maps a lot)
    cpu_seconds: int = 1800            # CPU-time limit (all threads)
    network: bool = False              # False: no network for student code where `unshare` allows it

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

    @property
    def attention(self) -> bool:
        return bool(self.flags)


# ------------------------------------------------------------------------------------------------
# Finding and checking submissions
# ------------------------------------------------------------------------------------------------
def find_submissions(lesson: str, folder: str | os.PathLike) -> dict[str, Path]:
    """``student → notebook`` from nbgrader's layout or a flat folder of ``<student>.ipynb`` files.

    Raises:
        ValueError: the folder does not exist or holds no notebook in either layout.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"submissions folder {folder} does not exist; pass nbgrader's submitted/ folder "
                         "or a folder of <student>.ipynb files.")
    found: dict[str, Path] = {}
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        notebooks = sorted((student_dir / lesson).glob("*.ipynb")) if (student_dir / lesson).is_dir() else []
        if notebooks:
            preferred = student_dir / lesson / f"{lesson}.ipynb"
            found[student_dir.name] = preferred if preferred in notebooks else notebooks[0]
    for nb in sorted(folder.glob("*.ipynb")):
        found.setdefault(nb.stem, nb)
    if not found:
        raise ValueError(f"no submissions for {lesson} in {folder}: expected <student>/{lesson}/{lesson}.ipynb "
                         f"(nbgrader's layout) or <student>.ipynb files.")
    bad = [s for s in found if not re.fullmatch(r"[A-Za-z0-9_.@+-]+", s)]
    if bad:
        raise ValueError(f"student ids may use letters, digits and _.@+- only (nbgrader ids); rename {bad}.")
    return found


def _nbgrader_meta(cell) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def _src(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _test_cells(release: dict) -> list[str]:
    """The grade_ids of the autograded test cells, in notebook order."""
    from .grading import graded_cells

    return [gid for gid, role in graded_cells(release).items() if role == "test"]


def _exercise_of_cells(release: dict) -> dict[str, str]:
    """answer grade_id → the grade_id of the first test cell after it (the test that grades it)."""
    out, pending = {}, []
    for cell in release["cells"]:
        meta = _nbgrader_meta(cell)
        if meta.get("solution") and not meta.get("grade"):
            pending.append(meta["grade_id"])
        elif meta.get("grade"):
            for gid in pending:
                out[gid] = meta["grade_id"]
            pending = []
    return out


def _module_names(source: str) -> set[str]:
    """Names bound by imports in ``source`` (``import torch as t`` → t)."""
    names = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return names
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def _root_name(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def scan_for_tampering(source: str, protected: set[str]) -> list[str]:
    """Reasons ``source`` (one code cell a student wrote) may defeat the tests; empty when none.

    Flags assignments to attributes of modules (``torch.allclose = …``, ``checks.check_q_sample = …``),
    rebinding builtins or names the locked cells imported (``protected``), ``exec``/``eval``/``setattr``
    and friends, and imports of ``builtins``, ``ctypes``, ``gc`` or ``unittest.mock``.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []                      # it fails when run; the tests score it
    modules = _SANDBOXED_MODULES | protected | _module_names(source)
    reasons = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        for tgt in targets:
            for t in (tgt.elts if isinstance(tgt, (ast.Tuple, ast.List)) else [tgt]):
                root = _root_name(t)
                if isinstance(t, (ast.Attribute, ast.Subscript)) and root in modules:
                    if ast.unparse(t).startswith(_ALLOWED_PATCHES):
                        continue
                    reasons.append(f"line {node.lineno}: assigns to {ast.unparse(t)} (patches a module)")
                elif isinstance(t, ast.Name) and (t.id in _BUILTIN_NAMES or t.id in protected):
                    reasons.append(f"line {node.lineno}: rebinds {t.id!r}, which the tests rely on")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and (
                node.name in protected or node.name in _BUILTIN_NAMES):
            reasons.append(f"line {node.lineno}: redefines {node.name!r}, which the tests rely on")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                if a.asname and a.asname in protected and a.asname != a.name.split(".")[-1] and not (
                        isinstance(node, ast.Import) and a.asname in ("np", "plt", "F", "nn")):
                    reasons.append(f"line {node.lineno}: imports {a.name} as {a.asname!r}, a name the tests use")
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            if name in _DANGEROUS_CALLS:
                reasons.append(f"line {node.lineno}: calls {name}()")
            if name in ("patch", "monkeypatch", "patch_object"):
                reasons.append(f"line {node.lineno}: calls {name}() (mocking)")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for m in mods:
                if m.split(".")[0] in ("builtins", "ctypes", "gc") or m.startswith("unittest.mock"):
                    reasons.append(f"line {node.lineno}: imports {m}")
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            hit = [n for n in node.names if n in _BUILTIN_NAMES or n in protected]
            if hit:
                reasons.append(f"line {node.lineno}: declares {hit} global (rebinds names the tests use)")
    return reasons


@dataclass
class Prepared:
    notebook: dict | None
    flags: list[str]
    cheated_tests: dict[str, list[str]]   # test grade_id → reasons
    fatal: str | None = None


def prepare_submission(path: Path, release: dict) -> Prepared:
    """Read a submission, repair what can be repaired and flag the rest (see the module docstring)."""
    from .grading import check_submission

    flags: list[str] = []
    try:
        size = path.stat().st_size
    except OSError as err:
        return Prepared(None, [f"cannot read the file: {err}"], {}, "unreadable")
    if size == 0:
        return Prepared(None, ["the file is empty"], {}, "empty file")
    if size > MAX_NOTEBOOK_BYTES:
        return Prepared(None, [f"the file is {size / 1e6:.0f} MB (limit {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB); "
                               "clear its outputs and resubmit"], {}, "too large")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no 'cells' list")
        import nbformat
        nbformat.validate(nbformat.from_dict(nb))
    except Exception as err:                                  # noqa: BLE001 - any malformed file
        return Prepared(None, [f"not a valid notebook ({type(err).__name__}: {str(err)[:120]})"], {},
                        "not a notebook")

    rel_cells_by_id = {_nbgrader_meta(c).get("grade_id"): c for c in release["cells"]
                       if _nbgrader_meta(c).get("grade_id")}
    check = check_submission(nb, release)
    release_ids = set(check.expected)
    present = {_nbgrader_meta(c).get("grade_id") for c in nb["cells"]} - {None}
    if present and not (present & release_ids):
        return Prepared(None, ["its graded cells belong to another lesson (none of this lesson's grade ids)"],
                        {}, "wrong lesson")
    answers = [gid for gid, role in check.expected.items() if role == "answer"]
    if all(gid in check.missing for gid in answers):
        flags.append("nbgrader metadata stripped (answer cells carry no grade ids): nbgrader would grade "
                     "it 0 silently; ask for the answers in a fresh copy of the released notebook")

    # edited locked cells and edited nbgrader metadata: nbgrader restores both from its gradebook
    for cell in nb["cells"]:
        gid = _nbgrader_meta(cell).get("grade_id")
        ref = rel_cells_by_id.get(gid)
        if ref is None or not (_nbgrader_meta(ref).get("locked") or _nbgrader_meta(ref).get("grade")):
            continue
        meta, rmeta = _nbgrader_meta(cell), _nbgrader_meta(ref)
        if (meta.get("points"), meta.get("grade"), meta.get("solution"), cell.get("cell_type")) != (
                rmeta.get("points"), rmeta.get("grade"), rmeta.get("solution"), ref.get("cell_type")):
            flags.append(f"{gid}: its nbgrader metadata or cell type was edited (nbgrader grades with the "
                         "released points and cell)")
        elif _src(cell).strip() != _src(ref).strip():
            flags.append(f"{gid}: the locked cell was edited (nbgrader runs the released version)")

    # put back deleted test cells, and move moved ones back after their answer cell
    rel_cells = rel_cells_by_id
    exercise_of = _exercise_of_cells(release)
    tests = _test_cells(release)
    sub_ids = [_nbgrader_meta(c).get("grade_id") for c in nb["cells"]]
    repaired = False
    for test in tests:
        answers_of_test = [a for a, t in exercise_of.items() if t == test]
        anchor = max((sub_ids.index(a) for a in answers_of_test if a in sub_ids), default=None)
        where = sub_ids.index(test) if test in sub_ids else None
        if where is not None and (anchor is None or where > anchor):
            continue
        if anchor is None and not answers_of_test:
            continue
        if where is not None:
            del nb["cells"][where]
            sub_ids.pop(where)
            flags.append(f"test cell {test} was moved above its answer; put back after it")
            if anchor is not None and anchor > where:
                anchor -= 1
        else:
            flags.append(f"test cell {test} was deleted; restored from the released notebook")
        if anchor is None:
            continue                   # its answer is gone too: nothing to test (scores 0)
        nb["cells"].insert(anchor + 1, json.loads(json.dumps(rel_cells[test])))
        sub_ids.insert(anchor + 1, test)
        repaired = True
    if repaired:
        nb.setdefault("metadata", {})["course_utils_autograde"] = {"repaired": True}

    # student-written code that patches what the tests rely on
    locked_source = "\n".join(_src(c) for c in release["cells"] if c.get("cell_type") == "code"
                              and (_nbgrader_meta(c).get("locked") or _nbgrader_meta(c).get("grade"))
                              and not _nbgrader_meta(c).get("solution"))
    protected = _module_names(locked_source)
    cheated: dict[str, list[str]] = {}
    next_test = None
    for cell in reversed(nb["cells"]):
        meta = _nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            next_test = meta.get("grade_id")
            continue
        if cell.get("cell_type") != "code" or meta.get("locked"):
            continue
        reasons = scan_for_tampering(_src(cell), protected)
        if reasons:
            key = next_test or "(after the last test)"
            cheated.setdefault(key, []).extend(reasons)
    for test, reasons in cheated.items():
        flags.append(f"{test}: scored 0 for code that tampers with the tests ({'; '.join(reasons[:3])})")
    return Prepared(nb, flags, cheated)


# ------------------------------------------------------------------------------------------------
# Running nbgrader in a sandbox
# ------------------------------------------------------------------------------------------------
def _sandbox_prefix(network: bool) -> tuple[list[str], str]:
    """The command prefix that removes network access, and a description of it."""
    if network:
        return [], "network allowed"
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if unshare and os.path.exists(ip):
        flags = ["-n"] if os.geteuid() == 0 else ["-r", "-n"]
        probe = subprocess.run([unshare, *flags, ip, "link", "set", "lo", "up"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [unshare, *flags, "sh", "-c", f'{ip} link set lo up && exec "$@"', "sandbox"], \
                "no network (own network namespace, loopback only)"
    return [], "network NOT isolated (unshare unavailable on this machine)"


def _set_limits(limits: Limits):
    def apply():
        import resource
        os.setsid()
        mem = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 10))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def _course_copy(course: Path, lesson: str, work: Path) -> Path:
    """A private nbgrader course in ``work/course`` with this lesson generated (done once)."""
    dst = work / "course"
    stamp = dst / ".generated"
    src_nb = course / "solutions" / lesson / f"{lesson}.ipynb"
    digest = hashlib.sha256(src_nb.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return dst
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "solutions").mkdir(parents=True)
    shutil.copy2(course / "nbgrader_config.py", dst)
    shutil.copytree(course / "solutions" / lesson, dst / "solutions" / lesson,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pt", "*.gif"))
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", lesson, "--force"],
                          cwd=dst, env=_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {lesson} failed:\n{proc.stdout}\n{proc.stderr}")
    stamp.write_text(digest)
    return dst


def _env() -> dict:
    from .utils import tool_env
    return tool_env({"PYTHONWARNINGS": "ignore"})


def _read_grades(course: Path, lesson: str, student: str) -> tuple[dict, float, float] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "diffusion-course") as gb:
        try:
            nb = gb.find_submission_notebook(lesson, lesson, student)
        except MissingEntry:
            return None
        return {g.name: g.auto_score for g in nb.grades}, nb.score, nb.max_score


def _zero_tests(course: Path, lesson: str, student: str, tests: list[str]) -> None:
    """Record 0 as the manual score of the cheated tests, so nbgrader's own exports agree."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "diffusion-course") as gb:
        for test in tests:
            grade = gb.find_grade(test, lesson, lesson, student)
            grade.manual_score = 0.0
        gb.db.commit()


def _grade_one(course: Path, lesson: str, student: str, path: Path, release: dict, limits: Limits,
               prefix: list[str], sandbox: str, out_dir: Path) -> SubmissionResult:
    t0 = time.perf_counter()
    res = SubmissionResult(student, str(path), limits=asdict(limits), sandbox=sandbox)
    tests = _test_cells(release)
    res.tests = {t: 0.0 for t in tests}
    res.max_score = float(sum(_nbgrader_meta(c).get("points", 0) for c in release["cells"]
                              if _nbgrader_meta(c).get("grade")))
    try:
        res.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        pass
    prep = prepare_submission(path, release)
    res.flags.extend(prep.flags)
    if prep.notebook is None:
        res.status = "not gradable"
        res.seconds = round(time.perf_counter() - t0, 1)
        return res
    folder = course / "submitted" / student / lesson
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / f"{lesson}.ipynb").write_text(json.dumps(prep.notebook), encoding="utf-8")
    cmd = [*prefix, sys.executable, "-m", "nbgrader", "autograde", lesson, "--student", student, "--force",
           f"--Execute.timeout={limits.cell_timeout}", "--Execute.execute_retries=0",
           "--Execute.interrupt_on_timeout=True"]
    try:
        proc = subprocess.Popen(cmd, cwd=course, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=_set_limits(limits))
        try:
            log, _ = proc.communicate(timeout=limits.submission_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
            res.flags.append(f"the whole notebook ran longer than {limits.submission_timeout} s and was stopped")
        text = log.decode("utf-8", "replace")
    except OSError as err:
        text = f"could not start nbgrader: {err}"
    (out_dir / f"{student}.log").write_text(text[-200_000:], encoding="utf-8")
    if "Timeout waiting for execute reply" in text:
        res.flags.append(f"a cell ran longer than the cell timeout ({limits.cell_timeout} s) and was interrupted")
    grades = _read_grades(course, lesson, student)
    failed = grades is None or "There was an error processing assignment" in text
    if grades is not None and not failed:
        auto, _, _ = grades
        res.tests = {t: float(auto.get(t) or 0.0) for t in tests}
        if any(auto.get(t) is None for t in tests):
            res.flags.append("some tests were not graded (None): their cells were missing when nbgrader ran")
    else:
        reason = ("the kernel died (the code killed its own process or ran out of memory)"
                  if "DeadKernelError" in text or "Kernel died" in text else "nbgrader could not grade it")
        res.flags.append(f"{reason}; scored 0 — see {out_dir / (student + '.log')}")
        res.status = "not gradable"
    cheated = [t for t in prep.cheated_tests if t in res.tests]
    for t in cheated:
        res.tests[t] = 0.0
    if cheated and grades is not None and not failed:
        _zero_tests(course, lesson, student, cheated)
    res.score = float(sum(res.tests.values()))
    if res.status == "graded" and res.flags:
        res.status = "needs attention"
    res.seconds = round(time.perf_counter() - t0, 1)
    return res


def grade_lesson(lesson: str, submissions: str | os.PathLike, course: str | os.PathLike = ".",
                 out: str | os.PathLike | None = None, limits: Limits | None = None,
                 progress=print) -> list[SubmissionResult]:
    """Grade every submission of ``lesson`` in ``submissions``; see the module docstring.

    Args:
        lesson: the lesson folder name, e.g. "02_forward_diffusion".
        submissions: nbgrader's ``submitted/`` folder or a flat folder of ``<student>.ipynb``.
        course: the course root (``nbgrader_config.py``, ``solutions/<lesson>/``).
        out: results folder (default ``<course>/grading/<lesson>``); re-running reuses finished results.
        limits: :class:`Limits`.
    Returns:
        one :class:`SubmissionResult` per student (also written to ``out/grades.csv`` and ``out/<student>.json``).
    """
    limits = limits or Limits()
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a course_utils.autograde.Limits; got {type(limits).__name__}.")
    course = Path(course).resolve()
    src = course / "solutions" / lesson / f"{lesson}.ipynb"
    if not src.exists():
        have = sorted(p.name for p in (course / "solutions").glob("*") if p.is_dir())
        raise ValueError(f"no lesson {lesson!r} in {course / 'solutions'}; the lessons are {have}.")
    found = find_submissions(lesson, submissions)
    out_dir = Path(out) if out is not None else course / "grading" / lesson
    out_dir.mkdir(parents=True, exist_ok=True)
    work = _course_copy(course, lesson, out_dir / "work")
    release = json.loads((work / "notebooks" / lesson / f"{lesson}.ipynb").read_text(encoding="utf-8"))
    prefix, sandbox = _sandbox_prefix(limits.network)
    results = []
    for i, (student, path) in enumerate(found.items(), 1):
        record = out_dir / f"{student}.json"
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        if record.exists():
            old = json.loads(record.read_text())
            if old.get("sha256") == digest and old.get("limits") == asdict(limits):
                results.append(SubmissionResult(**old))
                progress(f"[{i}/{len(found)}] {student}: already graded ({old['score']:g}/{old['max_score']:g})")
                continue
        res = _grade_one(work, lesson, student, path, release, limits, prefix, sandbox, out_dir)
        record.write_text(json.dumps(asdict(res), indent=1))
        graded = work / "autograded" / student / lesson / f"{lesson}.ipynb"
        if graded.exists():
            (out_dir / "autograded").mkdir(exist_ok=True)
            shutil.copy2(graded, out_dir / "autograded" / f"{student}.ipynb")
        results.append(res)
        progress(f"[{i}/{len(found)}] {student}: {res.score:g}/{res.max_score:g} in {res.seconds:.0f} s"
                 + (f" — {res.status}" if res.flags else ""))
    write_summary(results, out_dir)
    return results


def write_summary(results: list[SubmissionResult], out_dir: Path) -> Path:
    tests = list(dict.fromkeys(t for r in results for t in r.tests))
    path = out_dir / "grades.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "score", "max_score", "status", "seconds", *tests, "flags"])
        for r in results:
            w.writerow([r.student, f"{r.score:g}", f"{r.max_score:g}", r.status, r.seconds,
                        *[f"{r.tests.get(t, 0):g}" for t in tests], " | ".join(r.flags)])
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_utils.autograde", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lesson", help="lesson folder name, e.g. 02_forward_diffusion")
    p.add_argument("submissions", help="nbgrader's submitted/ folder or a folder of <student>.ipynb files")
    p.add_argument("--course", default=".", help="course root (default: current directory)")
    p.add_argument("--out", default=None, help="results folder (default: <course>/grading/<lesson>)")
    d = Limits()
    p.add_argument("--cell-timeout", type=int, default=d.cell_timeout, help="seconds per cell")
    p.add_argument("--submission-timeout", type=int, default=d.submission_timeout, help="seconds per notebook")
    p.add_argument("--memory-mb", type=int, default=d.memory_mb, help="address-space limit of the kernel")
    p.add_argument("--cpu-seconds", type=int, default=d.cpu_seconds, help="CPU-time limit per submission")
    p.add_argument("--allow-network", action="store_true", help="do not isolate the network")
    a = p.parse_args(argv)
    try:
        limits = Limits(a.cell_timeout, a.submission_timeout, a.memory_mb, a.cpu_seconds, a.allow_network)
        out_dir = Path(a.out) if a.out else Path(a.course).resolve() / "grading" / a.lesson
        results = grade_lesson(a.lesson, a.submissions, a.course, out_dir, limits)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _print_table(results, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
