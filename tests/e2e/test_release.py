"""The release: notebooks/ is exactly what scripts/release_notebooks.py generates from solutions/, and a
student notebook holds no solution code and no hidden test."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import colab, lessons
from course_utils.grading import check_submission, graded_cells

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "release_notebooks.py"
LESSONS = [lesson.folder for lesson in lessons.LESSONS]          # the registry (tests/unit/test_lessons.py:
                                                                 # every solutions/ folder is registered)
PAIRS = [(REPO / "solutions" / lesson / nb.name, REPO / "notebooks" / lesson / nb.name)
         for lesson in LESSONS for nb in sorted((REPO / "solutions" / lesson).glob("*.ipynb"))]


def run_release(args, repo: Path = REPO, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != Path(sys.executable).parent.resolve())
    return subprocess.run([sys.executable, str(repo / "scripts" / "release_notebooks.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def regions(source: str, begin: str, end: str) -> list[str]:
    """Lines inside ``begin … end`` regions of a cell."""
    out, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            out.append(line)
    return out


def test_there_is_a_lesson():
    assert ("02_forward_diffusion", "02_forward_diffusion.ipynb") in {(s.parent.name, s.name) for s, _ in PAIRS}


@pytest.mark.parametrize("solution, release", PAIRS, ids=[s.parent.name for s, _ in PAIRS])
def test_release_has_no_solution_code_and_no_hidden_tests(solution, release):
    src = nbformat.read(solution, as_version=4)
    rel = nbformat.read(release, as_version=4)
    text = "\n".join(c.source for c in rel.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    secret = [line.strip() for c in src.cells
              for line in regions(c.source, "### BEGIN SOLUTION", "### END SOLUTION")
              + regions(c.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")]
    secret = [s for s in secret if len(s) > 12]                      # skip `)` and the like
    assert len(secret) >= 10
    # Text the instructor gives on purpose outside the regions (a layer name in the prose) is no leak.
    given = "\n".join(line for c in src.cells for line in c.source.split("\n")
                      if line.strip() not in secret)
    leaked = [s for s in secret if s in text and s not in given]
    assert not leaked, leaked
    # every answer cell is a stub, every test cell kept its visible part, and nothing has outputs
    for cell in rel.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            assert "raise NotImplementedError()" in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    tests = [c for c in rel.cells if c.metadata.get("nbgrader", {}).get("grade")]
    # the visible part calls a learner check (lesson 07's assessment cell calls the grading helper)
    assert tests and all("check_" in c.source or "assess_class_agreement" in c.source for c in tests)


@pytest.mark.parametrize("solution, release", PAIRS, ids=[s.parent.name for s, _ in PAIRS])
def test_release_keeps_every_graded_cell(solution, release):
    assert graded_cells(solution)
    r = check_submission(release, solution)
    assert r.ok, r.message()
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points")
              for c in nbformat.read(release, as_version=4).cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert all(p and p > 0 for p in points.values())


def test_committed_notebooks_equal_what_the_release_command_produces(tmp_path):
    """Run from an unrelated directory, without the venv on PATH: the script must cope."""
    proc = run_release(["--check"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout


@pytest.fixture
def repo_copy(tmp_path):
    """The files the release command reads and writes, in a scratch checkout."""
    root = tmp_path / "repo"
    for name in ("nbgrader_config.py", "scripts/release_notebooks.py", "course_utils/__init__.py",
                 "course_utils/colab.py", "course_utils/lessons.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    for folder in ("solutions", "notebooks"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def test_check_mode_reports_stale_notebooks_and_release_fixes_them(repo_copy, tmp_path):
    lesson = "02_forward_diffusion"
    student = repo_copy / "notebooks" / lesson / f"{lesson}.ipynb"
    nb = nbformat.read(student, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("edited by hand"))
    nbformat.write(nb, student)
    (repo_copy / "notebooks" / lesson / "notes.txt").write_text("stray")
    (repo_copy / "notebooks" / "99_orphan").mkdir()
    (repo_copy / "notebooks" / "99_orphan" / "99_orphan.ipynb").write_text("{}")
    sol = repo_copy / "solutions" / lesson / f"{lesson}.ipynb"
    src = nbformat.read(sol, as_version=4)
    setup = next(c for c in src.cells if colab.SETUP_TAG in c.metadata.get("tags", []))
    setup.source = setup.source.replace(colab.GITHUB_REPO, "someone/old-name")
    nbformat.write(src, sol)
    before = sol.read_bytes()

    proc = run_release(["--check"], repo=repo_copy, cwd=tmp_path)
    assert proc.returncode == 1
    assert f"differs from its solution: {student}" in proc.stdout
    assert "not produced by the release command" in proc.stdout and "notes.txt" in proc.stdout
    assert "student folder without a solution" in proc.stdout and "99_orphan" in proc.stdout
    assert "stale Colab badge/setup cell" in proc.stdout
    assert sol.read_bytes() == before                                  # --check changes nothing

    shutil.rmtree(repo_copy / "notebooks" / "99_orphan")
    # the fix and the second check for the edited lesson only (the committed-notebooks test covers the others)
    proc = run_release(["--gradebook", lesson], repo=repo_copy, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "updated the Colab cells" in proc.stdout
    from nbgrader.api import Gradebook            # --gradebook recorded the graded cells for autograde
    with Gradebook(f"sqlite:///{repo_copy / 'gradebook.db'}", "diffusion-course") as gb:
        assignment = gb.find_assignment(lesson)
        assert assignment.max_score == sum(c.metadata["nbgrader"].get("points", 0) for c in src.cells
                                           if c.metadata.get("nbgrader", {}).get("grade"))
        assert len(assignment.notebooks[0].grade_cells) == len(lessons.get(lesson).exercises()) == 7
    assert nbformat.read(sol, as_version=4).cells[1].source == colab.setup_cell_source()
    assert not (repo_copy / "notebooks" / lesson / "notes.txt").exists()
    # the regenerated notebooks are byte-identical to the committed ones: the output is deterministic
    assert student.read_bytes() == (REPO / "notebooks" / lesson / f"{lesson}.ipynb").read_bytes()
    proc = run_release(["--check", lesson], repo=repo_copy, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout


def test_check_mode_reports_a_stale_start_page_table_and_an_unregistered_lesson(repo_copy, tmp_path):
    """The start page's lesson table is written from course_utils.lessons: a hand edit is reported by
    --check and undone by the release (in the solution too); a solutions/ folder that is not in the
    registry is reported and not released. (No lesson is generated here: seconds, not minutes.)"""
    start = repo_copy / "solutions" / "00_start_here.ipynb"
    nb = nbformat.read(start, as_version=4)
    table = next(c for c in nb.cells if "lesson-table" in c.metadata.get("tags", []))
    table.source = table.source.replace(r"q(x_t \| x_0)", "q(x_t | x_0)")          # the learner-reported bug
    nbformat.write(nb, start)
    (repo_copy / "solutions" / "99_unlisted").mkdir()
    shutil.copy2(repo_copy / "solutions" / "03_bayes_posterior" / "03_bayes_posterior.ipynb",
                 repo_copy / "solutions" / "99_unlisted" / "99_unlisted.ipynb")

    proc = run_release(["--check", "00_start_here"], repo=repo_copy, cwd=tmp_path)
    assert proc.returncode == 1
    assert f"stale lesson table (see course_utils/lessons.py): {start}" in proc.stdout
    assert "lesson folder not in the registry" not in proc.stdout          # only the start page was asked for
    proc = run_release(["--check", "00_start_here", "99_unlisted"], repo=repo_copy, cwd=tmp_path)
    assert proc.returncode == 1
    assert f"lesson folder not in the registry (add it to course_utils/lessons.py): " \
           f"{repo_copy / 'solutions' / '99_unlisted'}" in proc.stdout
    proc = run_release(["99_unlisted"], repo=repo_copy, cwd=tmp_path)
    assert proc.returncode == 1 and "lesson folder not in the registry" in proc.stdout
    assert not (repo_copy / "notebooks" / "99_unlisted").exists()                 # not released

    shutil.rmtree(repo_copy / "solutions" / "99_unlisted")
    proc = run_release(["00_start_here"], repo=repo_copy, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "updated the generated cells of solutions/00_start_here.ipynb" in proc.stdout
    assert start.read_bytes() == (REPO / "solutions" / "00_start_here.ipynb").read_bytes()
    released = repo_copy / "notebooks" / "00_start_here.ipynb"
    assert released.read_bytes() == (REPO / "notebooks" / "00_start_here.ipynb").read_bytes()
    assert run_release(["--check", "00_start_here"], repo=repo_copy, cwd=tmp_path).returncode == 0
