"""Lesson 03 end to end: the standard lesson tests of ``lesson_harness`` (nbval on the solution; nbgrader
autograde of the solution, the untouched student notebook and one exercise right), plus submissions with
the lesson's classic mistakes, scored by running the answer and test cells in-process
(``lesson_harness.grade_cells``), which must lose exactly the mistaken exercise's points: β where β̃
belongs, the standard deviation where the variance belongs, ᾱ_t where ᾱ_{t-1} belongs, and the t = 0 edge
(ᾱ_{-1} = 1) got wrong, and the ELBO's middle terms without the spread of x_t."""
from __future__ import annotations

import pytest

from course_utils import lessons
from lesson_harness import LessonSpec, LessonTests, grade_cells

# answer grade_id → (its test cell, points), read from the solution notebook by the registry
EXERCISES = lessons.get("03").exercises()

# A wrong answer for one exercise: (answer grade_id, text in the solution, its replacement).
MISTAKES = {
    # β̃ replaced by β in the symbolic precision (the square completed with the forward step alone)
    "beta_for_beta_tilde": ("ex1-complete-square", "precision, mean = sp.simplify(A), sp.simplify(B / A)",
                            "precision, mean = 1 / beta, sp.simplify(B / A)"),
    # the standard deviation where the variance belongs
    "std_for_variance": ("ex2-posterior-variance", "return (1 - alphas_cumprod_prev) / (1 - alphas_cumprod) * betas",
                         "return ((1 - alphas_cumprod_prev) / (1 - alphas_cumprod) * betas).sqrt()"),
    # ᾱ_t where ᾱ_{t-1} belongs (in the x0 coefficient)
    "abar_t_for_abar_prev": ("ex3-posterior-mean-coefs",
                             "coef1 = alphas_cumprod_prev.sqrt() * betas / (1 - alphas_cumprod)",
                             "coef1 = alphas_cumprod.sqrt() * betas / (1 - alphas_cumprod)"),
    # the t = 0 edge: ᾱ_{t-1} as alphas_cumprod[t - 1], which wraps round at t = 0
    "t0_edge": ("ex2-posterior-variance",
                "alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=betas.dtype), alphas_cumprod[:-1]])",
                "alphas_cumprod_prev = alphas_cumprod.roll(1)"),
    # the ELBO's middle terms without the spread of x_t (the squared gap at x_t's mean only)
    "elbo_no_spread": ("ex8-elbo-terms",
                       "gap_sq = gap_at_mean ** 2 + (c2 - a[k]) ** 2 * (1 - alphas_cumprod[k])",
                       "gap_sq = gap_at_mean ** 2"),
    # the variance returned by q_posterior is β_t, not β̃_t
    "q_posterior_beta": ("ex4-q-posterior", "variance = extract(posterior_variance(betas), t, xt.shape)",
                         "variance = extract(betas, t, xt.shape)"),
}


SPEC = LessonSpec.from_registry("03", one_right="ex4-q-posterior", visible_marker="check_q_posterior")


@pytest.fixture(scope="module")
def mistaken():
    """Each mistake's submission (every other answer from the solution), scored in-process."""
    return {name: grade_cells(SPEC.solution, EXERCISES, *m) for name, m in MISTAKES.items()}


def _lost(mistaken, student) -> set[str]:
    """The test cells that did not get full marks."""
    return mistaken[student].lost(EXERCISES)


class TestLesson03(LessonTests):
    spec = SPEC

    def test_the_solution_scores_full_marks_in_process(self):
        """The in-process scoring of the mistakes below is sound: the solution itself loses nothing."""
        assert grade_cells(SPEC.solution, EXERCISES).lost(EXERCISES) == set()

    def test_beta_where_beta_tilde_belongs_is_caught(self, mistaken):
        assert _lost(mistaken, "beta_for_beta_tilde") == {"ex1-complete-square-tests"}
        assert _lost(mistaken, "q_posterior_beta") == {"ex4-q-posterior-tests"}

    def test_std_where_variance_belongs_is_caught(self, mistaken):
        assert _lost(mistaken, "std_for_variance") == {"ex2-posterior-variance-tests"}

    def test_abar_t_where_abar_prev_belongs_is_caught(self, mistaken):
        assert _lost(mistaken, "abar_t_for_abar_prev") == {"ex3-posterior-mean-coefs-tests"}

    def test_elbo_without_the_spread_of_x_t_is_caught(self, mistaken):
        assert _lost(mistaken, "elbo_no_spread") == {"ex8-elbo-terms-tests"}
        assert "spread of x_t" in mistaken["elbo_no_spread"].texts["ex8-elbo-terms-tests"]

    def test_t0_edge_is_caught(self, mistaken):
        assert _lost(mistaken, "t0_edge") == {"ex2-posterior-variance-tests"}
        text = mistaken["t0_edge"].texts["ex2-posterior-variance-tests"]
        assert "t = 0" in text and "ᾱ_{-1} = 1" in text
