"""course_utils.checks: each check passes the right function, names each classic mistake, writes only to
stdout, and returns None (a number on a test cell's last line would be read by nbgrader as partial credit)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from course_utils import checks
from course_utils.diffusion import extract
from course_utils.schedules import linear_betas as pkg_linear_betas, make_betas


def run(check, *args, **kwargs):
    """Run a check expected to pass; it must return None."""
    assert check(*args, **kwargs) is None


def fails(capsys, check, *args, match: str, **kwargs) -> str:
    """Run a check expected to fail with ``match`` in its message; returns what it printed."""
    with pytest.raises(AssertionError, match=match):
        check(*args, **kwargs)
    out = capsys.readouterr()
    assert out.err == "", "checks must never write to stderr"
    assert "✗" in out.out
    return out.out


# ------------------------------------------------------------------ linear_betas
def good_linear_betas(T, beta_start=1e-4, beta_end=0.02):
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def test_linear_betas_right(capsys):
    for T in (1, 10, 1000):
        run(checks.check_linear_betas, good_linear_betas, T=T)
    run(checks.check_linear_betas, good_linear_betas, T=7, beta_start=1e-3, beta_end=0.05)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 4 and "✗" not in out.out


@pytest.mark.parametrize("fn, match", [
    (lambda T, beta_start=1e-4, beta_end=0.02: torch.linspace(beta_start, beta_end, T), "float64"),
    (lambda T, beta_start=1e-4, beta_end=0.02:
        torch.linspace(beta_start, beta_end, T + 1, dtype=torch.float64)[:-1], "stops one step short"),
    (lambda T, beta_start=1e-4, beta_end=0.02:
        torch.linspace(beta_start, beta_end, T + 1, dtype=torch.float64), "exactly T"),
    (lambda T, beta_start=1e-4, beta_end=0.02:
        torch.linspace(beta_end, beta_start, T, dtype=torch.float64), "backwards"),
    (lambda T, beta_start=1e-4, beta_end=0.02: np.linspace(beta_start, beta_end, T), "torch.Tensor"),
])
def test_linear_betas_mistakes(capsys, fn, match):
    fails(capsys, checks.check_linear_betas, fn, T=10, match=match)


def test_linear_betas_ignoring_arguments(capsys):
    fails(capsys, checks.check_linear_betas, lambda T, beta_start=1e-4, beta_end=0.02: good_linear_betas(T),
          T=7, beta_start=1e-3, beta_end=0.05, match="ignored the beta_start")


def test_not_implemented_is_explained(capsys):
    def linear_betas(T, beta_start=1e-4, beta_end=0.02):
        raise NotImplementedError()

    out = fails(capsys, checks.check_linear_betas, linear_betas, match="NotImplementedError")
    assert "replace the `raise NotImplementedError()`" in out


# ------------------------------------------------------------------ data range
def test_to_model_range(capsys):
    run(checks.check_to_model_range, lambda x: x.float() / 127.5 - 1)
    run(checks.check_to_model_range, lambda x: 2 * (x / 255.0) - 1, shape=(2, 5), seed=3)
    fails(capsys, checks.check_to_model_range, lambda x: x.float() / 255, match=r"data looks like \[0, 1\]")
    fails(capsys, checks.check_to_model_range, lambda x: x.float(), match=r"still in \[0, 255\]")
    fails(capsys, checks.check_to_model_range, lambda x: x / 127.5 - 1.0 + 0 * x.double(), match="float32")
    fails(capsys, checks.check_to_model_range, lambda x: x // 2, match="convert with .float()")
    fails(capsys, checks.check_to_model_range, lambda x: x.float() / 255 - 0.5, match="double them")

    def in_place(x):
        x.zero_()
        return x.float()
    fails(capsys, checks.check_to_model_range, in_place, match="in place")


def test_check_data_range(capsys):
    x = torch.rand(2, 1, 4, 4)
    run(checks.check_data_range, x * 2 - 1)
    fails(capsys, checks.check_data_range, x, match=r"data looks like \[0, 1\]: scale to \[-1, 1\]")
    fails(capsys, checks.check_data_range, x * 255, match=r"\[0, 255\]")
    fails(capsys, checks.check_data_range, x * 4 - 2, match=r"should lie in \[-1, 1\]")
    fails(capsys, checks.check_data_range, (x * 255).to(torch.uint8), match="dtype")


# ------------------------------------------------------------------ forward_step
def good_forward_step(x_prev, t, betas, noise):
    return torch.sqrt(1 - betas[t]) * x_prev + torch.sqrt(betas[t]) * noise


def test_forward_step_right(capsys):
    run(checks.check_forward_step, good_forward_step)
    run(checks.check_forward_step, good_forward_step, T=10, t=0, shape=(3, 1, 5, 5), seed=1)
    run(checks.check_forward_step, good_forward_step, T=1000, t=999, shape=(1, 1, 4, 4), dtype=torch.float64)
    assert capsys.readouterr().err == ""


def test_reference_forward_step_is_eq2():
    """The reference (q_sample of the one-step schedule) against eq. 2 written out in float64."""
    betas = pkg_linear_betas(1000)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64), torch.randn(3, 1, 4, 4, generator=g,
                                                                                      dtype=torch.float64)
    for t in (0, 1, 500, 999):
        want = (1 - betas[t]).sqrt() * x + betas[t].sqrt() * eps
        assert torch.allclose(checks.reference_forward_step(x, t, betas, eps), want, atol=1e-6)


@pytest.mark.parametrize("fn, kwargs, match", [
    (lambda x, t, b, n: torch.sqrt(1 - b[t]) * x + b[t] * n, {}, "variance where the standard deviation"),
    (lambda x, t, b, n: (1 - b[t]) * x + torch.sqrt(b[t]) * n, {}, r"scaled by 1 − β_t"),
    (lambda x, t, b, n: torch.sqrt(1 - b[t - 1]) * x + torch.sqrt(b[t - 1]) * n, {}, r"β\[t-1\] indexing"),
    (lambda x, t, b, n: torch.sqrt(1 - b[t - 1]) * x + torch.sqrt(b[t - 1]) * n, {"t": 0}, "off by one"),
    (lambda x, t, b, n: torch.sqrt(1 - b[t + 1]) * x + torch.sqrt(b[t + 1]) * n, {}, r"betas\[t \+ 1\]"),
    (lambda x, t, b, n: torch.sqrt(1 - b[t]) * x, {}, "noise term is missing"),
    (lambda x, t, b, n: x + torch.sqrt(b[t]) * n, {}, "signal is not scaled"),
    (lambda x, t, b, n: torch.sqrt(1 - b[t]) * x + torch.sqrt(b[t]) * torch.randn_like(x), {}, "noise` argument"),
    (lambda x, t, b, n: good_forward_step(x, t, b, n).double(), {}, "dtype"),
])
def test_forward_step_mistakes(capsys, fn, kwargs, match):
    fails(capsys, checks.check_forward_step, fn, match=match, **kwargs)


def test_learner_warnings_go_to_stdout_and_do_not_fail(capsys):
    def noisy_step(x_prev, t, betas, noise):
        warnings.warn("something harmless", UserWarning)
        return good_forward_step(x_prev, t, betas, noise)

    with warnings.catch_warnings():
        warnings.simplefilter("error")          # any warning escaping the check would raise here
        run(checks.check_forward_step, noisy_step)
    out = capsys.readouterr()
    assert out.err == ""
    assert "UserWarning: something harmless" in out.out and "✓" in out.out


def test_learner_errors_are_explained(capsys):
    out = fails(capsys, checks.check_forward_step, lambda x, t, b, n: x + b, match="raised RuntimeError")
    assert "forward_step" in out


# ------------------------------------------------------------------ alphas_cumprod
def test_alphas_cumprod_right(capsys):
    for T, kind in ((10, "linear"), (1000, "cosine"), (1, "linear")):
        run(checks.check_alphas_cumprod, lambda b: torch.cumprod(1 - b, 0), T=T, schedule=kind)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("fn, match", [
    (lambda b: torch.cat([torch.ones(1, dtype=b.dtype), torch.cumprod(1 - b, 0)[:-1]]), "off by one step"),
    (lambda b: torch.cumprod(1 - b[1:], 0), r"start the product at β_1"),
    (lambda b: torch.cat([torch.cumprod(1 - b[1:], 0), 1 - b[-1:]]), r"start the product at β_1"),
    (lambda b: torch.cumprod(b, 0), "multiplied the βs"),
    (lambda b: 1 - b, "running product"),
    (lambda b: torch.cumprod(1 - b, 0).sqrt(), "√ᾱ_t"),
    (lambda b: torch.cumsum(1 - b, 0), "not a sum"),
    (lambda b: torch.cumprod(1 - b.float(), 0), "float64"),
])
def test_alphas_cumprod_mistakes(capsys, fn, match):
    fails(capsys, checks.check_alphas_cumprod, fn, match=match)


# ------------------------------------------------------------------ q_sample
def good_q_sample(x0, t, a_bar, noise):
    a = extract(a_bar, t, x0.shape)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def test_q_sample_right(capsys):
    run(checks.check_q_sample, good_q_sample)
    run(checks.check_q_sample, good_q_sample, T=1000, schedule="cosine", shape=(6, 3, 5, 5), seed=5)
    run(checks.check_q_sample, good_q_sample, T=10, shape=(3, 7), t=[0, 9, 4])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("fn, kwargs, match", [
    (lambda x, t, a, n: extract(a, t, x.shape) * x + (1 - extract(a, t, x.shape)) * n, {},
     "variances where the standard deviations belong"),
    (lambda x, t, a, n: extract(a, t, x.shape).sqrt() * x + (1 - extract(a, t, x.shape)) * n, {},
     "variance where the standard deviation belongs"),
    (lambda x, t, a, n: good_q_sample(x, t - 1, a, n), {"t": [3, 10, 500, 999]}, "off by one"),
    (lambda x, t, a, n: good_q_sample(x, t[:1].expand(len(t)), a, n), {}, "own t"),
    (lambda x, t, a, n: a[t].sqrt() * x + (1 - a[t]).sqrt() * n, {"shape": (4, 1, 4, 4)}, "last axis"),
    (lambda x, t, a, n: a[t].sqrt() * x + (1 - a[t]).sqrt() * n, {}, "extract"),
    (lambda x, t, a, n: good_q_sample(x, t, a, torch.randn_like(x)), {}, "noise` argument"),
])
def test_q_sample_mistakes(capsys, fn, kwargs, match):
    fails(capsys, checks.check_q_sample, fn, match=match, **kwargs)


# ------------------------------------------------------------------ SNR
def good_first_t(a_bar):
    below = torch.nonzero(a_bar / (1 - a_bar) < 1)
    return int(below[0]) if len(below) else None


def test_first_t_snr_right(capsys):
    for T, kind in ((1000, "linear"), (1000, "cosine"), (10, "linear"), (50, "cosine")):
        run(checks.check_first_t_snr_below_one, good_first_t, T=T, schedule=kind)
    out = capsys.readouterr().out
    assert "= None" in out and "= 259" in out and "= 496" in out
    # a 0-d integer tensor is accepted; a float is not
    run(checks.check_first_t_snr_below_one, lambda a: torch.nonzero(a / (1 - a) < 1)[0, 0])
    fails(capsys, checks.check_first_t_snr_below_one, lambda a: float(good_first_t(a)), match="int timestep")


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_reference_first_t_agrees_with_a_float64_count(kind):
    betas = make_betas(kind, 1000).numpy()
    a = np.cumprod(1 - betas)                                      # float64, independent of the package
    assert checks.reference_first_t_snr_below_one(make_betas(kind, 1000)) == int(np.argmax(a / (1 - a) < 1))


@pytest.mark.parametrize("fn, kwargs, match", [
    (lambda a: good_first_t(a) + 1, {}, "paper's step"),
    (lambda a: good_first_t(a) - 1, {}, "still ≥ 1"),
    (lambda a: good_first_t(1 - a), {}, "invert the ratio"),
    (lambda a: 3, {"T": 10}, "never drops below 1"),
    (lambda a: None, {}, "does drop below 1"),
])
def test_first_t_snr_mistakes(capsys, fn, kwargs, match):
    fails(capsys, checks.check_first_t_snr_below_one, fn, match=match, **kwargs)


def test_snr_answers(capsys):
    run(checks.check_snr_answers, 259, 496)
    fails(capsys, checks.check_snr_answers, 260, 496, match="paper's step")
    fails(capsys, checks.check_snr_answers, 259, 400, match="t_cosine")


# ------------------------------------------------------------------ Monte-Carlo
# Deliberately broken "earlier exercises": the Monte-Carlo check must grade with the package's versions.
def forward_step(x_prev, t, betas, noise):
    raise NotImplementedError()


def alphas_cumprod(betas):
    raise NotImplementedError()


def q_sample(x0, t, a_bar, noise):
    raise NotImplementedError()


def make_mc(steps=lambda t: t + 1, reduce=lambda x: x.var(dim=0), use_generator=True, keys=checks.MC_KEYS):
    def monte_carlo_moments(x0, t, betas, n_samples, generator=None):
        gen = generator if use_generator else None
        shape = (n_samples, *x0.shape)
        x = x0.expand(shape)
        for s in range(steps(t)):
            x = forward_step(x, s, betas, torch.randn(shape, generator=gen))
        a_bar = alphas_cumprod(betas).float()
        closed = q_sample(x0.expand(shape), torch.full((n_samples,), t), a_bar, torch.randn(shape, generator=gen))
        vals = (x.mean(0), reduce(x), closed.mean(0), reduce(closed))
        return dict(zip(keys, vals))
    return monte_carlo_moments


def test_monte_carlo_right_and_restores_globals(capsys):
    run(checks.check_monte_carlo, make_mc())
    run(checks.check_monte_carlo, make_mc(), T=10, t=0, shape=(1, 3, 3), seed=71)
    run(checks.check_monte_carlo, make_mc(), T=100, t=57, shape=(1, 2, 2), n_samples=3000, seed=73)
    assert "graded with the package's" in capsys.readouterr().out
    with pytest.raises(NotImplementedError):   # the module's own (broken) functions are back
        forward_step(None, 0, None, None)
    with pytest.raises(AssertionError, match="NotImplementedError"):
        checks.check_monte_carlo(make_mc(), use_reference_helpers=False)


@pytest.mark.parametrize("mc, kwargs, match", [
    (make_mc(steps=lambda t: t), {}, "one too few"),
    (make_mc(steps=lambda t: t), {"t": 0}, "one too few"),
    (make_mc(steps=lambda t: t + 2), {}, "one too many"),
    (make_mc(reduce=lambda x: x.std(dim=0)), {}, "standard deviation where the variance belongs"),
    (make_mc(use_generator=False), {}, "generator"),
    (make_mc(reduce=lambda x: x.var()), {}, "shape of x0"),
    (make_mc(keys=("mean", "var", "mean2", "var2")), {}, "keys"),
])
def test_monte_carlo_mistakes(capsys, mc, kwargs, match):
    fails(capsys, checks.check_monte_carlo, mc, match=match, **kwargs)
