"""Lesson 02 end to end: the standard lesson tests of ``lesson_harness`` (nbval on the solution;
nbgrader autograde of the solution, the untouched student notebook, one exercise right and a
metadata-stripped copy, in one run), plus lesson 02's own checks of the grading report and feedback."""
from __future__ import annotations

import subprocess
import sys

from course_utils.grading import check_submitted
from lesson_harness import LessonSpec, LessonTests, feedback_html


class TestLesson02(LessonTests):
    spec = LessonSpec.from_registry("02", one_right="ex5-q-sample", visible_marker="check_q_sample",
                                    stripped_copy=True,
                                    max_ignored_outputs=4)   # also section 0's ink-drop animation (a random HTML id)

    def test_stripped_submission_report_names_every_lost_cell(self, graded):
        """The grading report lists every graded cell the stripped copy lost, and the CLI exits 1."""
        exercises = self.spec.exercises
        course = graded["course"]
        results = {r.path.parts[-3]: r for r in check_submitted(course)}
        assert set(results["stripped"].missing) == {a for a in exercises} | {t for t, _ in exercises.values()}
        assert "stripped" in results["stripped"].message()
        proc = subprocess.run([sys.executable, "-m", "course_utils.grading", "check", "--course", str(course)],
                              capture_output=True, text=True, env=graded["env"])
        assert proc.returncode == 1
        assert "PROBLEM" in proc.stdout and "submitted/stripped/" in proc.stdout
        assert proc.stdout.count("ok      ") == 3

    def test_feedback_hides_the_hidden_checks(self, graded):
        """Beyond the markers: the hidden tests' private checks (``_checks.check…``) never reach feedback."""
        html = feedback_html(graded, self.spec.lesson)          # generated once, shared with the base test
        assert "check_q_sample" in html and "_checks.check" not in html
