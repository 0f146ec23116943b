"""Lesson 06 end to end: the standard lesson tests of ``lesson_harness`` (nbval on the solution; nbgrader
autograde of the solution, the untouched student notebook and one exercise right),
a submission whose context mask keeps labels with probability p instead of dropping them (scored
in-process by ``lesson_harness.grade_cells``), and direct runs of each test cell on the lesson's classic mistakes: the hidden tests must catch a mask
that drops at the wrong rate or to 0 / -1 instead of the null class, a guided ε for which w = 0 is not the
conditional prediction, guidance against label 0 or a hard-coded null class, the sign of w swapped, and a
sampler that ignores w, stops one step early or draws its own noise."""
from __future__ import annotations

import nbformat

from course_utils import lessons
from lesson_harness import CellTests, LessonSpec, LessonTests, grade_cells

# answer grade_id → (its test cell, points), read from the solution notebook by the registry
EXERCISES = lessons.get("06").exercises()

_DRAW = "torch.rand(y.shape, generator=generator, device=y.device) < p"
_GUIDE = "return (1 + w) * eps_cond - w * eps_uncond"
_NULL = "null = torch.full_like(y, model.null_class)"

# A wrong answer: (answer grade_id, text in the solution, its replacement, caught by the visible tests too?)
MISTAKES = {
    "keeps_with_prob_p": ("ex1-drop-labels", _DRAW, _DRAW.replace("< p", ">= p"), True),
    "drops_half_as_often": ("ex1-drop-labels", _DRAW, _DRAW.replace("< p", "< p / 2"), True),
    "drops_to_zero": ("ex1-drop-labels", "torch.full_like(y, null_class)", "torch.full_like(y, 0)", True),
    "drops_to_minus_one": ("ex1-drop-labels", "torch.full_like(y, null_class)", "torch.full_like(y, -1)", True),
    "ignores_generator": ("ex1-drop-labels", "generator=generator, ", "", True),
    "w0_is_unconditional": ("ex2-guided-eps", _GUIDE, "return w * eps_cond + (1 - w) * eps_uncond", True),
    "sign_of_w_swapped": ("ex2-guided-eps", _GUIDE, "return (1 - w) * eps_cond + w * eps_uncond", True),
    "label_zero_as_null": ("ex2-guided-eps", _NULL, "null = torch.zeros_like(y)", True),
    "zero_vector_as_null": ("ex2-guided-eps", "eps_uncond = model(x, t, null)",
                            "eps_uncond = model(x, t, null * 0)", True),
    "hard_coded_null": ("ex2-guided-eps", _NULL, "null = torch.full_like(y, 10)", False),
    "sampler_ignores_w": ("ex3-guided-sampler", "eps = guided_eps(model, x, t, y, w)",
                          "eps = guided_eps(model, x, t, y, 0.0)", True),
    "sampler_stops_early": ("ex3-guided-sampler", "zip(timesteps, timesteps[1:] + [-1])",
                            "zip(timesteps[:-1], timesteps[1:])", True),
    "sampler_fresh_noise": ("ex3-guided-sampler", "x = x_T.clone()", "x = torch.randn_like(x_T)", True),
}


class TestLesson06(LessonTests, CellTests):
    spec = LessonSpec.from_registry(
        "06",
        one_right="ex1-drop-labels",
        visible_marker="check_guided_eps",
        # env: the registry's test_env for lesson 06 (one torch thread per kernel: the notebook samples ~11k
        # small 16 px images, and two threads per kernel oversubscribe a shared 2-core machine)
    )
    # direct runs of the test cells
    mistakes = MISTAKES
    context = "all"

    def test_mask_keeping_labels_with_prob_p_loses_exactly_the_mask_points(self):
        scores = grade_cells(self.spec.solution, EXERCISES, *MISTAKES["keeps_with_prob_p"][:3]).scores
        assert {t: scores[t] for t, _ in EXERCISES.values()} == \
            {t: (0 if t == "ex1-drop-labels-tests" else p) for t, p in EXERCISES.values()}

    def test_widget_output_is_not_stored(self, cells):
        """The explorer's view ids change on every run: its display cell keeps no output (and is nbval-ignored)."""
        nb = nbformat.read(self.spec.solution, as_version=4)
        shown = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("explorer")]
        assert len(shown) == 1 and shown[0].outputs == [] and "nbval-ignore-output" in shown[0].metadata["tags"]
