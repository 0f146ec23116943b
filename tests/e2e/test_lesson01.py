"""Lesson 01 (U-Net recap) end to end: the standard lesson tests of ``lesson_harness`` (nbval on the
solution; nbgrader autograde of the solution, the untouched student notebook and one exercise right), plus submissions with
the lesson's classic mistakes, scored by running the answer and test cells in-process
(``lesson_harness.grade_cells``): the hidden tests must catch them while the visible ones may let them
through."""
from __future__ import annotations

from course_utils import lessons
import pytest

from lesson_harness import LessonSpec, LessonTests, grade_cells

MISTAKES = {
    # the up block ignores its skip connection (gradients never reach it)
    "ex2-up-block": ("torch.cat([h, skip], dim=1)", "torch.cat([h, 0 * skip], dim=1)"),
    # an image size written into the down block: right at 16 px (visible test), wrong elsewhere
    "ex1-down-block": ("return self.down(self.conv(x))          # (B, out_ch, H/2, W/2)",
                       "return self.down(self.conv(x)).reshape(x.shape[0], -1, 8, 8)"),
}


EXERCISES = lessons.get("01").exercises()


@pytest.fixture(scope="module")
def mistaken():
    """answer grade_id → the test cells' scores of a submission with that answer's mistake (every other
    answer from the solution), scored in-process."""
    solution = lessons.get("01").notebook()
    return {gid: grade_cells(solution, EXERCISES, gid, old, new).scores for gid, (old, new) in MISTAKES.items()}


class TestLesson01(LessonTests):
    spec = LessonSpec.from_registry(
        "01",
        one_right="ex2-up-block",
        max_ignored_outputs=5,      # also the two cells that print numbers of the trained model (vary with the CPU/BLAS)
        visible_marker="check_up_block",
    )

    def test_the_solution_scores_full_marks_in_process(self):
        """The in-process scoring of the mistakes below is sound: the solution itself loses nothing."""
        assert grade_cells(self.spec.solution, EXERCISES).lost(EXERCISES) == set()

    def test_up_block_that_ignores_its_skip_loses_its_points(self, mistaken):
        scores = mistaken["ex2-up-block"]
        assert scores["ex2-up-block-tests"] == 0
        assert scores["ex1-down-block-tests"] == 2 and scores["ex4-count-parameters-tests"] == 1

    def test_hard_coded_image_size_loses_the_down_block_points(self, mistaken):
        scores = mistaken["ex1-down-block"]
        assert scores["ex1-down-block-tests"] == 0
        assert scores["ex2-up-block-tests"] == 2
