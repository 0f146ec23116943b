"""Lesson 02 end to end: nbval executes the solution notebook, and nbgrader grades submissions in a
temporary copy of the course (the solution, the untouched student notebook, one exercise right, and a
submission whose nbgrader metadata was stripped). Each submission is autograded once (one
`nbgrader autograde` run for all of them); the tests read the gradebook."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import require_data
from course_utils.grading import check_submitted

REPO = Path(__file__).resolve().parents[1]
LESSON = "02_forward_diffusion"
SOLUTION = REPO / "solutions" / LESSON / f"{LESSON}.ipynb"
COURSE_ID = "diffusion-course"

# grade_id of each exercise's answer cell → (its test cell, points)
EXERCISES = {
    "ex1-linear-betas": ("ex1-linear-betas-tests", 1),
    "ex2-to-model-range": ("ex2-to-model-range-tests", 1),
    "ex3-forward-step": ("ex3-forward-step-tests", 2),
    "ex4-alphas-cumprod": ("ex4-alphas-cumprod-tests", 1),
    "ex5-q-sample": ("ex5-q-sample-tests", 2),
    "ex6-snr": ("ex6-snr-tests", 2),
    "ex7-monte-carlo": ("ex7-monte-carlo-tests", 2),
}
TOTAL = sum(p for _, p in EXERCISES.values())
ONE_RIGHT = "ex5-q-sample"          # the exercise answered in the "one exercise right" submission


def tool_env(tmp: Path) -> dict:
    """PATH with this interpreter's bin/ first (nbgrader runs `alembic`), and no user kernelspecs."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["JUPYTER_DATA_DIR"] = str(tmp / "jupyter-data")          # ignore ~/.local/share/jupyter
    env["PYTHONWARNINGS"] = "ignore"
    env.setdefault("COURSE_DATA_DIR", str(REPO / "data"))
    return env


def nbgrader(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def solution_code(cell) -> str:
    """An answer cell's source as a learner would write it: the solution without nbgrader's markers."""
    return "\n".join(line for line in cell.source.split("\n")
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def make_submission(release, source, answered: set[str]):
    """The released notebook with the answer cells in ``answered`` filled in from the solution."""
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    answers = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answered:
            cell.source = solution_code(answers[gid])
    return nb


def strip_nbgrader_metadata(nb):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        for key in ("nbgrader", "editable", "deletable"):
            cell.metadata.pop(key, None)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Generate, submit and autograde once; returns scores and paths for the tests below."""
    require_data()
    from nbgrader.api import Gradebook

    tmp = tmp_path_factory.mktemp("course")
    course = tmp / "course"
    course.mkdir()
    shutil.copy2(REPO / "nbgrader_config.py", course)
    shutil.copytree(SOLUTION.parent, course / "solutions" / LESSON,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    env = tool_env(tmp)
    nbgrader(["generate_assignment", LESSON, "--force"], course, env)
    release = nbformat.read(course / "notebooks" / LESSON / f"{LESSON}.ipynb", as_version=4)
    source = nbformat.read(SOLUTION, as_version=4)

    submissions = {
        "solution": make_submission(release, source, set(EXERCISES)),
        "blank": make_submission(release, source, set()),
        "one_right": make_submission(release, source, {ONE_RIGHT}),
        "stripped": strip_nbgrader_metadata(make_submission(release, source, set(EXERCISES))),
    }
    for student, nb in submissions.items():
        folder = course / "submitted" / student / LESSON
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{LESSON}.ipynb")

    t0 = time.perf_counter()
    proc = nbgrader(["autograde", LESSON, "--force"], course, env)
    seconds = time.perf_counter() - t0

    scores, totals = {}, {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        for student in submissions:
            nb = gb.find_submission_notebook(LESSON, LESSON, student)
            scores[student] = {g.name: g.auto_score for g in nb.grades}
            totals[student] = (nb.score, nb.max_score)
    autograded = {s: nbformat.read(course / "autograded" / s / LESSON / f"{LESSON}.ipynb", as_version=4)
                  for s in submissions}
    summary = {s: totals[s][0] for s in submissions}
    print(f"\nautograde of {len(submissions)} submissions: {seconds:.1f} s "
          f"({seconds / len(submissions):.1f} s per submission); scores {summary} of {TOTAL}")
    return dict(course=course, env=env, scores=scores, totals=totals, autograded=autograded,
                log=proc.stdout + proc.stderr, release=release)


# ------------------------------------------------------------------ nbval
def test_solution_notebook_runs_under_nbval(tmp_path):
    """nbval executes the solution notebook and compares every output not tagged nbval-ignore-output."""
    require_data()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-cell-timeout=300", str(SOLUTION)],
        cwd=REPO, env=tool_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", proc.stdout) and "failed" not in proc.stdout


def test_varying_outputs_are_marked_not_skipped():
    """Only outputs that vary (device name, Monte-Carlo numbers, the widget) are exempt from comparison,
    and no cell is skipped."""
    nb = nbformat.read(SOLUTION, as_version=4)
    tags = [set(c.metadata.get("tags", [])) for c in nb.cells if c.cell_type == "code"]
    assert not any({"nbval-skip", "NBVAL_SKIP"} & t for t in tags)
    ignored = sum("nbval-ignore-output" in t for t in tags)
    assert 1 <= ignored <= 3 < len(tags) - ignored
    assert not any("NBVAL" in c.source for c in nb.cells)          # learners never see the markers


# ------------------------------------------------------------------ nbgrader autograde
def test_solution_submission_scores_full_marks(graded):
    score, max_score = graded["totals"]["solution"]
    assert max_score == TOTAL
    assert score == TOTAL
    for answer, (test_id, points) in EXERCISES.items():
        assert graded["scores"]["solution"][test_id] == points, test_id


def test_untouched_student_notebook_scores_zero_without_crashing(graded):
    assert graded["totals"]["blank"] == (0, TOTAL)
    blank = graded["scores"]["blank"]
    assert {test_id: blank[test_id] for test_id, _ in EXERCISES.values()} == \
        {test_id: 0 for test_id, _ in EXERCISES.values()}
    # The grader ran every cell: each test cell failed with the learner-facing message, not a crash.
    nb = graded["autograded"]["blank"]
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert len(errors) == 1, cell.metadata["nbgrader"]["grade_id"]
            assert errors[0].ename in ("AssertionError", "NameError")


def test_one_exercise_right_scores_exactly_its_points(graded):
    scores = graded["scores"]["one_right"]
    test_id, points = EXERCISES[ONE_RIGHT]
    assert graded["totals"]["one_right"] == (points, TOTAL)
    assert {t: scores[t] for t, _ in EXERCISES.values()} == \
        {t: (p if t == test_id else 0) for t, p in EXERCISES.values()}


def test_test_cells_are_silent_on_stderr(graded):
    """nbgrader scores a test cell 0 if anything reaches stderr, so the solution run must write none."""
    for cell in graded["autograded"]["solution"].cells:
        if cell.cell_type != "code":
            continue
        bad = [o for o in cell.outputs if o.output_type == "error"
               or (o.output_type == "stream" and o.name == "stderr")]
        assert not bad, (cell.source[:200], bad)


def test_stripped_submission_grades_silently_to_zero_and_is_detected(graded):
    # What nbgrader does on its own: no error, no grades for the lost cells, a total of 0.
    assert graded["totals"]["stripped"][0] == 0
    assert all(v is None or v == 0 for v in graded["scores"]["stripped"].values())
    # What course_utils.grading reports before (or after) autograding.
    course = graded["course"]
    results = {r.path.parts[-3]: r for r in check_submitted(course)}
    assert results["stripped"].stripped and not results["stripped"].ok
    assert set(results["stripped"].missing) == {a for a in EXERCISES} | {t for t, _ in EXERCISES.values()}
    assert "stripped" in results["stripped"].message()
    assert all(results[s].ok for s in ("solution", "blank", "one_right"))
    proc = subprocess.run([sys.executable, "-m", "course_utils.grading", "check", "--course", str(course)],
                          capture_output=True, text=True, env=graded["env"])
    assert proc.returncode == 1
    assert "PROBLEM" in proc.stdout and "submitted/stripped/" in proc.stdout
    assert proc.stdout.count("ok      ") == 3


def test_feedback_hides_hidden_tests(graded):
    course, env = graded["course"], graded["env"]
    nbgrader(["generate_feedback", LESSON, "--student", "one_right", "--force"], course, env)
    html = (course / "feedback" / "one_right" / LESSON / f"{LESSON}.html").read_text(encoding="utf-8")
    assert "check_q_sample" in html                          # the visible tests are there
    assert "HIDDEN TESTS" not in html and "_checks.check" not in html

