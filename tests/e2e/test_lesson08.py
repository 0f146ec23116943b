"""Lesson 08 end to end: the standard lesson tests of ``lesson_harness`` (nbval on the solution; nbgrader
autograde of the solution, the untouched student notebook and one exercise right), a submission whose
contrastive loss runs in one direction only (scored in-process by ``lesson_harness.grade_cells``), and direct
runs of each test cell on the lesson's classic mistakes: the hidden tests must catch a one-directional or
unnormalised loss, the temperature applied the wrong way or not clamped, targets that are not the diagonal;
zero-shot with one template, without renormalising, with raw class names or the argmax over the images;
attention with the softmax over the queries, without 1/√d or with 1/√D, heads mixed up, or the mask ignored."""
from __future__ import annotations

import nbformat

from course_utils import lessons
from lesson_harness import CellTests, LessonSpec, LessonTests, grade_cells

# answer grade_id → (its test cell, points), read from the solution notebook by the registry
EXERCISES = lessons.get("08").exercises()

_SCALE = "scale = logit_scale.clamp(max=math.log(100)).exp()"
_SPLIT = "'b n (h d) -> b h n d'"

# A wrong answer: (answer grade_id, text in the solution, its replacement, caught by the visible tests too?)
MISTAKES = {
    "one_direction": ("ex1-contrastive-loss",
                      "return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2",
                      "return F.cross_entropy(logits, targets)", True),
    "image_side_unnormalised": ("ex1-contrastive-loss", "image_emb = F.normalize(image_features, dim=-1)",
                                "image_emb = image_features", True),
    "temperature_divides": ("ex1-contrastive-loss", "logits = scale * image_emb @ text_emb.T",
                            "logits = image_emb @ text_emb.T / scale", True),
    "log_scale_not_exponentiated": ("ex1-contrastive-loss", _SCALE, "scale = logit_scale", True),
    "not_clamped": ("ex1-contrastive-loss", _SCALE, "scale = logit_scale.exp()", False),
    "targets_not_diagonal": ("ex1-contrastive-loss", "targets = torch.arange(logits.shape[0], device=logits.device)",
                             "targets = torch.zeros(logits.shape[0], dtype=torch.long)", True),
    "first_template_only": ("ex2-zero-shot", "for t in templates]", "for t in templates[:1]]", True),
    "mean_not_renormalised": ("ex2-zero-shot", "class_emb.append(F.normalize(emb.mean(dim=0), dim=-1))",
                              "class_emb.append(emb.mean(dim=0))", True),
    "raw_class_names": ("ex2-zero-shot", "C.class_prompt(name, t)", "t.format(name)", True),
    "argmax_over_images": ("ex2-zero-shot", "return (image_emb @ class_emb.T).argmax(dim=1)",
                           "return (image_emb @ class_emb.T).argmax(dim=0)", True),
    "softmax_over_queries": ("ex3-attention", "weights = scores.softmax(dim=-1)", "weights = scores.softmax(dim=-2)",
                             True),
    "no_sqrt_d": ("ex3-attention", " / math.sqrt(qh.shape[-1])", "", True),
    "sqrt_full_width": ("ex3-attention", "math.sqrt(qh.shape[-1])", "math.sqrt(q.shape[-1])", True),
    "heads_mixed_up": ("ex3-attention", f"rearrange(x, {_SPLIT}, h=heads)", "rearrange(x, 'b n (d h) -> b h n d', h=heads)",
                       True),
    "mask_ignored": ("ex3-attention", "if mask is not None:", "if False:", True),
}


class TestLesson08(LessonTests, CellTests):
    spec = LessonSpec.from_registry(
        "08",
        one_right="ex3-attention",
        visible_marker="check_zero_shot",
        # env: the registry's test_env for lesson 08 (one torch thread per kernel, as for lessons 04 and 06)
    )
    # direct runs of the test cells
    mistakes = MISTAKES
    context = "none"

    def test_one_directional_loss_loses_exactly_the_loss_points(self):
        scores = grade_cells(self.spec.solution, EXERCISES, *MISTAKES["one_direction"][:3]).scores
        assert {t: scores[t] for t, _ in EXERCISES.values()} == \
            {t: (0 if t == "ex1-contrastive-loss-tests" else p) for t, p in EXERCISES.values()}

    def test_widget_output_is_not_stored(self, cells):
        """The explorer's view ids change on every run: its display cell keeps no output (and is nbval-ignored)."""
        nb = nbformat.read(self.spec.solution, as_version=4)
        shown = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("explorer")]
        assert len(shown) == 1 and shown[0].outputs == [] and "nbval-ignore-output" in shown[0].metadata["tags"]
