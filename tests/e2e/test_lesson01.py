"""Lesson 01 (U-Net recap) end to end: the standard lesson tests of ``lesson_harness`` (nbval on the
solution; nbgrader autograde of the solution, the untouched student notebook, one exercise right and a
metadata-stripped copy), plus submissions with the lesson's classic mistakes, which the hidden tests
must catch while the visible ones may let them through."""
from __future__ import annotations

from course_utils import lessons
from lesson_harness import LessonSpec, LessonTests, make_submission

MISTAKES = {
    # the up block ignores its skip connection (gradients never reach it)
    "ex2-up-block": ("torch.cat([h, skip], dim=1)", "torch.cat([h, 0 * skip], dim=1)"),
    # an image size written into the down block: right at 16 px (visible test), wrong elsewhere
    "ex1-down-block": ("return self.down(self.conv(x))          # (B, out_ch, H/2, W/2)",
                       "return self.down(self.conv(x)).reshape(x.shape[0], -1, 8, 8)"),
}


def _mistake(gid: str):
    def build(release, source):
        nb = make_submission(release, source, set(lessons.get("01").exercises()))      # every answer
        old, new = MISTAKES[gid]
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == gid:
                assert old in cell.source, old
                cell.source = cell.source.replace(old, new)
        return nb
    return build


class TestLesson01(LessonTests):
    spec = LessonSpec.from_registry(
        "01",
        one_right="ex2-up-block",
        max_ignored_outputs=5,      # also the two cells that print numbers of the trained model (vary with the CPU/BLAS)
        visible_marker="check_up_block",
        extra_submissions={"ignores_skip": _mistake("ex2-up-block"), "hard_coded_size": _mistake("ex1-down-block")},
    )

    def test_up_block_that_ignores_its_skip_loses_its_points(self, graded):
        scores = graded["scores"]["ignores_skip"]
        assert scores["ex2-up-block-tests"] == 0
        assert scores["ex1-down-block-tests"] == 2 and scores["ex4-count-parameters-tests"] == 1

    def test_hard_coded_image_size_loses_the_down_block_points(self, graded):
        scores = graded["scores"]["hard_coded_size"]
        assert scores["ex1-down-block-tests"] == 0
        assert scores["ex2-up-block-tests"] == 2
