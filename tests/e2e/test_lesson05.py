"""Lesson 05 end to end: the standard lesson tests of ``lesson_harness`` (nbval on the solution; nbgrader
autograde of the solution, the untouched student notebook and one exercise right), a submission that forgets
to reject odd embedding sizes (scored in-process by ``lesson_harness.grade_cells``), and direct runs of each test
cell on the lesson's classic mistakes: the hidden tests must catch odd sizes accepted silently, the
cos half first, float t truncated, neighbouring t mapped together, h + emb broadcast over (H, W), a
residual block without its skip or embedding, and quarter-images instead of 2×2 patches."""
from __future__ import annotations

from course_utils import lessons
from lesson_harness import CellTests, LessonSpec, LessonTests, grade_cells

# answer grade_id → (its test cell, points), read from the solution notebook by the registry
EXERCISES = lessons.get("05").exercises()

# A wrong answer: (answer grade_id, text in the solution, its replacement, caught by the visible tests too?)
MISTAKES = {
    "odd_dim_accepted": ("ex2-sinusoidal-embedding", "if dim % 2:", "if False:", False),
    "cos_half_first": ("ex2-sinusoidal-embedding", "torch.cat([torch.sin(args), torch.cos(args)], dim=-1)",
                       "torch.cat([torch.cos(args), torch.sin(args)], dim=-1)", True),
    "float_t_truncated": ("ex2-sinusoidal-embedding", "rearrange(t.float(), 'b -> b 1')",
                          "rearrange(t.long().float(), 'b -> b 1')", False),
    "neighbours_merged": ("ex2-sinusoidal-embedding", "rearrange(t.float(), 'b -> b 1')",
                          "rearrange((t // 2 * 2).float(), 'b -> b 1')", True),
    "vague_odd_error": ("ex2-sinusoidal-embedding", 'raise ValueError(f"dim must be even (a sin half and a cos '
                        'half); got dim={dim}.")', 'raise ValueError("bad")', False),
    "broadcast_over_hw": ("ex1-add-time-embedding", "return h + rearrange(emb, 'b c -> b c 1 1')",
                          "return h + emb if h.shape[-2:] == emb.shape else h + rearrange(emb, 'b c -> b c 1 1')",
                          False),
    "no_skip": ("ex3-res-block", "return self.skip(x) + h", "return h", True),
    "no_embedding": ("ex3-res-block", "h = h + rearrange(self.emb_proj(emb), 'b c -> b c 1 1')", "pass", True),
    "identity_skip_dropped": ("ex3-res-block", "return self.skip(x) + h",
                              "return self.skip(x) + h if isinstance(self.skip, nn.Conv2d) else h", False),
    "quarter_images": ("ex4-rearrange-pool", "'b c (h p1) (w p2) -> b (c p1 p2) h w'",
                       "'b c (p1 h) (p2 w) -> b (c p1 p2) h w'", True),
}


class TestLesson05(LessonTests, CellTests):
    spec = LessonSpec.from_registry(
        "05",
        one_right="ex1-add-time-embedding",
        visible_marker="check_sinusoidal_embedding",
    )
    # direct runs of the test cells
    mistakes = MISTAKES
    context = "none"

    def test_odd_embedding_size_accepted_loses_exactly_the_embedding_points(self):
        scores = grade_cells(self.spec.solution, EXERCISES, *MISTAKES["odd_dim_accepted"][:3]).scores
        assert {t: scores[t] for t, _ in EXERCISES.values()} == \
            {t: (0 if t == "ex2-sinusoidal-embedding-tests" else p) for t, p in EXERCISES.values()}
