"""Lesson 09 end to end: the standard lesson tests of ``lesson_harness`` (nbval on the solution; nbgrader
autograde of the solution, the untouched student notebook and one exercise right), a submission whose
augmentation is not variance-preserving (scored in-process by ``lesson_harness.grade_cells``), and direct runs of
each test cell on the lesson's classic mistakes: the hidden tests must catch an augmentation that adds the noise
without shrinking the condition, treats a as a variance or uses one level for the batch; a super-resolution sampler
that does not augment, tells the model another level, redraws the augmentation every step, upsamples nearest,
clips the residual's x̂0, or does not add the scaled residual back to the clean upsample; a scale factor that is the
standard deviation itself, or per channel; a latent sampler that multiplies by the scale factor, never unscales,
clips the latents or ignores the guidance."""
from __future__ import annotations

import nbformat

from course_utils import lessons
from lesson_harness import CellTests, LessonSpec, LessonTests, grade_cells

# answer grade_id → (its test cell, points), read from the solution notebook by the registry
EXERCISES = lessons.get("09").exercises()

_AUG = "return torch.sqrt(1 - a ** 2) * z + a * noise"

# A wrong answer: (answer grade_id, text in the solution, its replacement, caught by the visible tests too?)
MISTAKES = {
    "not_variance_preserving": ("ex1-augment-condition", _AUG, "return z + a * noise", True),
    "level_as_variance": ("ex1-augment-condition", _AUG, "return torch.sqrt(1 - a) * z + torch.sqrt(a) * noise", True),
    "lesson01_blend": ("ex1-augment-condition", _AUG, "return (1 - a) * z + a * noise", True),
    "one_level_for_the_batch": ("ex1-augment-condition",
                                "a = a.reshape(-1, 1, 1, 1) if a.ndim == 1 else a",
                                "a = a.reshape(-1)[0] if a.ndim == 1 else a", True),
    "condition_not_augmented": ("ex2-super-resolve", "z_a = cascade.augment_condition(z, a, cond_noise)",
                                "z_a = z", True),
    "model_told_no_level": ("ex2-super-resolve", "eps = model(x, t, z_a, a)", "eps = model(x, t, z_a, torch.zeros_like(a))",
                            True),
    "augmentation_redrawn_each_step": ("ex2-super-resolve", "eps = model(x, t, z_a, a)",
                                       "eps = model(x, t, cascade.augment_condition(z, a, torch.randn_like(z)), a)", True),
    "nearest_upsampling": ("ex2-super-resolve", "z = cascade.upsample(low, 2 * low.shape[-1])",
                           "z = F.interpolate(low, scale_factor=2, mode='nearest')", True),
    "residual_x0_clipped": ("ex2-super-resolve", "clip_x0=s is None)", "clip_x0=True)", True),
    "residual_not_added": ("ex2-super-resolve", "return (x if s is None else z + s * x).clamp(-1, 1)",
                           "return x.clamp(-1, 1)", True),
    "residual_unscaled": ("ex2-super-resolve", "return (x if s is None else z + s * x).clamp(-1, 1)",
                          "return (x if s is None else z + x).clamp(-1, 1)", True),
    "residual_on_the_augmented_condition": ("ex2-super-resolve", "return (x if s is None else z + s * x).clamp(-1, 1)",
                                            "return (x if s is None else z_a + s * x).clamp(-1, 1)", True),
    "std_not_inverse": ("ex3-scale-factor", "return 1.0 / latents.float().flatten().std().item()",
                        "return latents.float().flatten().std().item()", True),
    "per_channel": ("ex3-scale-factor", "return 1.0 / latents.float().flatten().std().item()",
                    "return 1.0 / latents.float().std(dim=(0, 2, 3))", True),
    "multiplied_by_scale": ("ex4-latent-sample", "return ae.decode(z0 / scale)", "return ae.decode(z0 * scale)", True),
    "never_unscaled": ("ex4-latent-sample", "return ae.decode(z0 / scale)", "return ae.decode(z0)", True),
    "latents_clipped": ("ex4-latent-sample", "w=w, clip_x0=False,", "w=w, clip_x0=True,", True),
    "guidance_ignored": ("ex4-latent-sample", "w=w, clip_x0=False,", "w=0.0, clip_x0=False,", True),
}


class TestLesson09(LessonTests, CellTests):
    spec = LessonSpec.from_registry(
        "09",
        one_right="ex3-scale-factor",
        visible_marker="check_latent_sample",
        max_ignored_outputs=4,      # also the two cells that print seconds (the cost ratio, the latent sampler)
        # env: the registry's test_env for lesson 09 (one torch thread per kernel, as for lessons 04, 06 and 08)
    )
    # direct runs of the test cells
    mistakes = MISTAKES
    context = "none"

    def test_unshrunk_augmentation_loses_exactly_the_augmentation_points(self):
        scores = grade_cells(self.spec.solution, EXERCISES, *MISTAKES["not_variance_preserving"][:3]).scores
        assert {t: scores[t] for t, _ in EXERCISES.values()} == \
            {t: (0 if t == "ex1-augment-condition-tests" else p) for t, p in EXERCISES.values()}

    def test_widget_output_is_not_stored(self, cells):
        """The explorer's view ids change on every run: its display cell keeps no output (and is nbval-ignored)."""
        nb = nbformat.read(self.spec.solution, as_version=4)
        shown = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("explorer  #")]
        assert len(shown) == 1 and shown[0].outputs == [] and "nbval-ignore-output" in shown[0].metadata["tags"]
