"""course_utils.lessons: the registry of lessons agrees with the repository (folders, notebooks, points,
checkpoints, measured times), renders the start page's and the README's tables, and is the one place the
environment check, the start page, the benchmarks, the release script and the tests read."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import lessons
from course_utils.grading import graded_cells
from course_utils.lessons import LESSONS, CheckpointFile, Lesson, ScratchFile

REPO = Path(__file__).resolve().parents[2]
FOLDERS = [lesson.folder for lesson in LESSONS]


def _nb(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _cell(gid, **flags):
    return {"cell_type": "code", "source": "", "outputs": [], "execution_count": None,
            "metadata": {"nbgrader": {"grade_id": gid, "grade": False, "solution": False, "locked": False,
                                      **flags}}}


# ---------------------------------------------------------------- the registry and the repository
def test_every_solution_folder_is_registered_and_every_registered_folder_exists():
    on_disk = sorted(p.name for p in (REPO / "solutions").iterdir()
                     if p.is_dir() and any(p.glob("*.ipynb")))
    assert FOLDERS == on_disk
    for lesson in LESSONS:
        assert lesson.notebook().exists() and lesson.notebook(release=True).exists()
        assert lesson.folder.startswith(lesson.id + "_")
    assert [lesson.id for lesson in LESSONS] == [f"{i:02d}" for i in range(1, len(LESSONS) + 1)]


@pytest.mark.parametrize("lesson", LESSONS, ids=FOLDERS)
def test_points_and_exercises_are_the_notebooks_nbgrader_metadata(lesson):
    """Checked against an independent reading: every graded cell's points, and grading.graded_cells' roles."""
    nb = json.loads(lesson.notebook().read_text(encoding="utf-8"))
    points = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"]["points"] for c in nb["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade")}
    exercises = lesson.exercises()
    assert lesson.points() == sum(points.values()) > 0
    assert {t: p for t, p in exercises.values()} == points
    roles = graded_cells(lesson.notebook())
    assert set(exercises) == {g for g, r in roles.items() if r == "answer"}
    assert {t for t, _ in exercises.values()} == {g for g, r in roles.items() if r == "test"}
    # the student copy carries the same points (the release keeps them)
    assert lesson.points() == sum(p for _, p in lessons.read_exercises(lesson.notebook(release=True)).values())


def test_points_agree_with_the_measured_grading():
    """The benchmarks graded every lesson's solution: its max score is the registry's points."""
    rows = json.loads((REPO / "bench" / "results" / "course_runtime_cpu.json").read_text())["rows"]
    graded = {r["lesson"]: r["grading"][0]["max_score"] for r in rows if r.get("grading")}
    assert graded == {lesson.folder: lesson.points() for lesson in LESSONS}


def _minutes(text: str) -> float:
    return float(text.replace("½", ".5"))                  # "2½" → 2.5, "½" → 0.5


def _bounds_s(claim: str) -> tuple[float, float | None]:
    """The seconds a claim allows, on two threads and on one: "< 1" → (60, 60); "1" → (75, 75), rounding to the
    nearest half minute; "2½–4" (two threads – one thread) → (165, 255)."""
    m = re.fullmatch(r"< ?(\d+)|([\d½]+)(?:–([\d½]+))?", claim)
    assert m, f"unreadable CPU minutes {claim!r}"
    if m.group(1):
        return 60.0 * float(m.group(1)), 60.0 * float(m.group(1))
    two = 60.0 * (_minutes(m.group(2)) + 0.25)
    return two, 60.0 * (_minutes(m.group(3)) + 0.25) if m.group(3) else two


def test_cpu_minutes_hold_for_the_measured_run_times():
    """Every lesson's committed CPU run time (bench/results/course_runtime_cpu.json, an idle 2-core CPU, two torch
    threads and one) is within the minutes the start page states; the benchmark recorded the same claims. A
    training lesson's fast mode is not its learner's run: only its claim is compared."""
    rows = {r["lesson"]: r for r in json.loads((REPO / "bench" / "results" / "course_runtime_cpu.json")
                                                .read_text())["rows"]}
    assert _bounds_s("2½–4") == (165, 255) and _bounds_s("< 1") == (60, 60) and _bounds_s("1") == (75, 75)
    for lesson in LESSONS:
        row = rows[lesson.folder]
        assert row["start_page_cpu_minutes"] == lesson.cpu_label
        if not lesson.cpu_is_training:
            two, one = _bounds_s(lesson.cpu_minutes)
            assert row["run_all_s"] <= two and row["run_all_s_one_thread"] <= one, lesson.folder


@pytest.mark.parametrize("lesson", LESSONS, ids=FOLDERS)
def test_checkpoints_are_the_ones_the_notebook_names(lesson):
    from course_utils.pretrained import ALL_NAMES

    text = lesson.notebook().read_text(encoding="utf-8")
    assert set(lesson.checkpoints) <= set(ALL_NAMES)
    assert {name for name in ALL_NAMES if name in text} == set(lesson.checkpoints)
    for value in lesson.fast_env.values():
        if isinstance(value, CheckpointFile):
            assert value.name in lesson.checkpoints


def test_browser_moves_belong_to_lessons_with_a_widget():
    for lesson in LESSONS:
        if lesson.browser_moves:
            assert "course_utils.widgets" in lesson.notebook().read_text(encoding="utf-8"), lesson.folder
    assert [lesson.id for lesson in LESSONS if lesson.browser_moves] == ["02", "04", "06", "08", "09"]


def test_environment_resolves_checkpoints_and_scratch_files(tmp_path):
    from course_utils.pretrained import checkpoint_path

    env = lessons.get("07").environment(tmp_path)
    assert env == {"COURSE_MODE": "fast", "COURSE_ASSESSMENT_CHECKPOINT": str(checkpoint_path("cfg16")),
                   "COURSE_ASSESSMENT_OUT": str(tmp_path / "course_lesson07_fast_model.pt")}
    assert Path(env["COURSE_ASSESSMENT_CHECKPOINT"]).exists()
    assert lessons.get("04").environment() == {}
    assert lessons.get("04").environment(tests=True) == {"OMP_NUM_THREADS": "1"}
    with pytest.raises(TypeError):
        lessons.get("07").fast_env["COURSE_MODE"] = "full"          # read-only


# ---------------------------------------------------------------- the places that read the registry
# file → whether it may name a lesson folder at all (a test choosing lesson 02 as its subject may; the
# harness's docstring gives one as an example)
_READERS = {"course_utils/environment.py": False, "bench/course_runtime.py": False,
            "scripts/release_notebooks.py": False, "tests/e2e/test_browser.py": False,
            "tests/e2e/test_release.py": True, "tests/lesson_harness.py": True,
            **{str(p.relative_to(REPO)): False for p in sorted((REPO / "tests" / "e2e").glob("test_lesson0*.py"))}}


@pytest.mark.parametrize("path", sorted(_READERS))
def test_readers_spell_no_lesson_facts_of_their_own(path):
    """No title, summary or minutes of a lesson is typed in a file that reads the registry, nor a folder
    name in its code (its docstring's command-line examples excepted)."""
    text = (REPO / path).read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines()
                     if not re.match(r"(python|\.venv/bin/python|#)", line.strip()))
    for lesson in LESSONS:
        assert lesson.summary not in text and f'"{lesson.title}"' not in text, (path, lesson.folder)
        if not _READERS[path]:
            assert f'"{lesson.folder}"' not in code and f"'{lesson.folder}'" not in code, (path, lesson.folder)
    assert "course_utils.lessons" in text or "import lessons" in text or "from_registry(" in text   # reads it


def test_environment_check_and_bench_read_the_registry():
    from bench import course_runtime
    from course_utils import environment

    assert environment.LESSONS is LESSONS
    for lesson in LESSONS:
        assert course_runtime.lesson_env(lesson.folder) == lesson.environment()


def test_start_page_table_is_rendered_from_the_registry():
    for path in (REPO / "solutions" / "00_start_here.ipynb", REPO / "notebooks" / "00_start_here.ipynb"):
        cells = [c for c in nbformat.read(path, as_version=4).cells if "lesson-table" in c.metadata.get("tags", [])]
        assert len(cells) == 1 and cells[0].cell_type == "markdown"
        assert cells[0].source == lessons.start_page_markdown(), f"{path} is stale: run ./course.sh release"
    for lesson in LESSONS:
        assert f"[{lesson.title}]({lesson.folder}/{lesson.folder}.ipynb)" in lessons.start_page_markdown()


def test_readme_lesson_table_is_rendered_from_the_registry():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert lessons.readme_table() in readme, \
        "README.md's lesson table is stale: paste the output of `python -m course_utils.lessons readme`"
    proc = subprocess.run([sys.executable, "-m", "course_utils.lessons", "readme"], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout == lessons.readme_table() + "\n"


# ---------------------------------------------------------------- rendering
def test_table_cells_escape_pipes():
    assert lessons.escape_cell("q(x_t | x_0)") == r"q(x_t \| x_0)"
    assert lessons.escape_cell(r"q(x_t \| x_0)") == r"q(x_t \| x_0)"          # not escaped twice
    with pytest.raises(ValueError, match="one line"):
        lessons.escape_cell("two\nlines")
    for table in (lessons.start_page_markdown(), lessons.readme_table()):
        rows = [line for line in table.splitlines() if line.startswith("|")]
        widths = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
        assert len(rows) == len(LESSONS) + 2 and len(widths) == 1, rows


# ---------------------------------------------------------------- bad input
def _lesson(**changes):
    fields = dict(id="08", folder="08_text_to_image", title="Text to image", summary="s", builds="b",
                  cpu_minutes="< 1", gpu_minutes="< 1")
    return Lesson(**{**fields, **changes})


@pytest.mark.parametrize("changes, match", [
    ({"id": "8"}, "two digits"), ({"folder": "09_text_to_image"}, "folder must be '08_"),
    ({"summary": "two\nlines"}, "summary must be one non-empty line"), ({"title": ""}, "title"),
    ({"browser_moves": (("drag", 3),)}, "browser_moves"), ({"fast_env": {"X": 1}}, "environment variable X"),
])
def test_a_bad_entry_is_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        _lesson(**changes)
    assert _lesson(fast_env={"OUT": ScratchFile("x.pt")}).environment("/s") == {"OUT": str(Path("/s/x.pt"))}


def test_get_by_id_or_folder_and_unknown_lessons():
    assert lessons.get("02") is lessons.get("02_forward_diffusion") is LESSONS[1]
    with pytest.raises(ValueError, match="no lesson '99'.*known: 01, 02"):
        lessons.get("99")
    with pytest.raises(ValueError, match="in the order of their ids"):
        lessons._validate((LESSONS[1], LESSONS[0]))


def test_read_exercises_names_a_badly_built_notebook(tmp_path):
    path = tmp_path / "nb.ipynb"

    def read(*cells):
        path.write_text(json.dumps(_nb(*cells)))
        return lessons.read_exercises(path)

    ok = read(_cell("imports", locked=True), _cell("ex1", solution=True), _cell("ex1-t", grade=True, points=2),
              _cell("task", task=True))
    assert ok == {"ex1": ("ex1-t", 2)}
    with pytest.raises(ValueError, match="test cell 'ex1-t' does not follow an answer cell"):
        read(_cell("ex1-t", grade=True, points=1), _cell("ex1", solution=True))
    with pytest.raises(ValueError, match="answer cell 'ex1' has no test cell"):
        read(_cell("ex1", solution=True), _cell("ex2", solution=True), _cell("ex2-t", grade=True, points=1))
    with pytest.raises(ValueError, match="answer cell 'ex2' has no test cell"):
        read(_cell("ex1", solution=True), _cell("ex1-t", grade=True, points=1), _cell("ex2", solution=True))
    with pytest.raises(ValueError, match="positive nbgrader points; got 0"):
        read(_cell("ex1", solution=True), _cell("ex1-t", grade=True, points=0))
    with pytest.raises(FileNotFoundError, match="only the course repository has"):
        lessons.read_exercises(tmp_path / "missing.ipynb")
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a Jupyter notebook"):
        lessons.read_exercises(path)


def test_read_exercises_is_cached_until_the_notebook_changes(tmp_path):
    import os

    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_nb(_cell("ex1", solution=True), _cell("ex1-t", grade=True, points=1))))
    assert lessons.read_exercises(path) == {"ex1": ("ex1-t", 1)}
    hits = lessons._read_exercises.cache_info().hits
    lessons.read_exercises(path)
    assert lessons._read_exercises.cache_info().hits == hits + 1
    path.write_text(json.dumps(_nb(_cell("ex1", solution=True), _cell("ex1-t", grade=True, points=3))))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert lessons.read_exercises(path) == {"ex1": ("ex1-t", 3)}
