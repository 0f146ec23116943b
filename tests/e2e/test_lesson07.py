"""Lesson 07 (final assessment) end to end: the standard lesson tests of ``lesson_harness`` (nbval on the
solution in fast mode; nbgrader autograde of the solution, the untouched student notebook, one exercise
right and a metadata-stripped copy), direct runs of each test cell on the classic mistakes, and the
assessment itself: the shipped checkpoint ``cfg16`` stands for a checkpoint trained by the solution's
own training cell; an unconditional model and a model that ignores the label fail; the verdict is
deterministic for a seed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from course_utils import lessons
from lesson_harness import CellTests, LessonSpec, LessonTests, solution_code

# answer grade_id → (its test cell, points), read from the solution notebook by the registry; the last one is
# "assessment-guidance" → ("assessment", 5): the learner's W, whose locked cell grades the samples
EXERCISES = lessons.get("07").exercises()
REAL_THRESHOLD = 0.9
# The solution is graded against the shipped cfg16 (trained by this lesson's own code in full mode: see
# course_utils/assets/cfg16.json) at the real pass mark. The registry's fast mode (COURSE_MODE=fast: 30
# training steps, ≤ 90 s on a CPU) grades cfg16; the threshold is this test's choice.
SOLUTION_THRESHOLD = REAL_THRESHOLD
SPEC = LessonSpec.from_registry(
    "07",
    one_right="ex1-linear-schedule",
    visible_marker="check_linear_schedule",
    env={"COURSE_ASSESSMENT_THRESHOLD": str(SOLUTION_THRESHOLD)},
)
CFG16 = Path(SPEC.env["COURSE_ASSESSMENT_CHECKPOINT"])

# A wrong answer: (answer grade_id, text in the solution, its replacement, caught by the visible tests too?)
MISTAKES = {
    "schedule_float32": ("ex1-linear-schedule", "dtype=torch.float64", "dtype=torch.float32", True),
    "alphas_cumprod_of_betas": ("ex1-linear-schedule", "torch.cumprod(1.0 - betas, dim=0)",
                                "torch.cumprod(betas, dim=0)", True),
    "q_sample_variance": ("ex2-q-sample", "(1 - a).sqrt() * noise", "(1 - a) * noise", True),
    "q_sample_ignores_schedule": ("ex2-q-sample", "a = alphas_cumprod.to(", "a = linear_schedule(1000)[1].to(",
                                  False),
    "mask_to_zero": ("ex3-cfg-loss", "torch.full_like(y, model.null_class)", "torch.zeros_like(y)", True),
    "no_mask": ("ex3-cfg-loss", "< P_UNCOND", "< 0.0", True),
    "mask_keeps_with_p": ("ex3-cfg-loss", "< P_UNCOND", ">= P_UNCOND", True),
    "loss_against_x0": ("ex3-cfg-loss", "F.mse_loss(model(xt, t, y), eps)", "F.mse_loss(model(xt, t, y), x0)", True),
    "T_hard_coded": ("ex3-cfg-loss", "torch.randint(0, diffusion.num_timesteps,", "torch.randint(0, 1000,", False),
    "unconditional_model": ("ex4-build-model", "num_classes=10", "num_classes=None", True),
    "same_model_every_call": ("ex4-build-model", "return UNet(UNetConfig(channels=(32, 64), num_classes=10))",
                              "global _M\n    _M = globals().get('_M') or UNet(UNetConfig(channels=(32, 64), "
                              "num_classes=10))\n    return _M", True),   # part of the check now: visible too
    "guidance_sign_swapped": ("ex5-guided-sample", "(1 + w) * model(x, t, labels) - w * model(x, t, null)",
                              "(1 - w) * model(x, t, labels) + w * model(x, t, null)", True),
    "no_guidance": ("ex5-guided-sample", "(1 + w) * model(x, t, labels) - w * model(x, t, null)",
                    "model(x, t, labels)", True),
    "null_is_label_zero": ("ex5-guided-sample", "torch.full_like(labels, model.null_class)",
                           "torch.zeros_like(labels)", True),
    "w_hard_coded": ("ex5-guided-sample", "(1 + w) * model(x, t, labels) - w * model(x, t, null)",
                     "3 * model(x, t, labels) - 2 * model(x, t, null)", False),
}


def _namespace(cells, answers=()):
    ns: dict = {}
    exec(cells["imports"].source, ns)                     # noqa: S102 (the lesson's own imports)
    for gid in answers:
        exec(solution_code(cells[gid]), ns)               # noqa: S102
    return ns


# ---------------------------------------------------------------- the assessment
def _assess(cells, monkeypatch, checkpoint: Path, threshold: float) -> dict:
    """Run the locked assessment cell on ``checkpoint`` with the solution's sampler and W; ``ns["assessment"]``
    is the result it judged (``course_utils.checks.lesson07.last_assessment()``)."""
    from course_utils.checks.lesson07 import _LAST, last_assessment

    monkeypatch.setenv("COURSE_ASSESSMENT_CHECKPOINT", str(checkpoint))
    monkeypatch.setenv("COURSE_ASSESSMENT_THRESHOLD", str(threshold))
    _LAST.clear()
    ns = _namespace(cells, EXERCISES)
    try:
        exec(cells["assessment"].source, ns)              # noqa: S102
    finally:
        ns["assessment"] = last_assessment()
    return ns


def _cfg16_is_placeholder() -> bool:
    meta = json.loads(CFG16.with_suffix(".json").read_text())
    return "--steps" in meta.get("command", "")


class TestLesson07(LessonTests, CellTests):
    spec = SPEC
    # direct runs of the test cells (the assessment's own answer is graded by the tests below)
    mistakes = MISTAKES
    context = "others"
    skip = ("assessment-guidance",)

    def test_shipped_checkpoint_records_how_it_was_made(self):
        from course_utils.pretrained import load_pretrained

        model, _, meta = load_pretrained("cfg16")
        assert isinstance(model.null_class, int)
        assert meta["command"] and meta["wall_time_s"] > 0
        assert (CFG16.parent / "cfg16.pt.sha256").exists()

    def test_solution_passes_the_real_pass_mark(self, cells, monkeypatch, capsys):
        if _cfg16_is_placeholder():
            pytest.skip("cfg16 is still the 200-step placeholder (TODO(cfg16) above)")
        ns = _assess(cells, monkeypatch, CFG16, REAL_THRESHOLD)
        assert ns["assessment"].passed and ns["assessment"].agreement >= REAL_THRESHOLD
        assert capsys.readouterr().err == ""

    def test_an_unconditional_model_fails_the_assessment(self, cells, monkeypatch, tmp_path):
        from course_utils.diffusion import GaussianDiffusion
        from course_utils.models import UNet, UNetConfig
        from course_utils.schedules import linear_betas
        from course_utils.train import save_checkpoint

        path = save_checkpoint(tmp_path / "unconditional.pt", UNet(UNetConfig(channels=(32, 64))),
                               GaussianDiffusion(linear_betas(1000)), {"command": "test"})
        with pytest.raises(AssertionError, match="unconditional"):
            _assess(cells, monkeypatch, path, REAL_THRESHOLD)

    def test_a_model_that_ignores_the_label_fails_the_assessment(self, cells, monkeypatch, tmp_path, capsys):
        from course_utils.pretrained import load_pretrained
        from course_utils.train import save_checkpoint

        model, diffusion, meta = load_pretrained("cfg16")
        with torch.no_grad():                                 # every label gets the null class's embedding
            model.class_emb.weight[:] = model.class_emb.weight[model.null_class]
        path = save_checkpoint(tmp_path / "ignores_label.pt", model, diffusion, {"command": "test"})
        with pytest.raises(AssertionError, match="pass mark is 90%"):
            _assess(cells, monkeypatch, path, REAL_THRESHOLD)
        out = capsys.readouterr().out
        assert "NOT PASSED" in out
        assert float(out.split("all")[1].split("%")[0]) < 30      # about chance (10 %), far below the mark

    def test_the_verdict_is_deterministic_for_a_seed(self, cells):
        from course_utils.grading import assess_class_agreement
        from course_utils.pretrained import load_pretrained

        ns = _namespace(cells, ["ex5-guided-sample"])
        model, diffusion, _ = load_pretrained("cfg16")
        runs = [assess_class_agreement(model, diffusion, ns["guided_sample"], per_class=3, w=2.0, seed=7,
                                       num_steps=5) for _ in range(2)]
        assert runs[0].per_class == runs[1].per_class and runs[0].passed == runs[1].passed
        assert torch.equal(runs[0].images, runs[1].images)
