"""course_utils.checks, lesson 02 (forward diffusion): each check passes the right function, names each
classic mistake, writes only to stdout, returns None, and its three steps (make → run → judge) work apart,
with the outputs carried through torch.save / torch.load(weights_only=True) as a grader carries them."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from course_utils import checks
from course_utils.checks import _harness as h
from course_utils.diffusion import extract
from course_utils.schedules import linear_betas as pkg_linear_betas, make_betas

from check_support import fails, resolve, run, separates


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
    # the exercise asks for a Python int: a 0-d integer tensor is named (it used to pass), a float is not an int
    out = fails(capsys, checks.check_first_t_snr_below_one, lambda a: torch.nonzero(a / (1 - a) < 1)[0, 0],
                match=r"returned a tensor \(tensor\(259\)\); return a Python int: int\(t\)\.")
    assert "✓" not in out
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


# The exercise's function is being renamed compute_alphas_cumprod in the notebook; the old name stays bound too.
def compute_alphas_cumprod(betas):
    raise NotImplementedError()


def make_mc_new_name():
    def monte_carlo_moments(x0, t, betas, n_samples, generator=None):
        shape = (n_samples, *x0.shape)
        x = x0.expand(shape)
        for s in range(t + 1):
            x = forward_step(x, s, betas, torch.randn(shape, generator=generator))
        a_bar = compute_alphas_cumprod(betas).float()
        closed = q_sample(x0.expand(shape), torch.full((n_samples,), t), a_bar,
                          torch.randn(shape, generator=generator))
        return {"chain_mean": x.mean(0), "chain_var": x.var(0), "closed_mean": closed.mean(0),
                "closed_var": closed.var(0)}
    return monte_carlo_moments


def test_monte_carlo_binds_both_names_of_alphas_cumprod(capsys):
    run(checks.check_monte_carlo, make_mc_new_name())
    run(checks.check_monte_carlo, make_mc())                  # the old name, as older notebooks use it
    assert capsys.readouterr().out.count("graded with the package's") == 2
    for broken in (compute_alphas_cumprod, alphas_cumprod, forward_step):   # restored afterwards
        with pytest.raises(NotImplementedError):
            broken(None) if broken is not forward_step else broken(None, 0, None, None)
    assert globals()["compute_alphas_cumprod"] is compute_alphas_cumprod
    fails(capsys, checks.check_monte_carlo, make_mc_new_name(), use_reference_helpers=False,
          match="NotImplementedError")


# ------------------------------------------------------------------ new diagnoses
@pytest.mark.parametrize("fn", [
    lambda x: x * 2 / 255 - 1,                  # x * 2 wraps in uint8 before the division
    lambda x: (x - 128) / 127.5,                # x - 128 wraps below 128
    lambda x: 2 * x / 255.0 - 1,
    lambda x: (x * 2 - 255).float() / 255,      # converted, but only after the uint8 arithmetic
])
def test_to_model_range_names_uint8_overflow(capsys, fn):
    out = fails(capsys, checks.check_to_model_range, fn, match="uint8 overflow")
    assert "Convert with .float() first" in out and "does not match the package" not in out
    fails(capsys, checks.check_to_model_range, fn, shape=(2, 5), seed=12, match="uint8 overflow")


def test_to_model_range_keeps_its_other_messages_next_to_overflow(capsys):
    # integer results are still named by their dtype, and a monotone mistake by its own message
    fails(capsys, checks.check_to_model_range, lambda x: x // 2, match=r"has dtype torch.uint8: convert with "
          r"\.float\(\) before scaling \(uint8 cannot hold negative numbers\)\.")
    fails(capsys, checks.check_to_model_range, lambda x: x * 2 - 255, match="convert with .float()")
    out = fails(capsys, checks.check_to_model_range, lambda x: 1 - x.float() / 127.5, match="flipped")
    assert "uint8 overflow" not in out
    out = fails(capsys, checks.check_to_model_range, lambda x: torch.rand(x.shape), match="does not match")
    assert "uint8 overflow" not in out


def _loop_q_sample(shift):
    """A python-int loop over the batch, indexing ᾱ at t + shift (raises IndexError past the end)."""
    def q_sample(x0, t, a_bar, noise):
        out = torch.empty_like(x0)
        for i in range(len(t)):
            a = a_bar[int(t[i]) + shift]
            out[i] = a.sqrt() * x0[i] + (1 - a).sqrt() * noise[i]
        return out
    return q_sample


def test_q_sample_off_by_one_when_the_indexing_raises(capsys):
    below = "off by one: t is 0-indexed, so use alphas_cumprod[t], not alphas_cumprod[t - 1]."
    above = "off by one: use alphas_cumprod[t], not alphas_cumprod[t + 1]."
    # extract(a, t - 1, …) gathers index -1 at t = 0: a RuntimeError "out of bounds"
    out = fails(capsys, checks.check_q_sample, lambda x, t, a, n: good_q_sample(x, t - 1, a, n), match="off by one")
    assert f"✗ q_sample: {below}\n" in out and "RuntimeError" in out and "index -1 is out of bounds" in out
    # a python-int loop with t - 1 wraps to index -1 and is named as before; with t + 1 it raises IndexError
    out = fails(capsys, checks.check_q_sample, _loop_q_sample(-1), match="off by one")
    assert f"✗ q_sample: {below}\n" in out
    out = fails(capsys, checks.check_q_sample, _loop_q_sample(+1), match="off by one")
    assert f"✗ q_sample: {above}\n" in out
    assert "IndexError" in out and "index 1000 is out of bounds" in out and "line " in out
    fails(capsys, checks.check_q_sample, _loop_q_sample(+1), T=50, shape=(4, 1, 4, 4), seed=52, match="t \\+ 1")


def test_q_sample_other_index_errors_get_the_harness_hint(capsys):
    # an IndexError that no off-by-one explains: value() reports it with the 0-indexing hint
    out = fails(capsys, checks.check_q_sample, _loop_q_sample(1000), match="raised IndexError")
    assert "Hint: timesteps are 0-indexed, t ∈ {0, …, T-1}" in out and "off by one:" not in out
    assert "of your cell" in out or ".py" in out        # the learner's own line is named


def test_as_index_wants_a_python_int(capsys):
    r = h.Report("x")
    assert h.as_index(r, 7, "t") == 7 and h.as_index(r, None, "t") is None
    for v in (torch.tensor(7), torch.tensor([7]), torch.tensor(7, dtype=torch.int32)):
        with pytest.raises(checks.CheckFailed, match=r"t returned a tensor \(.*\); return a Python int: int\(t\)"):
            h.as_index(r, v, "t")
    for v in (7.0, True, torch.tensor(7.0)):
        with pytest.raises(checks.CheckFailed, match="should be an int timestep"):
            h.as_index(r, v, "t")
    capsys.readouterr()
    fails(capsys, checks.check_snr_answers, torch.tensor(259), 496, match="t_linear returned a tensor")
    run(checks.check_snr_answers, np.int64(259), 496)           # a numpy int is a plain int after the run step


def test_data_range_takes_its_name_by_position_or_keyword(capsys):
    x = torch.rand(2, 1, 4, 4) * 2 - 1
    run(checks.check_data_range, x, "x_show")
    run(checks.check_data_range, x, name="x_kw")
    out = capsys.readouterr().out
    assert "✓ x_show is in [-1, 1]" in out and "✓ x_kw is in [-1, 1]" in out
    out = fails(capsys, checks.check_data_range, (x + 1) / 2, "x_show", match=r"x_show: data looks like \[0, 1\]")
    assert out.startswith("✗ x_show: ")


@pytest.mark.parametrize("check, kwargs, match", [
    (checks.check_forward_step, {"T": 10, "t": 10}, r"t must be an int timestep in \[0, T-1\]"),
    (checks.check_forward_step, {"t": -1}, "t must be an int timestep"),
    (checks.check_forward_step, {"dtype": torch.int64}, "dtype must be"),
    (checks.check_monte_carlo, {"n_samples": 1}, "n_samples"),
    (checks.check_monte_carlo, {"T": 10, "t": 10}, "t must be an int timestep"),
    (checks.check_linear_betas, {"T": 0}, "positive int"),
    (checks.check_alphas_cumprod, {"schedule": "quadratic"}, "unknown schedule"),
])
def test_bad_check_parameters_raise_value_error(check, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check(lambda *a, **k: None, **kwargs)


# ------------------------------------------------------------------ the three steps, apart
# name → (params, subject of a right answer, subject of a wrong one, the wrong one's message)
SEPARATED = {
    "linear_betas": ({"T": 10}, (good_linear_betas,),
                     (lambda T: torch.linspace(0.02, 1e-4, T, dtype=torch.float64),), "backwards"),
    "data_range": ({"name": "x0"}, (torch.rand(2, 1, 4, 4) * 2 - 1,), (torch.rand(2, 1, 4, 4),),
                   r"data looks like \[0, 1\]"),
    "to_model_range": ({}, (lambda x: x.float() / 127.5 - 1,), (lambda x: x * 2 / 255 - 1,), "uint8 overflow"),
    "forward_step": ({}, (good_forward_step,), (lambda x, t, b, n: torch.sqrt(1 - b[t]) * x,),
                     "noise term is missing"),
    "alphas_cumprod": ({"T": 10}, (lambda b: torch.cumprod(1 - b, 0),), (lambda b: torch.cumsum(1 - b, 0),),
                       "not a sum"),
    "q_sample": ({}, (good_q_sample,), (lambda x, t, a, n: good_q_sample(x, t - 1, a, n),),
                 "alphas_cumprod\\[t - 1\\]"),
    "first_t_snr_below_one": ({}, (good_first_t,), (lambda a: good_first_t(a) + 1,), "paper's step"),
    "snr_answers": ({}, (259, 496), (259, torch.tensor(496)), "returned a tensor"),
    "monte_carlo": ({}, (make_mc(),), (make_mc(reduce=lambda x: x.std(dim=0)),), "standard deviation"),
}


def test_every_lesson02_check_is_separated():
    assert {f"check_{n}" for n in SEPARATED} == {n for n in checks.lesson02.__all__ if n.startswith("check_")}


@pytest.mark.parametrize("name", sorted(SEPARATED))
def test_lesson02_steps_work_apart(capsys, name):
    params, right, wrong, match = SEPARATED[name]            # right, wrong: tuples of run's subjects
    check = checks.get_check(f"check_{name}")
    assert check is getattr(checks, f"check_{name}")
    separates(capsys, check, params, right, wrong, match, ticks=2 if name == "snr_answers" else 1)


@pytest.mark.parametrize("name", sorted(n for n in SEPARATED if n not in ("data_range", "snr_answers")))
def test_lesson02_reference_passes_and_inputs_hold_no_answer(capsys, name):
    check = checks.get_check(f"check_{name}")
    assert check.reference is not None
    run(check, check.reference)
    assert "✓" in capsys.readouterr().out
    inputs = check.make()
    assert not any(k in inputs for k in ("ref", "expected", "want", "answer"))


def test_blocked_names_exist():
    """Each dotted name a check asks the grader to block is a real package function (a typo blocks nothing)."""
    seen = 0
    for name in SEPARATED:
        for dotted in checks.get_check(f"check_{name}").blocks:
            assert callable(resolve(dotted)), dotted
            seen += 1
    assert seen >= 4
