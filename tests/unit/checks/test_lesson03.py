"""course_utils.checks, lesson 03 (Bayes posterior): each check passes the right function, names each
classic mistake, writes only to stdout, returns None, and its three steps (make → run → judge) work apart,
with inputs and outputs carried through torch.save / torch.load(weights_only=True) as a grader carries them
(the sympy exercise's expressions travel as sympy.srepr strings)."""
from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from course_utils import checks
from course_utils.checks import lesson03
from course_utils.checks._sympy import parse_srepr
from course_utils.diffusion import extract

from check_support import fails, run, separates


# ------------------------------------------------------------------ lesson 03: the posterior
def _abar_prev(betas):
    a_bar = torch.cumprod(1 - betas, 0)
    return a_bar, torch.cat([torch.ones(1, dtype=betas.dtype), a_bar[:-1]])


def good_posterior_variance(betas):
    a_bar, prev = _abar_prev(betas)
    return (1 - prev) / (1 - a_bar) * betas


def good_posterior_mean_coefs(betas):
    a_bar, prev = _abar_prev(betas)
    return prev.sqrt() * betas / (1 - a_bar), (1 - betas).sqrt() * (1 - prev) / (1 - a_bar)


def test_posterior_variance(capsys):
    for T, kind in ((1, "linear"), (10, "linear"), (1000, "cosine")):
        run(checks.check_posterior_variance, good_posterior_variance, T=T, schedule=kind)
    fails(capsys, checks.check_posterior_variance, lambda b: b.clone(), match="β_t where β̃_t belongs")
    fails(capsys, checks.check_posterior_variance, lambda b: good_posterior_variance(b).sqrt(),
          match="standard deviation where the variance belongs")
    a_t_for_prev = lambda b: (1 - torch.cumprod(1 - b, 0)) / (1 - torch.cumprod(1 - b, 0)) * b  # noqa: E731
    fails(capsys, checks.check_posterior_variance, a_t_for_prev, match="ᾱ_t where ᾱ_{t-1} belongs")
    wrap = lambda b: (1 - torch.cumprod(1 - b, 0).roll(1)) / (1 - torch.cumprod(1 - b, 0)) * b  # noqa: E731
    out = fails(capsys, checks.check_posterior_variance, wrap, match="t = 0")
    assert "ᾱ_{-1} = 1" in out


def test_posterior_mean_coefs(capsys):
    run(checks.check_posterior_mean_coefs, good_posterior_mean_coefs)
    run(checks.check_posterior_mean_coefs, good_posterior_mean_coefs, T=1000, schedule="cosine")
    fails(capsys, checks.check_posterior_mean_coefs, lambda b: good_posterior_mean_coefs(b)[::-1], match="swapped")

    def abar_t(b):
        a_bar, _ = _abar_prev(b)
        return a_bar.sqrt() * b / (1 - a_bar), good_posterior_mean_coefs(b)[1]
    fails(capsys, checks.check_posterior_mean_coefs, abar_t, match="ᾱ_t where ᾱ_{t-1} belongs")

    def wrap(b):
        a_bar = torch.cumprod(1 - b, 0)
        prev = a_bar.roll(1)
        return prev.sqrt() * b / (1 - a_bar), (1 - b).sqrt() * (1 - prev) / (1 - a_bar)
    fails(capsys, checks.check_posterior_mean_coefs, wrap, match="t = 0")


def good_q_posterior(x0, xt, t, betas):
    c1, c2 = good_posterior_mean_coefs(betas)
    mean = extract(c1, t, xt.shape) * x0 + extract(c2, t, xt.shape) * xt
    return mean.float(), extract(good_posterior_variance(betas), t, xt.shape).float()


def test_q_posterior(capsys):
    run(checks.check_q_posterior, good_q_posterior, use_reference_helpers=False)
    run(checks.check_q_posterior, good_q_posterior, T=1000, schedule="cosine", shape=(3, 5), t=[0, 999, 4])
    fails(capsys, checks.check_q_posterior,
          lambda x0, xt, t, b: (good_q_posterior(x0, xt, t, b)[0], extract(b, t, xt.shape)),
          match="β_t where β̃_t belongs")
    fails(capsys, checks.check_q_posterior,
          lambda x0, xt, t, b: (good_q_posterior(x0, xt, t, b)[0], good_q_posterior(x0, xt, t, b)[1].sqrt()),
          match="standard deviation where the variance belongs")


def test_q_posterior_is_graded_with_the_package_helpers(capsys):
    """A learner's q_posterior built on a broken posterior_variance still gets its points."""
    ns = {"torch": torch, "extract": extract, "posterior_variance": lambda b: b,
          "posterior_mean_coefs": good_posterior_mean_coefs}
    exec("def q_posterior(x0, xt, t, betas):\n"
         "    c1, c2 = posterior_mean_coefs(betas)\n"
         "    return (extract(c1, t, xt.shape) * x0 + extract(c2, t, xt.shape) * xt,\n"
         "            extract(posterior_variance(betas), t, xt.shape))\n", ns)
    run(checks.check_q_posterior, ns["q_posterior"])
    assert ns["posterior_variance"](torch.ones(1)) == 1            # the learner's own is restored
    fails(capsys, checks.check_q_posterior, ns["q_posterior"], use_reference_helpers=False, match="β_t")


def test_only_the_helpers_the_learner_defined_are_bound():
    ns = {"torch": torch, "extract": extract, "seen": []}
    exec("def f(xt, t, eps, betas):\n"
         "    seen.append(sorted(k for k in ('posterior_variance', 'posterior_mean_coefs', 'predict_x0_from_eps')\n"
         "                       if k in globals()))\n"
         "    return xt\n", ns)
    with lesson03._bound_to_package(ns["f"], torch.linspace(1e-4, 0.02, 10, dtype=torch.float64)):
        ns["f"](None, None, None, None)
    assert ns["seen"] == [[]] and "posterior_variance" not in ns


def test_predict_x0_and_mean_from_eps(capsys):
    def x0_from_eps(xt, t, eps, a_bar):
        a = extract(a_bar, t, xt.shape)
        return ((xt - (1 - a).sqrt() * eps) / a.sqrt()).float()

    def mean_from_eps(xt, t, eps, betas):
        b = extract(betas, t, xt.shape)
        a = extract(torch.cumprod(1 - betas, 0), t, xt.shape)
        return ((xt - b / (1 - a).sqrt() * eps) / (1 - b).sqrt()).float()

    run(checks.check_predict_x0_from_eps, x0_from_eps, T=1000, shape=(3, 7), t=[0, 999, 5])
    run(checks.check_posterior_mean_from_eps, mean_from_eps, T=1000, schedule="cosine")
    fails(capsys, checks.check_predict_x0_from_eps,
          lambda xt, t, eps, a: x0_from_eps(xt, t, eps, a) / extract(a, t, xt.shape).sqrt(),
          match="divided by ᾱ_t")
    fails(capsys, checks.check_posterior_mean_from_eps,
          lambda xt, t, eps, b: mean_from_eps(xt, t, eps, b) / extract(1 - b, t, xt.shape).sqrt(),
          match="1/α_t")


def kl(m1, v1, m2, v2):
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def test_gaussian_kl(capsys):
    run(checks.check_gaussian_kl, kl)
    run(checks.check_gaussian_kl, kl, shape=(2, 3, 4), dtype=torch.float32)
    fails(capsys, checks.check_gaussian_kl, lambda m1, v1, m2, v2: kl(m1, v1 ** 2, m2, v2 ** 2),
          match="variances as standard deviations")
    fails(capsys, checks.check_gaussian_kl, lambda m1, v1, m2, v2: kl(m2, v2, m1, v1), match="swapped")
    fails(capsys, checks.check_gaussian_kl, lambda m1, v1, m2, v2: 2 * kl(m1, v1, m2, v2), match="½")
    with pytest.raises(ValueError, match="floating torch dtype"):
        checks.check_gaussian_kl(kl, dtype=torch.int64)


def _Q(beta, abar_prev, xt, x0, x):
    alpha = 1 - beta
    abar = abar_prev * alpha
    return sp.expand((xt - sp.sqrt(alpha) * x) ** 2 / beta + (x - sp.sqrt(abar_prev) * x0) ** 2 / (1 - abar_prev)
                     - (xt - sp.sqrt(abar) * x0) ** 2 / (1 - abar))


def good(beta, abar_prev, xt, x0, x):
    Q = _Q(beta, abar_prev, xt, x0, x)
    A, B = Q.coeff(x, 2), -Q.coeff(x, 1) / 2
    return A, B / A


def test_complete_the_square(capsys):
    run(checks.check_complete_the_square, good)
    run(checks.check_complete_the_square, good, names=("b", "c", "y", "z", "w"))
    fails(capsys, checks.check_complete_the_square, lambda b, c, y, z, w: (1 / b, good(b, c, y, z, w)[1]),
          match="β where β̃ belongs")
    fails(capsys, checks.check_complete_the_square,
          lambda b, c, y, z, w: (sp.sqrt(good(b, c, y, z, w)[0]), good(b, c, y, z, w)[1]),
          match="standard deviation where the variance belongs")
    fails(capsys, checks.check_complete_the_square,
          lambda b, c, y, z, w: ((1 - b) / b + 1 / (1 - c * (1 - b)), good(b, c, y, z, w)[1]),
          match="ᾱ_t where ᾱ_{t-1} belongs")
    fails(capsys, checks.check_complete_the_square,
          lambda b, c, y, z, w: (good(b, c, y, z, w)[0], 2 * good(b, c, y, z, w)[1]), match="twice")


def test_complete_the_square_names_both_slips_at_once(capsys):
    """coeff(x, 1) / coeff(x, 2) is −2·μ̃: the ×2 slip and the sign slip together (each alone is named too)."""
    def ratio_of_coefficients(b, c, y, z, w):
        Q = _Q(b, c, y, z, w)
        return Q.coeff(w, 2), Q.coeff(w, 1) / Q.coeff(w, 2)

    out = fails(capsys, checks.check_complete_the_square, ratio_of_coefficients, match="−2·μ̃: two slips at once")
    assert "the factor 2 and the sign" in out and "coeff(x, 1) / coeff(x, 2) alone is −2·μ̃" in out
    out = fails(capsys, checks.check_complete_the_square,
                lambda b, c, y, z, w: (good(b, c, y, z, w)[0], -good(b, c, y, z, w)[1] / 2),
                match="−μ̃/2: two slips at once")
    assert "the factor 2" in out and "the sign" in out
    fails(capsys, checks.check_complete_the_square,
          lambda b, c, y, z, w: (good(b, c, y, z, w)[0], -good(b, c, y, z, w)[1]), match="wrong sign")


def test_complete_the_square_other_answers(capsys):
    fails(capsys, checks.check_complete_the_square, lambda b, c, y, z, w: 3, match="should return a pair")
    fails(capsys, checks.check_complete_the_square, lambda b, c, y, z, w: (good(b, c, y, z, w)[0], w),
          match="must not contain x")
    fails(capsys, checks.check_complete_the_square, lambda b, c, y, z, w: (good(b, c, y, z, w)[0], z + 1),
          match="does not simplify to μ̃_t")
    with pytest.raises(ValueError, match="five symbol names"):
        checks.check_complete_the_square(good, names=("b", "c"))
    with pytest.raises(ValueError, match=r"timesteps in \[0, T-1\]"):
        checks.check_complete_the_square(good, T=10, steps=(10,))


# ------------------------------------------------------------------ sympy through srepr
def test_srepr_round_trip_keeps_expressions_and_assumptions():
    beta, abar_prev, xt, x0, x = lesson03._symbols(("beta_t", "abar_prev", "x_t", "x_0", "x"))
    f = sp.Function("f")
    exprs = [*good(beta, abar_prev, xt, x0, x), *lesson03.reference_complete_the_square(beta, abar_prev, xt, x0, x),
             sp.Float(0.3) * beta - sp.Rational(-3, 7) * sp.pi + sp.I * sp.log(abar_prev) + sp.oo,
             sp.exp(-x0) + f(xt) + sp.Abs(xt) - 1, sp.Integer(-5), sp.sympify("1/b")]
    for e in exprs:
        back = parse_srepr(sp.srepr(e))
        assert back == e and back.free_symbols == e.free_symbols
    assert parse_srepr(sp.srepr(beta)).is_positive and parse_srepr(sp.srepr(x)).is_real


def test_judge_reports_unreadable_expressions(capsys):
    check = checks.check_complete_the_square
    inputs = check.make()
    outputs = check.run(inputs, good)
    outputs["srepr"]["value"] = ["__import__('os').getcwd()", "Integer(1)"]
    with pytest.raises(checks.CheckFailed, match="could not be read back from sympy.srepr"):
        check.judge(inputs, outputs)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ exercise 8: the ELBO's terms
def _elbo(x0, betas, a, b, s, variance_term=True, beta_for_tilde=False, two_pi=True, prior_sqrt=True):
    """The terms written out from Ho et al. 2020, eq. 5 (a learner's version, with switches for the slips)."""
    al = 1 - betas
    ab = torch.cumprod(al, 0)
    abp = torch.cat([torch.ones(1, dtype=ab.dtype), ab[:-1]])
    T = betas.shape[0]
    m_T = (ab[-1].sqrt() if prior_sqrt else ab[-1]) * x0
    L_T = 0.5 * (-torch.log(1 - ab[-1]) + (1 - ab[-1]) + m_T ** 2 - 1)
    cols = []
    for k in range(1, T):
        c1, c2 = abp[k].sqrt() * betas[k] / (1 - ab[k]), al[k].sqrt() * (1 - abp[k]) / (1 - ab[k])
        bt = betas[k] if beta_for_tilde else (1 - abp[k]) / (1 - ab[k]) * betas[k]
        mean_gap = c1 * x0 - b[k] + (c2 - a[k]) * ab[k].sqrt() * x0
        sq = mean_gap ** 2 + ((c2 - a[k]) ** 2 * (1 - ab[k]) if variance_term else 0)
        cols.append(0.5 * (torch.log(s[k] / bt) + (bt + sq) / s[k] - 1))
    resid = x0 - b[0] - a[0] * ab[0].sqrt() * x0
    L_0 = (0.5 * math.log(2 * math.pi) if two_pi else 0) + 0.5 * torch.log(s[0]) \
        + (resid ** 2 + a[0] ** 2 * (1 - ab[0])) / (2 * s[0])
    return L_T, torch.stack(cols, 1), L_0


def test_elbo_terms(capsys):
    from functools import partial
    run(checks.check_elbo_terms, _elbo)
    run(checks.check_elbo_terms, _elbo, T=1000, schedule="cosine", n=3, seed=4)
    fails(capsys, checks.check_elbo_terms, partial(_elbo, variance_term=False), match="spread of x_t")
    fails(capsys, checks.check_elbo_terms, partial(_elbo, beta_for_tilde=True), match="β_t where the posterior")
    fails(capsys, checks.check_elbo_terms, partial(_elbo, two_pi=False), match="missing ½·log\\(2π\\)")
    fails(capsys, checks.check_elbo_terms, partial(_elbo, prior_sqrt=False), match="square root belongs")
    fails(capsys, checks.check_elbo_terms, lambda *args: (_elbo(*args)[0], _elbo(*args)[1], -_elbo(*args)[2]),
          match="wrong sign")
    with_k0 = lambda *args: (_elbo(*args)[0], torch.cat([_elbo(*args)[1][:, :1], _elbo(*args)[1]], 1),  # noqa: E731
                             _elbo(*args)[2])
    fails(capsys, checks.check_elbo_terms, with_k0, match="T − 1 = 9 columns")
    fails(capsys, checks.check_elbo_terms, lambda *args: _elbo(*args)[:2], match="three tensors")
    with pytest.raises(ValueError, match="T must be an int ≥ 2"):
        checks.check_elbo_terms(_elbo, T=1)


# ------------------------------------------------------------------ the three steps, apart
SEPARATED = {
    "posterior_variance": ({}, good_posterior_variance, lambda b: b.clone(), "β_t where β̃_t belongs"),
    "posterior_mean_coefs": ({}, good_posterior_mean_coefs, lambda b: good_posterior_mean_coefs(b)[::-1], "swapped"),
    "q_posterior": ({"use_reference_helpers": False}, good_q_posterior,
                    lambda x0, xt, t, b: (good_q_posterior(x0, xt, t, b)[0], extract(b, t, xt.shape)),
                    "β_t where β̃_t belongs"),
    "predict_x0_from_eps": ({}, lesson03.reference_predict_x0_from_eps,
                            lambda xt, t, eps, a: lesson03.reference_predict_x0_from_eps(xt, t, eps, a)
                            / extract(a, t, xt.shape).sqrt(), "divided by ᾱ_t"),
    "posterior_mean_from_eps": ({}, lesson03.reference_posterior_mean_from_eps,
                                lambda xt, t, eps, b: lesson03.reference_posterior_mean_from_eps(xt, t, eps, b)
                                / extract(1 - b, t, xt.shape).sqrt(), "1/α_t"),
    "gaussian_kl": ({"dtype": torch.float32}, kl, lambda m1, v1, m2, v2: kl(m2, v2, m1, v1), "swapped"),
    "elbo_terms": ({"T": 20, "schedule": "cosine", "n": 3}, _elbo,
                   lambda *args: _elbo(*args, variance_term=False), "spread of x_t"),
    "complete_the_square": ({"names": ("b", "c", "y", "z", "w")}, good,
                            lambda b, c, y, z, w: (good(b, c, y, z, w)[0], -2 * good(b, c, y, z, w)[1]),
                            "two slips at once"),
}


def test_every_lesson03_check_is_separated():
    assert {f"check_{n}" for n in SEPARATED} == {n for n in checks.lesson03.__all__ if n.startswith("check_")}


@pytest.mark.parametrize("name", sorted(SEPARATED))
def test_lesson03_steps_work_apart(capsys, name):
    params, right, wrong, match = SEPARATED[name]
    check = checks.get_check(f"check_{name}")
    assert check is getattr(checks, f"check_{name}")
    # these two right answers are the package's own references, which the grader's block makes raise
    separates(capsys, check, params, right, wrong, match,
              block=name not in ("predict_x0_from_eps", "posterior_mean_from_eps"))


@pytest.mark.parametrize("name", sorted(SEPARATED))
def test_lesson03_reference_passes_and_inputs_hold_no_answer(capsys, name):
    check = checks.get_check(f"check_{name}")
    assert check.reference is not None
    run(check, check.reference)
    assert "✓" in capsys.readouterr().out
    inputs = check.make()
    assert not any(k in inputs for k in ("ref", "expected", "want", "answer"))
