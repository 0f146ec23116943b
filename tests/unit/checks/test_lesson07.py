"""course_utils.checks, lesson 07 (the final assessment's pieces): each check passes the right answer,
names each classic mistake, writes only to stdout, returns None, and splits into make → run → judge steps
whose inputs and outputs survive torch.save / torch.load(weights_only=True)."""
from __future__ import annotations

import pytest
import torch

from course_utils import checks
from course_utils.checks import _harness

from check_support import blocked, fails, resolve, round_trip, run, separates


def _l07_schedule(T):
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return betas, torch.cumprod(1 - betas, 0)


def _l07_q_sample(x0, t, eps, a):
    a = a.to(x0.dtype)[t].reshape(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def _l07_loss(p=0.1, null=None, target="eps", use_gen=True, keep=False):
    def cfg_loss(model, diffusion, x0, y, generator=None):
        g = generator if use_gen else None
        B = x0.shape[0]
        t = torch.randint(0, diffusion.num_timesteps, (B,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        u = torch.rand(B, generator=g)
        drop = (u >= p) if keep else (u < p)
        y = torch.where(drop, torch.full_like(y, model.null_class if null is None else null), y)
        xt = _l07_q_sample(x0, t, eps, diffusion.alphas_cumprod)
        return torch.nn.functional.mse_loss(model(xt, t, y), eps if target == "eps" else x0)
    return cfg_loss


def _l07_sampler(combine=lambda c, u, w: (1 + w) * c - w * u, null_label=None):
    @torch.no_grad()
    def guided_sample(model, diffusion, labels, w=2.0, num_steps=25, generator=None, image_size=16):
        B = labels.shape[0]
        x = torch.randn((B, 1, image_size, image_size), generator=generator)
        null = torch.full_like(labels, model.null_class if null_label is None else null_label)
        ts = diffusion.ddim_timesteps(num_steps)
        for a, b in zip(ts, ts[1:] + [-1]):
            t, tp = torch.full((B,), a), torch.full((B,), b)
            x = diffusion.ddim_step(combine(model(x, t, labels), model(x, t, null), w), x, t, tp).sample
        return x
    return guided_sample


def test_lesson07_checks_pass_the_right_answers(capsys):
    from course_utils.models import UNet, UNetConfig

    checks.check_linear_schedule(_l07_schedule)
    checks.check_cfg_loss(_l07_loss())
    checks.check_conditional_model(UNet(UNetConfig(channels=(32, 64), num_classes=10)))
    checks.check_guided_sample(_l07_sampler())
    checks.check_guided_sample(_l07_sampler(), w=0.0, seed=1, num_steps=4)
    out = capsys.readouterr()
    assert out.err == "" and "✗" not in out.out and out.out.count("✓") == 6


@pytest.mark.parametrize("fn, match", [
    (lambda T: _l07_schedule(T)[0], "pair"),
    (lambda T: tuple(v.float() for v in _l07_schedule(T)), "float64"),
    (lambda T: (_l07_schedule(T)[0], torch.cumsum(1 - _l07_schedule(T)[0], 0)), "cumprod"),
])
def test_lesson07_linear_schedule_mistakes(capsys, fn, match):
    fails(capsys, checks.check_linear_schedule, fn, match=match)


@pytest.mark.parametrize("fn, match", [
    (_l07_loss(p=0.0), "No label was dropped"),
    (_l07_loss(p=0.2), "became the null class"),
    (_l07_loss(keep=True), "keep labels with probability p"),
    (_l07_loss(null=0), "0 or -1"),
    (_l07_loss(target="x0"), "against x0"),
    (_l07_loss(use_gen=False), "generator"),
])
def test_lesson07_cfg_loss_mistakes(capsys, fn, match):
    fails(capsys, checks.check_cfg_loss, fn, match=match)


def test_lesson07_conditional_model_mistakes(capsys):
    from course_utils.models import UNet, UNetConfig

    class IgnoresLabel(UNet):
        def forward(self, x, t=None, y=None):
            return super().forward(x, t, None)

    fails(capsys, checks.check_conditional_model, UNet(UNetConfig(channels=(32, 64))), match="not class-conditional")
    fails(capsys, checks.check_conditional_model, IgnoresLabel(UNetConfig(channels=(32, 64), num_classes=10)),
          match="ignores y")
    fails(capsys, checks.check_conditional_model, UNet(UNetConfig(channels=(64, 128), num_classes=10)),
          match="budget")


@pytest.mark.parametrize("fn, match", [
    (_l07_sampler(lambda c, u, w: (1 - w) * c + w * u), "sign of w"),
    (_l07_sampler(lambda c, u, w: w * c + (1 - w) * u), "w = 0 is the plain"),
    (_l07_sampler(lambda c, u, w: c), "no guidance"),
    (_l07_sampler(null_label=0), "label 0"),
])
def test_lesson07_guided_sample_mistakes(capsys, fn, match):
    fails(capsys, checks.check_guided_sample, fn, num_steps=4, match=match)


# ---------------------------------------------------------------- the model, or build_model itself
def test_conditional_model_accepts_the_model_or_its_builder(capsys):
    from course_utils.models import UNet, UNetConfig

    def build_model():
        return UNet(UNetConfig(channels=(32, 64), num_classes=10))

    run(checks.check_conditional_model, build_model(), max_parameters=600_000)
    run(checks.check_conditional_model, build_model, max_parameters=600_000, seed=7)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 2 and "✗" not in out.out
    # the builder's mistakes are named as for the model
    fails(capsys, checks.check_conditional_model, lambda: UNet(UNetConfig(channels=(32, 64))),
          match="not class-conditional")
    fails(capsys, checks.check_conditional_model, lambda: None, match="should return a torch.nn.Module.*NoneType")
    fails(capsys, checks.check_conditional_model, None, match="should return a torch.nn.Module.*NoneType")


def test_unanswered_build_model_gets_the_usual_message(capsys):
    def build_model():
        """A new class-conditional U-Net."""
        raise NotImplementedError()

    out = fails(capsys, checks.check_conditional_model, build_model, max_parameters=600_000,
                match="still raises NotImplementedError")
    assert out.startswith("✗ build_model: still raises NotImplementedError: replace the `raise NotImplementedError()`")

    def broken():
        return 1 / 0

    fails(capsys, checks.check_conditional_model, broken, match=r"calling it raised ZeroDivisionError \(at line")


def test_not_implemented_is_explained(capsys):
    def todo(*args, **kwargs):
        raise NotImplementedError()

    for check in (checks.check_linear_schedule, checks.check_cfg_loss, checks.check_guided_sample):
        fails(capsys, check, todo, match="still raises NotImplementedError")


# ---------------------------------------------------------------- the three steps separate
def _separate_cases():
    from course_utils.models import UNet, UNetConfig

    return [
        ("check_linear_schedule", {}, _l07_schedule,
         lambda T: (_l07_schedule(T)[0], torch.cumsum(1 - _l07_schedule(T)[0], 0)), "cumprod"),
        ("check_cfg_loss", {"calls": 8}, _l07_loss(), _l07_loss(null=0), "0 or -1"),
        ("check_conditional_model", {}, lambda: UNet(UNetConfig(channels=(32, 64), num_classes=10)),
         lambda: UNet(UNetConfig(channels=(32, 64))), "not class-conditional"),
        ("check_guided_sample", {"num_steps": 4}, _l07_sampler(), _l07_sampler(lambda c, u, w: c), "no guidance"),
    ]


@pytest.mark.parametrize("case", range(4))
def test_lesson07_steps_separate_through_torch_save(capsys, case):
    check, params, right, wrong, match = _separate_cases()[case]
    c = getattr(checks, check)
    assert isinstance(c, _harness.Check) and _harness.get_check(check) is c
    separates(capsys, c, params, right, wrong, match)


@pytest.mark.parametrize("check", ["check_linear_schedule", "check_cfg_loss", "check_conditional_model",
                                   "check_guided_sample"])
def test_lesson07_references_pass(capsys, check):
    c = getattr(checks, check)
    assert c.reference is not None
    run(c, c.reference)
    out = capsys.readouterr()
    assert "✓" in out.out and "✗" not in out.out


def test_lesson07_assessment_steps_separate_through_torch_save(capsys):
    """make (checkpoint, pass mark) → run (load it, the learner's sampler) → save/load → judge (classifier)."""
    from course_utils.pretrained import checkpoint_path

    c = checks.check_assessment
    assert _harness.get_check("check_assessment") is c and not c.grading_seed
    for sampler, threshold, want in ((_l07_sampler(), 0.0, None),
                                     (lambda m, d, labels, **k: torch.zeros(len(labels), 1, 16, 16), 1.0,
                                      "pass mark is 100%")):
        inputs = round_trip(c.make(per_class=1, num_steps=2, checkpoint=str(checkpoint_path("cfg16")),
                                    threshold=threshold))
        with blocked(c):
            outputs = round_trip(c.run(inputs, sampler, 2.0))
        if want is None:
            c.judge(inputs, outputs)
            assert "✓" in capsys.readouterr().out
        else:
            with pytest.raises(_harness.CheckFailed, match=want):
                c.judge(inputs, outputs)
            assert "NOT PASSED" in capsys.readouterr().out
    missing = c.run(c.make(checkpoint="/nonexistent/assessment_model.pt"), _l07_sampler(), 2.0)
    with pytest.raises(_harness.CheckFailed, match="could not be loaded"):
        c.judge(c.make(checkpoint="/nonexistent/assessment_model.pt"), missing)


def test_every_lesson07_check_is_separated_and_blocks_real_functions():
    names = {n for n in checks.lesson07.__all__ if n.startswith("check_")}
    assert names == {case[0] for case in _separate_cases()} | {"check_assessment"}
    for name in names:
        for dotted in checks.get_check(name).blocks:
            assert callable(resolve(dotted)), dotted


def test_conditional_model_builder_must_build_a_new_model_each_call(capsys):
    """The hidden assert `build_model() is not build_model()` is part of the check (a grader decides it)."""
    import pytest
    from course_utils import checks
    from course_utils.models import UNet, UNetConfig

    one = UNet(UNetConfig(channels=(32, 64), num_classes=10))
    with pytest.raises(AssertionError, match="new model on every call"):
        checks.check_conditional_model(lambda: one)
    checks.check_conditional_model(lambda: UNet(UNetConfig(channels=(32, 64), num_classes=10)))
    assert "✓" in capsys.readouterr().out
