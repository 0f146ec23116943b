"""The shared end-to-end tests of a graded lesson, as base classes a lesson's test class inherits.

A lesson's test file builds its :class:`LessonSpec` from the registry (``course_utils.lessons``: the
folder, the exercises and their points read from the notebook, the fast-mode environment) and inherits
the standard tests::

    class TestLesson02(LessonTests):
        spec = LessonSpec.from_registry("02", one_right="ex5-q-sample", visible_marker="check_q_sample")

        def test_something_of_lesson_02(self, graded): ...

The standard tests (:class:`LessonTests`): nbval executes the solution notebook (only tagged outputs are
exempt, nothing is skipped); nbgrader autogrades, in a temporary course copy and in one run, the solution
(full marks), the untouched student notebook (0, no crash), a submission with exactly one exercise right
(exactly its points) and a copy whose nbgrader metadata was stripped; the solution's test cells are silent
on stderr; generated feedback hides the hidden tests. The ``graded`` fixture is class-scoped and each
lesson has one test class, so each lesson is autograded once per run (and, with ``--dist loadfile``, in
one worker).

:func:`grade_cells` scores a submission with one classic mistake the way nbgrader would, in-process (the
answer and test cells only): a mistake's cost is checked without one more notebook execution.

:class:`CellTests` adds direct runs of every test cell on the solution and on the lesson's classic
mistakes (class attributes ``mistakes``, ``context``, ``skip``); its ``pytest_generate_tests`` hook
parametrises them from the class's own ``spec`` and ``mistakes``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from conftest import require_data
from course_utils.utils import GRADING_ENV

REPO = Path(__file__).resolve().parents[1]
COURSE_ID = "diffusion-course"


@dataclass
class LessonSpec:
    """What the standard tests need to know about one lesson.

    Attributes:
        lesson: the folder name, e.g. "02_forward_diffusion" (the notebook has the same name).
        exercises: answer cell grade_id → (its test cell grade_id, points).
        one_right: the exercise answered in the "exactly one exercise right" submission.
        max_ignored_outputs: how many code cells may be tagged nbval-ignore-output.
        visible_marker: text of a visible test that must appear in the feedback HTML.
        env: extra environment variables for every notebook run (nbval and autograde), e.g. a lesson's
            fast-mode switch or the checkpoint its assessment cell grades.
        stripped_copy: also autograde a metadata-stripped copy of the solution. What happens to one is the
            same for every lesson (nbgrader scores it 0 silently; course_utils.grading flags it), so one
            lesson (02) runs it, and the adversarial suite grades one too; the others save that execution.
    """

    lesson: str
    exercises: dict[str, tuple[str, int]]
    one_right: str
    max_ignored_outputs: int = 3
    visible_marker: str = "checks.check"
    needs_data: bool = True
    env: dict = field(default_factory=dict)
    stripped_copy: bool = False

    def __post_init__(self):
        if self.one_right not in self.exercises:
            raise ValueError(f"one_right={self.one_right!r} is not an answer cell of {self.lesson}; its answer "
                             f"cells are {', '.join(self.exercises)}.")

    @classmethod
    def from_registry(cls, lesson_id: str, **kwargs) -> "LessonSpec":
        """The spec of a registered lesson: its folder, its exercises and points (read from the solution
        notebook), whether it needs the data, and its fast-mode and test environment; ``kwargs`` give the
        test's own choices (``one_right``, ``visible_marker``, …) and may add to
        ``env``."""
        from course_utils import lessons

        lesson = lessons.get(lesson_id)
        env = {**lesson.environment(tests=True), **kwargs.pop("env", {})}
        return cls(lesson=lesson.folder, exercises=lesson.exercises(REPO), needs_data=lesson.needs_data,
                   env=env, **kwargs)

    @property
    def solution(self) -> Path:
        return REPO / "solutions" / self.lesson / f"{self.lesson}.ipynb"

    @property
    def total(self) -> int:
        return sum(p for _, p in self.exercises.values())


def tool_env(tmp: Path, extra: dict | None = None) -> dict:
    """PATH with this interpreter's bin/ first (nbgrader runs `alembic`), and no user kernelspecs."""
    from course_utils.utils import tool_env as _tool_env
    env = _tool_env(extra)
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
    """A copy as another editor might save it: every nbgrader cell metadata gone."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        for key in ("nbgrader", "editable", "deletable"):
            cell.metadata.pop(key, None)
    return nb


def autograde(spec: LessonSpec, tmp: Path) -> dict:
    """Generate the lesson in a temporary course, submit the standard submissions, autograde once."""
    from nbgrader.api import Gradebook

    lesson = spec.lesson
    course = tmp / "course"
    course.mkdir()
    shutil.copy2(REPO / "nbgrader_config.py", course)
    shutil.copytree(spec.solution.parent, course / "solutions" / lesson,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # COURSE_GRADING=1, as the course's grader (course_utils.autograde) sets it: the demonstration cells run at
    # their smallest sizes (course_utils.utils.run_mode); the test cells are the same in every mode.
    env = tool_env(tmp, {**spec.env, **GRADING_ENV})
    nbgrader(["generate_assignment", lesson, "--force"], course, env)
    release = nbformat.read(course / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    source = nbformat.read(spec.solution, as_version=4)

    submissions = {
        "solution": make_submission(release, source, set(spec.exercises)),
        "blank": make_submission(release, source, set()),
        "one_right": make_submission(release, source, {spec.one_right}),
    }
    if spec.stripped_copy:
        submissions["stripped"] = strip_nbgrader_metadata(make_submission(release, source, set(spec.exercises)))
    for student, nb in submissions.items():
        folder = course / "submitted" / student / lesson
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{lesson}.ipynb")

    t0 = time.perf_counter()
    proc = nbgrader(["autograde", lesson, "--force"], course, env)
    seconds = time.perf_counter() - t0

    scores, totals = {}, {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        for student in submissions:
            nb = gb.find_submission_notebook(lesson, lesson, student)
            scores[student] = {g.name: g.auto_score for g in nb.grades}
            totals[student] = (nb.score, nb.max_score)
    autograded = {s: nbformat.read(course / "autograded" / s / lesson / f"{lesson}.ipynb", as_version=4)
                  for s in submissions}
    summary = {s: totals[s][0] for s in submissions}
    print(f"\n{lesson}: autograde of {len(submissions)} submissions: {seconds:.1f} s "
          f"({seconds / len(submissions):.1f} s per submission); scores {summary} of {spec.total}")
    return dict(course=course, env=env, scores=scores, totals=totals, autograded=autograded,
                log=proc.stdout + proc.stderr, release=release, seconds=seconds)


def feedback_html(graded: dict, lesson: str, student: str = "one_right") -> str:
    """nbgrader's feedback HTML for ``student``, generated once per autograde run (the tests share it)."""
    cache = graded.setdefault("feedback", {})
    if student not in cache:
        nbgrader(["generate_feedback", lesson, "--student", student, "--force"], graded["course"], graded["env"])
        cache[student] = (graded["course"] / "feedback" / student / lesson / f"{lesson}.html").read_text(
            encoding="utf-8")
    return cache[student]


def unexpected_errors(nb) -> list[str]:
    """The code cells of an executed notebook that raised although they are neither an exercise's answer
    cell nor a test cell (nbgrader ``solution`` / ``grade``)."""
    bad = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") or meta.get("grade"):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                bad.append(f"cell {i} ({first[:60]!r}): {out.get('ename')}: {str(out.get('evalue'))[:200]}")
    return bad



class LessonTests:
    """The standard tests of one lesson; a lesson's test class sets ``spec`` (a :class:`LessonSpec`)."""

    spec: LessonSpec

    @pytest.fixture(scope="class")
    @classmethod
    def graded(cls, tmp_path_factory):
        """The lesson autograded once (class scope: one test class per lesson)."""
        spec = cls.spec
        if spec.needs_data:
            require_data()
        return autograde(spec, tmp_path_factory.mktemp(spec.lesson))

    def test_solution_notebook_runs_under_nbval(self, tmp_path):
        """nbval executes the solution notebook and compares every output not tagged nbval-ignore-output."""
        spec = self.spec
        if spec.needs_data:
            require_data()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
             "--nbval-cell-timeout=300", str(spec.solution)],
            cwd=REPO, env=tool_env(tmp_path, spec.env), capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert re.search(r"\b\d+ passed\b", proc.stdout) and "failed" not in proc.stdout

    def test_varying_outputs_are_marked_not_skipped(self):
        """Only outputs that vary are exempt from comparison, and no cell is skipped."""
        nb = nbformat.read(self.spec.solution, as_version=4)
        tags = [set(c.metadata.get("tags", [])) for c in nb.cells if c.cell_type == "code"]
        assert not any({"nbval-skip", "NBVAL_SKIP"} & t for t in tags)
        ignored = sum("nbval-ignore-output" in t for t in tags)
        assert ignored <= self.spec.max_ignored_outputs < len(tags) - ignored
        assert not any("NBVAL" in c.source for c in nb.cells)          # learners never see the markers

    def test_solution_submission_scores_full_marks(self, graded):
        spec = self.spec
        score, max_score = graded["totals"]["solution"]
        assert max_score == spec.total
        assert score == spec.total
        for answer, (test_id, points) in spec.exercises.items():
            assert graded["scores"]["solution"][test_id] == points, test_id

    def test_untouched_student_notebook_scores_zero_without_crashing(self, graded):
        spec = self.spec
        assert graded["totals"]["blank"] == (0, spec.total)
        blank = graded["scores"]["blank"]
        test_ids = [t for t, _ in spec.exercises.values()]
        assert {t: blank[t] for t in test_ids} == {t: 0 for t in test_ids}
        # The grader ran every cell: each test cell failed with the learner-facing message, not a crash.
        for cell in graded["autograded"]["blank"].cells:
            if cell.metadata.get("nbgrader", {}).get("grade"):
                errors = [o for o in cell.outputs if o.output_type == "error"]
                assert len(errors) == 1, cell.metadata["nbgrader"]["grade_id"]
                # CheckFailed: course_utils.checks' AssertionError subclass for a failed check
                assert errors[0].ename in ("AssertionError", "CheckFailed", "NameError", "NotImplementedError")

    def test_untouched_student_notebook_fails_only_in_its_exercises(self, graded):
        """Left unanswered and run top to bottom (as autograde just ran it), the student notebook fails only
        in its answer and test cells: every demo cell falls back to the package's version of an unanswered
        exercise, so a learner sees every figure from the first run (issue 16)."""
        bad = unexpected_errors(graded["autograded"]["blank"])
        assert not bad, "cells outside the exercises fail when nothing is answered:\n" + "\n".join(bad)

    def test_one_exercise_right_scores_exactly_its_points(self, graded):
        spec = self.spec
        scores = graded["scores"]["one_right"]
        test_id, points = spec.exercises[spec.one_right]
        assert graded["totals"]["one_right"] == (points, spec.total)
        assert {t: scores[t] for t, _ in spec.exercises.values()} == \
            {t: (p if t == test_id else 0) for t, p in spec.exercises.values()}

    def test_test_cells_are_silent_on_stderr(self, graded):
        """nbgrader scores a test cell 0 if anything reaches stderr, so the solution run must write none."""
        for cell in graded["autograded"]["solution"].cells:
            if cell.cell_type != "code":
                continue
            bad = [o for o in cell.outputs if o.output_type == "error"
                   or (o.output_type == "stream" and o.name == "stderr")]
            assert not bad, (cell.source[:200], bad)

    def test_stripped_submission_is_detected(self, graded):
        """nbgrader grades a metadata-stripped copy silently to 0; course_utils.grading flags it."""
        from course_utils.grading import check_submitted

        if not self.spec.stripped_copy:
            pytest.skip("the same for every lesson: lesson 02 autogrades a stripped copy (LessonSpec.stripped_copy)")
        assert graded["totals"]["stripped"][0] == 0
        assert all(v is None or v == 0 for v in graded["scores"]["stripped"].values())
        results = {r.path.parts[-3]: r for r in check_submitted(graded["course"])}
        assert results["stripped"].stripped and not results["stripped"].ok
        assert all(results[s].ok for s in ("solution", "blank", "one_right"))

    def test_feedback_hides_hidden_tests(self, graded):
        spec = self.spec
        html = feedback_html(graded, spec.lesson)
        assert spec.visible_marker in html                     # the visible tests are there
        assert "HIDDEN TESTS" not in html


# ---------------------------------------------------------------- direct runs of the test cells
def run_test_cell(cells: dict, exercises: dict, answer_id: str, old: str | None = None, new: str | None = None,
                  hidden: bool = True, context: str = "none", skip: tuple[str, ...] = ()) -> dict:
    """Run a lesson's imports, some answers and one test cell in a fresh namespace; return the namespace.

    ``cells`` maps grade_id → cell of the solution notebook. ``old`` → ``new`` is replaced in the answer
    ``answer_id`` (a classic mistake); ``hidden=False`` runs only the visible half of its test cell.
    ``context`` says which other answers are in scope, as in the notebook: "none" (only this one),
    "before" (every answer up to this one), "all" (every answer, in order) or "others" (every other
    answer first, then this one); answers in ``skip`` are never run.
    """
    ns: dict = {}
    exec(cells["imports"].source, ns)                         # noqa: S102 (the lesson's own imports)

    def answer(gid):
        code = solution_code(cells[gid])
        if gid == answer_id and old is not None:
            assert old in code, (answer_id, old)
            code = code.replace(old, new)
        exec(code, ns)                                        # noqa: S102

    order = [g for g in exercises if g not in skip]
    if context == "none":
        order = [answer_id]
    elif context == "before":
        order = order[:order.index(answer_id) + 1]
    elif context == "others":
        order = [g for g in order if g != answer_id] + [answer_id]
    elif context != "all":
        raise ValueError(f"context must be 'none', 'before', 'all' or 'others'; got {context!r}")
    for gid in order:
        answer(gid)
    test_src = cells[exercises[answer_id][0]].source
    if not hidden:
        test_src = test_src.split("### BEGIN HIDDEN TESTS")[0]
    exec(test_src, ns)                                        # noqa: S102
    return ns


@dataclass
class GradedRun:
    """What :func:`grade_cells` found: each test cell's score and what it printed (stdout + the error)."""

    scores: dict[str, float]
    texts: dict[str, str]

    def lost(self, exercises: dict) -> set[str]:
        """The test cells that scored less than their points."""
        return {t for t, p in exercises.values() if self.scores[t] != p}


def grade_cells(solution: Path, exercises: dict, answer_id: str | None = None, old: str | None = None,
                new: str | None = None) -> GradedRun:
    """Score a submission as nbgrader does, without a kernel: every answer from the solution (``old`` → ``new``
    in ``answer_id``: a classic mistake), run with the imports cell and every test cell in notebook order in
    one namespace; a test cell scores its points when it raises nothing, 0 otherwise.

    The demonstration cells are left out: the test cells, which alone decide a grade, do not read them (the
    solution scoring full marks here shows it). That an nbgrader run of a full notebook scores exactly like
    this is what :class:`LessonTests` checks (the solution, the untouched notebook, one exercise right), so a
    mistake's cost is checked here, in-process, instead of by one more notebook execution per mistake.
    """
    import contextlib
    import io
    import traceback

    nb = nbformat.read(solution, as_version=4)
    tests = {t: (a, p) for a, (t, p) in exercises.items()}
    ns: dict = {}
    scores, texts = {}, {}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or not (gid == "imports" or gid in exercises or gid in tests):
            continue
        code = solution_code(cell) if gid in exercises else cell.source
        if gid == answer_id and old is not None:
            assert old in code, (answer_id, old)
            code = code.replace(old, new)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                exec(compile(code, f"<cell {gid}>", "exec"), ns)      # noqa: S102 (the lesson's own cells)
            failed = False
        except Exception:                                               # noqa: BLE001 (a failed cell scores 0)
            failed = True
            out.write(traceback.format_exc(limit=0))
        if gid == "imports" and failed:
            raise AssertionError(f"the imports cell of {solution.name} failed:\n{out.getvalue()}")
        if gid in tests:
            scores[gid] = 0.0 if failed else float(tests[gid][1])
            texts[gid] = out.getvalue()
    return GradedRun(scores, texts)


class CellTests:
    """Direct runs of every test cell: the solution passes each one silently, and each classic mistake
    (``mistakes[name] = (answer grade_id, old, new, caught by the visible half too?)``) is caught by the
    test cell — by its visible half exactly when the fourth field says so.

    A lesson's test class sets ``spec`` and ``mistakes``, and ``context`` / ``skip`` as in
    :func:`run_test_cell`; ``pytest_generate_tests`` below parametrises ``answer_id`` and ``mistake``.
    """

    spec: LessonSpec
    mistakes: dict = {}
    context: str = "none"
    skip: tuple[str, ...] = ()

    def pytest_generate_tests(self, metafunc):
        cls = metafunc.cls
        if "answer_id" in metafunc.fixturenames:
            metafunc.parametrize("answer_id", [a for a in cls.spec.exercises if a not in cls.skip])
        if "mistake" in metafunc.fixturenames:
            metafunc.parametrize("mistake", list(cls.mistakes))

    @pytest.fixture(scope="class")
    @classmethod
    def cells(cls):
        """grade_id → cell of the solution notebook."""
        nb = nbformat.read(cls.spec.solution, as_version=4)
        return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}

    def run(self, cells, answer_id, old=None, new=None, hidden=True):
        return run_test_cell(cells, self.spec.exercises, answer_id, old, new, hidden, self.context, self.skip)

    def test_solution_passes_every_test_cell(self, cells, answer_id, capsys):
        self.run(cells, answer_id)
        out = capsys.readouterr()
        assert out.err == "" and "✗" not in out.out and "✓" in out.out

    def test_hidden_tests_catch_the_classic_mistakes(self, cells, mistake, capsys):
        answer_id, old, new, visible_catches = self.mistakes[mistake]
        with pytest.raises(AssertionError):
            self.run(cells, answer_id, old, new)
        capsys.readouterr()
        if visible_catches:
            with pytest.raises(AssertionError):
                self.run(cells, answer_id, old, new, hidden=False)
        else:                                                 # only the hidden tests see it
            self.run(cells, answer_id, old, new, hidden=False)
        assert capsys.readouterr().err == ""
