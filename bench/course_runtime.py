"""Course run time on this machine: each solution notebook's wall time in its CPU (fast) mode, and the
instructor's grading time per submission.

* Run time: ``jupyter nbconvert --execute`` of ``solutions/<lesson>/<lesson>.ipynb`` in a scratch copy of
  its folder (kernel start-up included: what "Run All" costs a learner, give or take the browser).
  Lessons pick CPU sizes by themselves on a machine without a GPU; a lesson with a fast-mode environment
  in the registry (``course_utils.lessons``: lesson 07's ``COURSE_MODE=fast``, a 30-step smoke run that
  grades the shipped ``cfg16`` checkpoint, because its full mode is the ~14-minute assessment training)
  runs with it. The lessons and the minutes the start page claims come from the registry too.
* Grading: ``course_utils.autograde`` (one sandboxed ``nbgrader autograde`` per student) on two
  submissions per lesson — the solution notebook (every test runs to the end) and the untouched student
  notebook (answers raise ``NotImplementedError``) — in a scratch course; seconds per submission and
  the scores (solution = full marks is checked).

    python -m bench.course_runtime                       # every lesson
    python -m bench.course_runtime --lessons 02_forward_diffusion --no-grading
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from course_utils.lessons import LESSONS, START_PAGE
from course_utils.lessons import get as get_lesson
from course_utils.utils import tool_env

from .common import REPO, machine_info, markdown_table, write_result


def lesson_env(lesson: str, scratch: Path | None = None) -> dict:
    """Extra environment of a lesson's CPU run: its registry fast mode (only lesson 07 has one), with its
    scratch files in ``scratch`` (default: the temp dir). The tests' single-thread setting is not applied:
    this measures a learner's run."""
    if lesson == START_PAGE:
        return {}
    return get_lesson(lesson).environment(scratch)


def execute(lesson: str, work: Path, timeout: int = 1800) -> float:
    dst = work / "run" / lesson
    if lesson == START_PAGE:                              # the start page is a single top-level notebook
        dst.mkdir(parents=True)
        shutil.copy2(REPO / "solutions" / f"{lesson}.ipynb", dst)
    else:
        shutil.copytree(REPO / "solutions" / lesson, dst,
                        ignore=shutil.ignore_patterns("*.gif", "assessment_model.pt*", ".ipynb_checkpoints"))
    env = tool_env({**lesson_env(lesson, work), "JUPYTER_DATA_DIR": str(work / "jupyter-data"),
                    "COURSE_DATA_DIR": str(REPO / "data"), "PYTHONWARNINGS": "ignore"})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           f"--ExecutePreprocessor.timeout={timeout}", "--output", "executed.ipynb",
                           f"{lesson}.ipynb"], cwd=dst, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{lesson} failed to execute:\n{proc.stderr[-2000:]}")
    return seconds


def grade(lesson: str, work: Path) -> list[dict]:
    import os
    from unittest import mock

    from course_utils.autograde import grade_lesson

    subs = work / "submissions" / lesson
    subs.mkdir(parents=True)
    shutil.copy2(REPO / "solutions" / lesson / f"{lesson}.ipynb", subs / "solution.ipynb")
    shutil.copy2(REPO / "notebooks" / lesson / f"{lesson}.ipynb", subs / "blank.ipynb")
    with mock.patch.dict(os.environ, lesson_env(lesson, work)):    # autograde's children inherit it
        results = grade_lesson(lesson, subs, course=REPO, out=work / "grading" / lesson, progress=lambda *_: None)
    return [{"submission": r.student, "score": r.score, "max_score": r.max_score, "seconds": round(r.seconds, 1),
             "status": r.status} for r in results]


def run(lessons: list[str], grading: bool = True) -> dict:
    rows = []
    claimed = {lesson.folder: lesson.cpu_label for lesson in LESSONS}
    with tempfile.TemporaryDirectory(prefix="bench-course-") as tmp:
        work = Path(tmp)
        for lesson in lessons:
            row = {"lesson": lesson, "start_page_cpu_minutes": claimed.get(lesson)}
            row["run_all_s"] = round(execute(lesson, work), 1)
            print(f"  {lesson:<28} run all {row['run_all_s']:7.1f} s", flush=True)
            if grading and lesson != START_PAGE:
                row["grading"] = grade(lesson, work)
                for g in row["grading"]:
                    print(f"  {'':<28} autograde {g['submission']:<9} {g['score']:g}/{g['max_score']:g} "
                          f"in {g['seconds']:.1f} s", flush=True)
            rows.append(row)
    return {"benchmark": "course_runtime", "machine": machine_info(torch.device("cpu")), "rows": rows}


def table(result: dict) -> str:
    rows = []
    for r in result["rows"]:
        g = {x["submission"]: x for x in r.get("grading", [])}
        sol, blank = g.get("solution"), g.get("blank")
        rows.append([r["lesson"], r["run_all_s"], r.get("run_all_s_one_thread"), r.get("start_page_cpu_minutes"),
                     f"{sol['seconds']} s ({sol['score']:g}/{sol['max_score']:g})" if sol else None,
                     f"{blank['seconds']} s ({blank['score']:g}/{blank['max_score']:g})" if blank else None])
    return markdown_table(["lesson", "run all (s, CPU mode)", "one thread (s)", "start page says (min)",
                           "autograde: solution", "autograde: blank notebook"], rows)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.course_runtime", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lessons", default=None, help="comma-separated lesson folders (default: all, start page first)")
    p.add_argument("--no-grading", action="store_true")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    lessons = a.lessons.split(",") if a.lessons else [START_PAGE] + [lesson.folder for lesson in LESSONS]
    for lesson in lessons:
        if lesson != START_PAGE and lesson not in {x.folder for x in LESSONS}:
            raise SystemExit(f"no lesson {lesson!r} in course_utils/lessons.py (folders: "
                             f"{', '.join(x.folder for x in LESSONS)})")
        if not (REPO / "solutions" / lesson / f"{lesson}.ipynb").exists() and lesson != START_PAGE:
            raise SystemExit(f"no lesson {lesson!r} under solutions/")
    t0 = time.perf_counter()
    result = run(lessons, grading=not a.no_grading)
    result["command"] = "python -m bench.course_runtime " + " ".join(argv)
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    print(table(result))
    path = write_result("course_runtime_cpu", result, Path(a.out) if a.out else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
