"""Checks for lesson 03 (Bayes posterior): q(x_{t-1} | x_t, x_0), its ε form, and the KL of the ELBO.

Each exercise's check is three steps (see :mod:`course_utils.checks._harness`): ``make_<name>`` builds
seeded inputs, ``run_<name>`` calls the learner's function on them, ``judge_<name>`` compares with the
package and names the classic mistake; ``check_<name>`` runs all three.

Two exercises build on earlier ones (``q_posterior`` may call ``posterior_variance`` …): their run step
binds the package's versions into the learner's namespace while it runs (:func:`_helpers` with
:func:`~course_utils.checks._harness.bind_into`), so one slip does not cost points twice.

The sympy exercise's run step returns the learner's expressions as ``sympy.srepr`` strings (outputs are
plain data); the judge rebuilds them with :func:`course_utils.checks._sympy.parse_srepr`, which reads only sympy
constructors, never evaluates the string (the outputs come from where the learner's code ran).
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch

from ..diffusion import GaussianDiffusion, extract, gaussian_kl
from ..elbo import elbo_parts_1d, elbo_terms_1d, log_likelihood_1d, optimal_reverse_1d
from ..schedules import linear_betas, make_betas
from ..validation import is_int
from . import _harness as h
from ._sympy import parse_srepr

__all__ = ["check_posterior_variance", "check_posterior_mean_coefs", "check_q_posterior",
           "check_predict_x0_from_eps", "check_posterior_mean_from_eps", "check_gaussian_kl",
           "check_complete_the_square", "check_elbo_terms"]


# ----------------------------------------------------------------------------------------------
# References: the package's answers, under the exercises' signatures
# ----------------------------------------------------------------------------------------------
def reference_posterior_variance(betas: torch.Tensor) -> torch.Tensor:
    """β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t (eq. 7), (T,): :attr:`GaussianDiffusion.posterior_variance`."""
    return GaussianDiffusion(betas).posterior_variance.double()


def reference_posterior_mean_coefs(betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(coef1 × x0, coef2 × x_t) of μ̃_t (eq. 7): ``GaussianDiffusion.posterior_mean_coef1/2``."""
    d = GaussianDiffusion(betas)
    return d.posterior_mean_coef1.double(), d.posterior_mean_coef2.double()


def reference_q_posterior(x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
                          betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, …) and variance (B, 1, …, 1) of q(x_{t-1} | x_t, x_0): :meth:`GaussianDiffusion.q_posterior`."""
    return GaussianDiffusion(betas).to(xt.device).q_posterior(x0, xt, t)


def reference_predict_x0_from_eps(xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                                  alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t (eq. 4 inverted), t 0-indexed (B,)."""
    a = extract(alphas_cumprod, t, xt.shape)
    return (xt - (1 - a).sqrt() * eps) / a.sqrt()


def reference_posterior_mean_from_eps(xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                                      betas: torch.Tensor) -> torch.Tensor:
    """μ̃ = 1/√α_t · (x_t − β_t / √(1 − ᾱ_t) · ε) (eq. 11): the mean of :meth:`GaussianDiffusion.p_mean_variance`."""
    return GaussianDiffusion(betas).to(xt.device).p_mean_variance(eps, xt, t, clip_x0=False)[0]


def reference_gaussian_kl(mean1, var1, mean2, var2) -> torch.Tensor:
    """KL(N(mean1, var1) ‖ N(mean2, var2)) element-wise: :func:`course_utils.diffusion.gaussian_kl`."""
    return gaussian_kl(mean1, var1, mean2, var2)


def reference_complete_the_square(beta, abar_prev, xt, x0, x):
    """(precision 1/β̃_t, mean μ̃_t) of q(x_{t-1} | x_t, x_0), read off the exponent with sympy (eqs. 6–7)."""
    import sympy as sp

    alpha = 1 - beta
    abar = abar_prev * alpha
    Q = sp.expand((xt - sp.sqrt(alpha) * x) ** 2 / beta + (x - sp.sqrt(abar_prev) * x0) ** 2 / (1 - abar_prev)
                  - (xt - sp.sqrt(abar) * x0) ** 2 / (1 - abar))
    A = Q.coeff(x, 2)                      # Q = A·x² − 2·B·x + C
    B = -Q.coeff(x, 1) / 2
    return sp.simplify(A), sp.simplify(B / A)


# ----------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------
def _tables64(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Float64 per-step constants, only to *name* a wrong answer (the right one comes from the package)."""
    b = betas.double()
    a = 1 - b
    ab = torch.cumprod(a, 0)
    return {"b": b, "a": a, "ab": ab, "ab_prev": torch.cat([torch.ones(1, dtype=b.dtype), ab[:-1]])}


def _helpers(fn: Callable, betas: torch.Tensor) -> dict[str, Callable]:
    """The package's versions of the lesson's earlier functions, for those the learner defined in fn's
    namespace (``posterior_variance``, ``posterior_mean_coefs``, ``predict_x0_from_eps``)."""
    d = GaussianDiffusion(betas)
    replacements = {
        "posterior_variance": lambda b: GaussianDiffusion(b).posterior_variance.double(),
        "posterior_mean_coefs": lambda b: (GaussianDiffusion(b).posterior_mean_coef1.double(),
                                           GaussianDiffusion(b).posterior_mean_coef2.double()),
        "predict_x0_from_eps": lambda xt, t, eps, a_bar: d.to(xt.device).predict_x0_from_eps(xt, t, eps),
    }
    g = getattr(fn, "__globals__", None)
    return {k: v for k, v in replacements.items() if isinstance(g, dict) and k in g}


def _bound_to_package(fn: Callable, betas: torch.Tensor, use: bool = True):
    """While fn is graded, bind the lesson's earlier functions in its globals to the package's (only those
    the learner defined); a no-op when ``use`` is false."""
    return h.bind_into(fn, _helpers(fn, betas)) if use else contextlib.nullcontext()


_T0_HINT = ("at t = 0 (the paper's step 1) there is no earlier step: ᾱ_{-1} = 1 by definition. Build "
            "ᾱ_{t-1} as torch.cat([torch.ones(1), alphas_cumprod[:-1]]); alphas_cumprod[t - 1] wraps round "
            "to the last entry at t = 0.")


def _schedule(T: int, schedule: str) -> dict:
    return {"T": int(T), "schedule": schedule, "betas": make_betas(schedule, T)}


def _batch_t(T: int, B: int, seed: int, t) -> torch.Tensor:
    if t is None:
        tt = torch.randint(0, T, (B,), generator=h.gen(seed + 3))
        tt[0] = 0                                                   # always probe the t = 0 edge
        return tt
    return torch.as_tensor(t, dtype=torch.long)


# ----------------------------------------------------------------------------------------------
# Exercise: posterior_variance  β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t  (eq. 7)
# ----------------------------------------------------------------------------------------------
def make_posterior_variance(T: int = 10, schedule: str = "linear") -> dict:
    return _schedule(T, schedule)


def run_posterior_variance(inputs: dict, fn) -> dict:
    return {"out": h.call(fn, inputs["betas"].clone())}


def judge_posterior_variance(inputs: dict, outputs: dict) -> None:
    r = h.Report("posterior_variance")
    T, schedule, betas = inputs["T"], inputs["schedule"], inputs["betas"]
    shown = f"posterior_variance(betas ({schedule}, T={T}))"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    h.check_shape_dtype(r, out, (T,), None, shown)
    ref = GaussianDiffusion(betas).posterior_variance.double()
    k = _tables64(betas)
    wrap = k["b"] * (1 - k["ab"].roll(1)) / (1 - k["ab"])            # ᾱ_{t-1} = alphas_cumprod[t-1]
    zero_prev = torch.cat([torch.zeros(1, dtype=k["b"].dtype), k["ab"][:-1]])
    mistakes = {
        "you returned β_t where β̃_t belongs (or used ᾱ_t where ᾱ_{t-1} belongs, which gives the same "
        "numbers): β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t, with ᾱ_{t-1} the product up to the step "
        "*before* t.": k["b"],
        "you used the standard deviation where the variance belongs: return β̃_t itself, not √β̃_t.":
            ref.sqrt(),
        "the fraction is upside down: β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t, which is smaller than β_t.":
            k["b"] * (1 - k["ab"]) / (1 - k["ab_prev"]).clamp(min=1e-300) if T > 1 else None,
        f"wrong value at t = 0: {_T0_HINT}": wrap if T > 1 else None,
        f"wrong value at t = 0 (you set ᾱ_{{-1}} = 0, which makes β̃_0 ≈ 1): {_T0_HINT}":
            k["b"] * (1 - zero_prev) / (1 - k["ab"]),
    }
    if T > 1 and h.close(out[1:], ref[1:], 1e-5, 1e-9) and not h.close(out[:1], ref[:1], 1e-5, 1e-9):
        r.fail(f"every step is right except t = 0, where β̃_0 should be 0 (got {float(out[0]):.4g}): {_T0_HINT}")
    h.diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-9, what=shown)
    r.ok(f"{shown}: β̃_0 = {float(out[0]):.3g} (x_0 is known exactly), β̃_{T - 1} = {float(out[-1]):.4g} "
         f"< β_{T - 1} = {float(betas[-1]):.4g}; matches GaussianDiffusion.posterior_variance")


check_posterior_variance = h.register(h.Check(
    "posterior_variance", make_posterior_variance, run_posterior_variance, judge_posterior_variance,
    reference=reference_posterior_variance,
    doc="Check ``fn(betas) -> (T,)`` β̃ against :attr:`GaussianDiffusion.posterior_variance`."))


# ----------------------------------------------------------------------------------------------
# Exercise: posterior_mean_coefs  (the two coefficients of μ̃_t, eq. 7)
# ----------------------------------------------------------------------------------------------
def make_posterior_mean_coefs(T: int = 10, schedule: str = "linear") -> dict:
    return _schedule(T, schedule)


def run_posterior_mean_coefs(inputs: dict, fn) -> dict:
    return {"out": h.call(fn, inputs["betas"].clone())}


def judge_posterior_mean_coefs(inputs: dict, outputs: dict) -> None:
    r = h.Report("posterior_mean_coefs")
    T, schedule, betas = inputs["T"], inputs["schedule"], inputs["betas"]
    shown = f"posterior_mean_coefs(betas ({schedule}, T={T}))"
    out = h.value(r, outputs["out"])
    c1, c2 = h.as_tensors(r, out, (f"{shown}[0]", f"{shown}[1]"),
                          f"{shown} should return a pair (coef1, coef2): coef1 multiplies x0, coef2 multiplies x_t.")
    for i, c in enumerate((c1, c2)):
        h.check_shape_dtype(r, c, (T,), None, f"{shown}[{i}]")
    d = GaussianDiffusion(betas)
    ref1, ref2 = d.posterior_mean_coef1.double(), d.posterior_mean_coef2.double()
    if h.close(c1, ref2, 1e-5, 1e-9) and h.close(c2, ref1, 1e-5, 1e-9):
        r.fail("the two coefficients are swapped: coef1 = √ᾱ_{t-1}·β_t / (1 − ᾱ_t) multiplies x0, "
               "coef2 = √α_t·(1 − ᾱ_{t-1}) / (1 − ᾱ_t) multiplies x_t.")
    k = _tables64(betas)
    wrap_prev = k["ab"].roll(1)
    mistakes1 = {
        "coef1 uses ᾱ_t where ᾱ_{t-1} belongs: coef1 = √ᾱ_{t-1}·β_t / (1 − ᾱ_t).":
            k["ab"].sqrt() * k["b"] / (1 - k["ab"]),
        "coef1 is missing a square root: coef1 = √ᾱ_{t-1}·β_t / (1 − ᾱ_t) (a mean scales with a standard "
        "deviation-like √ᾱ, not with the variance-like ᾱ).": k["ab_prev"] * k["b"] / (1 - k["ab"]),
        f"coef1 is wrong at t = 0, where it should be 1 (μ̃_0 = x0): {_T0_HINT}":
            wrap_prev.sqrt() * k["b"] / (1 - k["ab"]) if T > 1 else None,
    }
    mistakes2 = {
        "coef2 uses ᾱ_t where ᾱ_{t-1} belongs: coef2 = √α_t·(1 − ᾱ_{t-1}) / (1 − ᾱ_t).":
            k["a"].sqrt() * (1 - k["ab"]) / (1 - k["ab"]),
        "coef2 is missing the square root of α_t: coef2 = √α_t·(1 − ᾱ_{t-1}) / (1 − ᾱ_t).":
            k["a"] * (1 - k["ab_prev"]) / (1 - k["ab"]),
        f"coef2 is wrong at t = 0, where it should be 0: {_T0_HINT}":
            k["a"].sqrt() * (1 - wrap_prev) / (1 - k["ab"]) if T > 1 else None,
    }
    h.diagnose(r, c1, ref1, mistakes1, rtol=1e-5, atol=1e-8, what="coef1")
    h.diagnose(r, c2, ref2, mistakes2, rtol=1e-5, atol=1e-8, what="coef2")
    r.ok(f"{shown}: coef1 (× x0) and coef2 (× x_t) match GaussianDiffusion.posterior_mean_coef1/2; "
         f"at t = 0 they are {float(c1[0]):.3g} and {float(c2[0]):.3g} (μ̃_0 = x0)")


check_posterior_mean_coefs = h.register(h.Check(
    "posterior_mean_coefs", make_posterior_mean_coefs, run_posterior_mean_coefs, judge_posterior_mean_coefs,
    reference=reference_posterior_mean_coefs,
    doc="Check ``fn(betas) -> (coef1, coef2)`` against ``posterior_mean_coef1/2`` (coef1 multiplies x0)."))


# ----------------------------------------------------------------------------------------------
# Exercise: q_posterior  (mean μ̃_t(x_t, x_0) and variance β̃_t, eqs. 6–7)
# ----------------------------------------------------------------------------------------------
def make_q_posterior(T: int = 10, schedule: str = "linear", shape=(4, 1, 8, 8), seed: int = 0, t=None,
                     use_reference_helpers: bool = True) -> dict:
    shape = tuple(shape)
    return {**_schedule(T, schedule), "shape": shape, "use_reference_helpers": bool(use_reference_helpers),
            "x0": h.images(shape, seed), "xt": torch.randn(shape, generator=h.gen(seed + 1)),
            "t": _batch_t(T, shape[0], seed, t)}


def run_q_posterior(inputs: dict, fn) -> dict:
    with _bound_to_package(fn, inputs["betas"], inputs["use_reference_helpers"]):
        out = h.call(fn, inputs["x0"].clone(), inputs["xt"].clone(), inputs["t"].clone(), inputs["betas"].clone())
    return {"out": out}


def judge_q_posterior(inputs: dict, outputs: dict) -> None:
    r = h.Report("q_posterior")
    T, schedule, betas, shape = inputs["T"], inputs["schedule"], inputs["betas"], inputs["shape"]
    x0, xt, tt = inputs["x0"], inputs["xt"], inputs["t"]
    shown = f"q_posterior(x0 {h.fmt_shape(shape)}, xt, t={tt.tolist()}, betas ({schedule}, T={T}))"
    out = h.value(r, outputs["out"])
    mean, var = h.as_tensors(r, out, ("mean", "variance"), f"{shown} should return a pair (mean, variance).")
    h.check_shape_dtype(r, mean, shape, None, "mean", " It has the shape of x_t.")
    d = GaussianDiffusion(betas)
    ref_mean, ref_var = d.q_posterior(x0, xt, tt)
    try:
        var_full = var.detach().cpu().double().expand(shape)
    except RuntimeError:
        r.fail(f"the variance should have shape {h.fmt_shape((shape[0],) + (1,) * (len(shape) - 1))} "
               f"(one β̃_t per image; extract(a, t, x.shape) gives it) or {h.fmt_shape(shape)}; "
               f"got {h.fmt_shape(var.shape)}.")
    ref_full = ref_var.double().expand(shape)
    k = _tables64(betas)
    g = lambda a: a[tt].reshape(-1, *((1,) * (len(shape) - 1))).expand(shape)   # noqa: E731
    var_mistakes = {
        "the variance is β_t where β̃_t belongs: q(x_{t-1} | x_t, x_0) has the smaller variance "
        "β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t.": g(k["b"]),
        "you returned the standard deviation where the variance belongs: return β̃_t, not √β̃_t.":
            ref_full.sqrt(),
    }
    h.diagnose(r, var_full, ref_full, var_mistakes, rtol=1e-5, atol=1e-8, what="variance")
    c1, c2 = d.posterior_mean_coef1.double(), d.posterior_mean_coef2.double()
    mean_mistakes = {
        "the two coefficients are swapped: coef1 multiplies x0 and coef2 multiplies x_t.":
            g(c2) * x0 + g(c1) * xt,
        "the mean uses ᾱ_t where ᾱ_{t-1} belongs.":
            g(k["ab"].sqrt() * k["b"] / (1 - k["ab"])) * x0 + g(k["a"].sqrt()) * xt,
        f"the mean is wrong at t = 0, where μ̃_0 = x0: {_T0_HINT}":
            g(k["ab"].roll(1).sqrt() * k["b"] / (1 - k["ab"])) * x0
            + g(k["a"].sqrt() * (1 - k["ab"].roll(1)) / (1 - k["ab"])) * xt if T > 1 else None,
    }
    h.diagnose(r, mean, ref_mean, mean_mistakes, rtol=1e-5, atol=1e-5, what="mean")
    note = " (graded with the package's posterior_variance / posterior_mean_coefs)" \
        if inputs["use_reference_helpers"] else ""
    r.ok(f"{shown}: μ̃_t and β̃_t match GaussianDiffusion.q_posterior, t = 0 included{note}")


check_q_posterior = h.register(h.Check(
    "q_posterior", make_q_posterior, run_q_posterior, judge_q_posterior, reference=reference_q_posterior,
    doc="Check ``fn(x0, xt, t, betas) -> (mean, variance)`` against :meth:`GaussianDiffusion.q_posterior`.\n\n"
        "The variance may have shape (B, 1, …, 1) (as the package returns it) or the full shape of x."))


# ----------------------------------------------------------------------------------------------
# Exercise: predict_x0_from_eps  (eq. 4 inverted)
# ----------------------------------------------------------------------------------------------
def make_predict_x0_from_eps(T: int = 10, schedule: str = "linear", shape=(4, 1, 8, 8), seed: int = 0,
                             t=None) -> dict:
    shape = tuple(shape)
    s = _schedule(T, schedule)
    return {**s, "shape": shape, "alphas_cumprod": GaussianDiffusion(s["betas"]).alphas_cumprod.double(),
            "xt": torch.randn(shape, generator=h.gen(seed)), "eps": torch.randn(shape, generator=h.gen(seed + 1)),
            "t": _batch_t(T, shape[0], seed, t)}


def run_predict_x0_from_eps(inputs: dict, fn) -> dict:
    return {"out": h.call(fn, inputs["xt"].clone(), inputs["t"].clone(), inputs["eps"].clone(),
                          inputs["alphas_cumprod"].clone())}


def judge_predict_x0_from_eps(inputs: dict, outputs: dict) -> None:
    r = h.Report("predict_x0_from_eps")
    T, betas, shape, xt, eps, tt = (inputs[k] for k in ("T", "betas", "shape", "xt", "eps", "t"))
    d = GaussianDiffusion(betas)
    shown = f"predict_x0_from_eps(xt {h.fmt_shape(shape)}, t={tt.tolist()}, eps, alphas_cumprod (T={T}))"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    h.check_shape_dtype(r, out, shape, None, shown)
    ref = d.predict_x0_from_eps(xt, tt, eps)
    ab = _tables64(betas)["ab"][tt].reshape(-1, *((1,) * (len(shape) - 1)))
    mistakes = {
        "the noise is scaled by 1 − ᾱ_t, a variance; x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t.":
            (xt - (1 - ab) * eps) / ab.sqrt(),
        "you divided by ᾱ_t; divide by its square root: x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t.":
            (xt - (1 - ab).sqrt() * eps) / ab,
        "the noise should be subtracted: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε, so x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t.":
            (xt + (1 - ab).sqrt() * eps) / ab.sqrt(),
        "you multiplied by √ᾱ_t; invert it: x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t.":
            (xt - (1 - ab).sqrt() * eps) * ab.sqrt(),
    }
    h.diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-5, what=shown)
    r.ok(f"{shown}: matches GaussianDiffusion.predict_x0_from_eps")


check_predict_x0_from_eps = h.register(h.Check(
    "predict_x0_from_eps", make_predict_x0_from_eps, run_predict_x0_from_eps, judge_predict_x0_from_eps,
    reference=reference_predict_x0_from_eps,
    doc="Check ``fn(xt, t, eps, alphas_cumprod)`` against :meth:`GaussianDiffusion.predict_x0_from_eps`."))


# ----------------------------------------------------------------------------------------------
# Exercise: posterior_mean_from_eps  μ̃ = 1/√α_t · (x_t − β_t / √(1 − ᾱ_t) · ε)  (eq. 11)
# ----------------------------------------------------------------------------------------------
def make_posterior_mean_from_eps(T: int = 10, schedule: str = "linear", shape=(4, 1, 8, 8), seed: int = 0,
                                 t=None, use_reference_helpers: bool = True) -> dict:
    shape = tuple(shape)
    return {**_schedule(T, schedule), "shape": shape, "use_reference_helpers": bool(use_reference_helpers),
            "xt": torch.randn(shape, generator=h.gen(seed)), "eps": torch.randn(shape, generator=h.gen(seed + 1)),
            "t": _batch_t(T, shape[0], seed, t)}


def run_posterior_mean_from_eps(inputs: dict, fn) -> dict:
    with _bound_to_package(fn, inputs["betas"], inputs["use_reference_helpers"]):
        out = h.call(fn, inputs["xt"].clone(), inputs["t"].clone(), inputs["eps"].clone(), inputs["betas"].clone())
    return {"out": out}


def judge_posterior_mean_from_eps(inputs: dict, outputs: dict) -> None:
    r = h.Report("posterior_mean_from_eps")
    T, schedule, betas, shape, xt, eps, tt = (inputs[k] for k in ("T", "schedule", "betas", "shape", "xt",
                                                                   "eps", "t"))
    d = GaussianDiffusion(betas)
    shown = f"posterior_mean_from_eps(xt {h.fmt_shape(shape)}, t={tt.tolist()}, eps, betas ({schedule}, T={T}))"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    h.check_shape_dtype(r, out, shape, None, shown)
    ref, _, _ = d.p_mean_variance(eps, xt, tt, clip_x0=False)
    k = _tables64(betas)
    g = lambda a: a[tt].reshape(-1, *((1,) * (len(shape) - 1)))   # noqa: E731
    b, a, ab = g(k["b"]), g(k["a"]), g(k["ab"])
    mistakes = {
        "the prefactor is 1/α_t; it is 1/√α_t: μ̃ = (x_t − β_t / √(1 − ᾱ_t)·ε) / √α_t.":
            (xt - b / (1 - ab).sqrt() * eps) / a,
        "the prefactor uses ᾱ_t where α_t belongs: μ̃ = (x_t − β_t / √(1 − ᾱ_t)·ε) / √α_t (one step back, "
        "not all the way to x0).": (xt - b / (1 - ab).sqrt() * eps) / ab.sqrt(),
        "the noise coefficient is β_t / (1 − ᾱ_t); it is β_t / √(1 − ᾱ_t).":
            (xt - b / (1 - ab) * eps) / a.sqrt(),
        "the noise coefficient uses √β_t; it is β_t / √(1 − ᾱ_t) (β_t, a variance, over a standard "
        "deviation).": (xt - b.sqrt() / (1 - ab).sqrt() * eps) / a.sqrt(),
        "this is x0, not μ̃: you predicted x0 from ε but did not take the posterior mean of x_{t-1}.":
            d.predict_x0_from_eps(xt, tt, eps).double(),
    }
    h.diagnose(r, out, ref, mistakes, rtol=1e-4, atol=1e-4, what=shown)
    x0 = d.predict_x0_from_eps(xt, tt, eps)
    mean_x0, _ = d.q_posterior(x0, xt, tt)
    gap = float((out.detach().cpu().double() - mean_x0.double()).abs().max())
    r.ok(f"{shown}: matches the ε form (eq. 11) and equals μ̃_t(x_t, x̂0) of q_posterior "
         f"(max gap {gap:.1e})")


check_posterior_mean_from_eps = h.register(h.Check(
    "posterior_mean_from_eps", make_posterior_mean_from_eps, run_posterior_mean_from_eps,
    judge_posterior_mean_from_eps, reference=reference_posterior_mean_from_eps,
    doc="Check ``fn(xt, t, eps, betas)`` against the ε form of the mean of "
        ":meth:`GaussianDiffusion.p_mean_variance` — and that it equals μ̃_t(x_t, x0) for the x0 behind x_t."))


# ----------------------------------------------------------------------------------------------
# Exercise: gaussian_kl  KL(N(μ1, σ1²) ‖ N(μ2, σ2²)), element-wise
# ----------------------------------------------------------------------------------------------
def make_gaussian_kl(shape=(4, 3), seed: int = 0, dtype: torch.dtype = torch.float64) -> dict:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype should be a floating torch dtype such as torch.float64; got {dtype!r}.")
    shape = tuple(shape)
    m1, m2 = (torch.randn(shape, generator=h.gen(seed + i)).to(dtype) for i in (0, 1))
    v1, v2 = (torch.rand(shape, generator=h.gen(seed + i)).to(dtype) * 2 + 0.05 for i in (2, 3))
    return {"shape": shape, "mean1": m1, "var1": v1, "mean2": m2, "var2": v2}


def run_gaussian_kl(inputs: dict, fn) -> dict:
    m1, v1, m2, v2 = (inputs[k] for k in ("mean1", "var1", "mean2", "var2"))
    return {"out": h.call(fn, m1.clone(), v1.clone(), m2.clone(), v2.clone()),
            "same": h.call(fn, m1.clone(), v1.clone(), m1.clone(), v1.clone())}


def judge_gaussian_kl(inputs: dict, outputs: dict) -> None:
    r = h.Report("gaussian_kl")
    shape = inputs["shape"]
    m1, v1, m2, v2 = (inputs[k] for k in ("mean1", "var1", "mean2", "var2"))
    shown = f"gaussian_kl(mean1, var1, mean2, var2), all {h.fmt_shape(shape)}"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    h.check_shape_dtype(r, out, shape, None, shown, "")
    ref = gaussian_kl(m1, v1, m2, v2)
    same = h.value(r, outputs["same"])
    mistakes = {
        "you treated the variances as standard deviations (squared them): var1 and var2 already are "
        "σ². KL = ½·(log(var2 / var1) + (var1 + (mean1 − mean2)²) / var2 − 1).":
            gaussian_kl(m1, v1 ** 2, m2, v2 ** 2),
        "the factor ½ is missing: KL = ½·(log(var2 / var1) + (var1 + (mean1 − mean2)²) / var2 − 1).": 2 * ref,
        "the arguments are swapped: KL is not symmetric. KL(p ‖ q) divides by q's variance, var2.":
            gaussian_kl(m2, v2, m1, v1),
        "the log ratio is upside down: it is log(var2 / var1) (for standard deviations, log(σ2 / σ1)).":
            0.5 * (torch.log(v1 / v2) + (v1 + (m1 - m2) ** 2) / v2 - 1),
        "the − 1 is missing: KL(p ‖ p) must be 0.": ref + 0.5,
        "the log of the variance ratio needs the factor ½ too (½·log(var2/var1) = log(σ2/σ1)).":
            torch.log(v2 / v1) + 0.5 * ((v1 + (m1 - m2) ** 2) / v2 - 1),
    }
    h.diagnose(r, out, ref, mistakes, rtol=1e-6, atol=1e-8, what=shown)
    same = h.as_tensor(r, same, "gaussian_kl(p, p)")
    if not h.close(same, torch.zeros_like(ref), 0, 1e-6):
        r.fail("KL(p ‖ p) should be 0 for identical Gaussians.")
    r.ok(f"{shown}: matches course_utils.diffusion.gaussian_kl, ≥ 0, and KL(p ‖ p) = 0")


check_gaussian_kl = h.register(h.Check(
    "gaussian_kl", make_gaussian_kl, run_gaussian_kl, judge_gaussian_kl, reference=reference_gaussian_kl,
    doc="Check ``fn(mean1, var1, mean2, var2)`` against :func:`course_utils.diffusion.gaussian_kl`."))


# ----------------------------------------------------------------------------------------------
# Exercise (sympy): complete the square in q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0)
# ----------------------------------------------------------------------------------------------
def make_complete_the_square(names=("beta_t", "abar_prev", "x_t", "x_0", "x"), T: int = 10,
                             steps=(1, 4, 9)) -> dict:
    names = tuple(names)
    if len(names) != 5 or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"names should be five symbol names (beta, abar_prev, x_t, x_0, x), e.g. "
                         f"('beta_t', 'abar_prev', 'x_t', 'x_0', 'x'); got {names!r}.")
    steps = tuple(int(s) for s in steps)
    if any(not 0 <= s < T for s in steps):
        raise ValueError(f"steps should be 0-indexed timesteps in [0, T-1] = [0, {T - 1}]; got {steps}.")
    return {"names": names, "T": int(T), "steps": steps}


def _symbols(names):
    import sympy as sp

    beta, abar_prev = sp.symbols(names[:2], positive=True)
    xt, x0, x = sp.symbols(names[2:], real=True)
    return beta, abar_prev, xt, x0, x


def run_complete_the_square(inputs: dict, fn) -> dict:
    import sympy as sp

    out, raw = h.call_keep(fn, *_symbols(inputs["names"]))
    outputs = {"out": out, "srepr": None}
    if isinstance(raw, (tuple, list)) and len(raw) == 2:
        outputs["srepr"] = h.call(lambda: [sp.srepr(sp.sympify(v)) for v in raw])
    return outputs


def judge_complete_the_square(inputs: dict, outputs: dict) -> None:
    import sympy as sp

    r = h.Report("complete_the_square")
    names, T, steps = inputs["names"], inputs["T"], inputs["steps"]
    beta, abar_prev, xt, x0, x = _symbols(names)
    shown = f"complete_the_square({', '.join(names)})"
    out = h.value(r, outputs["out"])
    if not isinstance(out, (tuple, list)) or len(out) != 2 or outputs["srepr"] is None:
        r.fail(f"{shown} should return a pair (precision, mean) of sympy expressions.")
    texts = h.value(r, outputs["srepr"])
    try:
        prec, mean = (parse_srepr(s) for s in texts)
    except (ValueError, TypeError) as e:
        r.fail(f"{shown}: your expressions could not be read back from sympy.srepr ({e}); return sympy "
               f"expressions built from the symbols you were given.")
    if x in prec.free_symbols or x in mean.free_symbols:
        r.fail(f"the precision and the mean must not contain {names[4]} (= x_{{t-1}}); they are the "
               f"coefficients you read off after collecting the powers of {names[4]}.")
    alpha = 1 - beta
    abar = abar_prev * alpha
    bt = (1 - abar_prev) / (1 - abar) * beta                              # β̃_t, eq. 7
    mu = (sp.sqrt(abar_prev) * beta * x0 + sp.sqrt(alpha) * (1 - abar_prev) * xt) / (1 - abar)

    rng = [dict(zip((beta, abar_prev, xt, x0), v)) for v in
           ((0.02, 0.9, 0.3, -0.7), (0.3, 0.4, -1.2, 0.5), (0.001, 0.99, 0.8, 0.1))]

    def numerically_same(a, b) -> bool:
        try:
            return all(abs(complex(a.subs(v)) - complex(b.subs(v))) <= 1e-9 * (1 + abs(complex(b.subs(v))))
                       for v in rng)
        except (TypeError, ValueError, ZeroDivisionError):
            return False

    def same(a, b) -> bool:                      # the right answer: sympy.simplify proves it
        return sp.simplify(a - b) == 0

    def looks_like(a, b) -> bool:                # naming a mistake: agreement at a few points suffices
        return numerically_same(a, b)

    if not same(prec, 1 / bt):
        wrong = {
            f"precision = 1/β_t: you used β where β̃ belongs. The x² coefficient collects both factors: "
            f"α_t/β_t + 1/(1 − ᾱ_{{t-1}}) = 1/β̃_t.": 1 / beta,
            "precision = β̃_t: the coefficient of x² is the *inverse* variance 1/β̃_t.": bt,
            "precision = 1/√β̃_t: you used the standard deviation where the variance belongs.": 1 / sp.sqrt(bt),
            "precision uses ᾱ_t where ᾱ_{t-1} belongs: q(x_{t-1} | x_0) has variance 1 − ᾱ_{t-1}.":
                alpha / beta + 1 / (1 - abar),
            "precision is twice too large: the exponent is −½·(A·x² − 2·B·x + C); A (not 2A) is the precision.":
                2 / bt,
        }
        for msg, cand in wrong.items():
            if looks_like(prec, cand):
                r.fail(msg)
        r.fail(f"precision = {prec} does not simplify to 1/β̃_t = {sp.simplify(1 / bt)}.")
    r.ok("precision: sympy.simplify(precision − 1/β̃_t) == 0")
    if not same(mean, mu):
        wrong = {
            "mean = B, the coefficient of x: divide it by the precision (μ̃ = B / A).": mu / bt,
            "mean is twice μ̃: the exponent is −½·(A·x² − 2·B·x + C), so μ̃ = B/A — the 2 in −2·B·x "
            "must be divided out (an easy slip when copying the expanded square).": 2 * mu,
            "mean uses β where β̃ belongs: μ̃ = B · β̃_t, not B · β_t.": mu / bt * beta,
            "mean has the wrong sign: μ̃ = +B/A.": -mu,
            "mean is −2·μ̃: two slips at once, the factor 2 and the sign. The exponent is −½·(A·x² − 2·B·x + C), "
            "so the coefficient of x is −2·B: divide out the 2 and keep the minus sign, μ̃ = +B/A = "
            "−coeff(x, 1) / (2·coeff(x, 2)); coeff(x, 1) / coeff(x, 2) alone is −2·μ̃.": -2 * mu,
            "mean is −μ̃/2: two slips at once, the factor 2 (divided out once too often) and the sign. The "
            "exponent is −½·(A·x² − 2·B·x + C), so μ̃ = +B/A = −coeff(x, 1) / (2·coeff(x, 2)).": -mu / 2,
        }
        for msg, cand in wrong.items():
            if looks_like(mean, cand):
                r.fail(msg)
        r.fail(f"mean = {mean} does not simplify to μ̃_t = {sp.simplify(mu)}.")
    r.ok("mean: sympy.simplify(mean − μ̃_t(x_t, x_0)) == 0")
    d = GaussianDiffusion(linear_betas(T))
    for t in steps:
        vals = {beta: float(d.betas[t]), abar_prev: float(d.alphas_cumprod_prev[t]), xt: 0.3, x0: -0.7}
        m_ref, v_ref = d.q_posterior(torch.tensor([[-0.7]]), torch.tensor([[0.3]]), t)
        # float32 buffers: 1 − ᾱ_{t-1} near t = 0 keeps only a few digits, hence the loose tolerance
        if abs(float(prec.subs(vals)) * float(v_ref) - 1) > 1e-3 or abs(float(mean.subs(vals)) - float(m_ref)) > 1e-4:
            r.fail(f"at t = {t} your expressions disagree with GaussianDiffusion.q_posterior.")
    r.ok(f"{shown}: 1/precision and mean agree with GaussianDiffusion.q_posterior at t = {list(steps)}")


check_complete_the_square = h.register(h.Check(
    "complete_the_square", make_complete_the_square, run_complete_the_square, judge_complete_the_square,
    reference=reference_complete_the_square,
    doc="Check ``fn(beta, abar_prev, xt, x0, x) -> (precision, mean)``, sympy expressions, symbolically.\n\n"
        "``precision`` is the coefficient 1/β̃_t of x² and ``mean`` the centre μ̃_t of the Gaussian in x "
        "(= x_{t-1}). Verified with ``sympy.simplify`` against eq. 7 of Ho et al. 2020, then numerically "
        "against :meth:`GaussianDiffusion.q_posterior` at a few steps of a linear schedule."))


# ----------------------------------------------------------------------------------------------
# Exercise 8: the ELBO's terms for 1-D Gaussian data and a linear-Gaussian reverse model
# ----------------------------------------------------------------------------------------------
def reference_elbo_terms(x0, betas, a, b, s):
    """(L_T (N,), L_mid (N, T−1), L_0 (N,)): :func:`course_utils.elbo.elbo_terms_1d`."""
    return elbo_terms_1d(x0, betas, a, b, s)


def make_elbo_terms(T: int = 10, schedule: str = "linear", n: int = 5, seed: int = 0, mean: float = 0.3,
                    var: float = 0.04) -> dict:
    """A schedule, n data points from N(mean, var) and a reverse model near the optimal one (perturbed, so that
    no term is zero and the bound has a gap)."""
    if not is_int(T) or T < 2:
        raise ValueError(f"T must be an int ≥ 2 (the ELBO has a prior, middle and decoder term); got {T!r}.")
    if not is_int(n) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}.")
    inputs = _schedule(T, schedule)
    g = h.gen(seed)
    a, b, s = optimal_reverse_1d(inputs["betas"], mean, var)
    # errors on the scale of each step's own spread √s: every term is off a little, the sum stays readable
    a = a + 0.1 * s.sqrt() * torch.randn(T, generator=g, dtype=torch.float64)
    b = b + 0.1 * s.sqrt() * torch.randn(T, generator=g, dtype=torch.float64)
    s = s * (0.8 + 0.4 * torch.rand(T, generator=g, dtype=torch.float64))
    x0 = mean + var ** 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    return {**inputs, "betas": inputs["betas"].double(), "x0": x0, "a": a, "b": b, "s": s, "n": int(n)}


def run_elbo_terms(inputs: dict, fn) -> dict:
    # a learner who calls their own posterior_variance / posterior_mean_coefs is graded with the package's
    # (exercises 2 and 3 grade those): one slip does not cost points twice
    with _bound_to_package(fn, inputs["betas"]):
        return {"out": h.call(fn, *(inputs[k].clone() for k in ("x0", "betas", "a", "b", "s")))}


def judge_elbo_terms(inputs: dict, outputs: dict) -> None:
    import math

    r = h.Report("elbo_terms")
    T, n, schedule = inputs["T"], inputs["n"], inputs["schedule"]
    shown = f"elbo_terms(x0 ({n},), betas ({schedule}, T={T}), a, b, s)"
    out = h.value(r, outputs["out"])
    L_T, L_mid, L_0 = h.as_tensors(r, out, tuple(f"{shown}[{i}]" for i in range(3)),
                                   f"{shown} should return three tensors (L_T, L_mid, L_0).")
    p = elbo_parts_1d(inputs["x0"], inputs["betas"], inputs["a"], inputs["b"], inputs["s"])
    h.check_shape_dtype(r, L_T, (n,), None, "L_T")
    if tuple(L_mid.shape) == (n, T):
        r.fail(f"L_mid has shape ({n}, {T}): it should have T − 1 = {T - 1} columns, one per k = 1 … T−1 (the "
               "paper's L_1 … L_{T−1}). Step k = 0 is the decoder, L_0, which is a log-likelihood, not a KL.")
    h.check_shape_dtype(r, L_mid, (n, T - 1), None, "L_mid")
    h.check_shape_dtype(r, L_0, (n,), None, "L_0")
    kl0 = lambda v: 0.5 * (torch.log(p["s_mid"] / v) + v / p["s_mid"] - 1)   # noqa: E731
    sq = p["gap_sq_at_mean"] + p["gap_var"]
    ab_T = torch.cumprod(1 - inputs["betas"], 0)[-1]
    x0 = inputs["x0"]
    h.diagnose(r, L_T, p["L_T"], {
        "L_T uses ᾱ where its square root belongs: q(x_T | x_0) = N(√ᾱ_{T−1}·x_0, 1 − ᾱ_{T−1}).":
            0.5 * (torch.log(1 / (1 - ab_T)) + (1 - ab_T) + (ab_T * x0) ** 2 - 1),
        "L_T is the KL the wrong way round: it is KL(q(x_T | x_0) ‖ p(x_T)), the posterior first.":
            0.5 * (torch.log(1 - ab_T) + (1 + ab_T * x0 ** 2) / (1 - ab_T) - 1),
    }, rtol=1e-6, atol=1e-10, what="L_T")
    h.diagnose(r, L_mid, p["L_mid"], {
        "L_mid leaves out the spread of x_t: the expectation E_q(x_t|x_0)[(μ̃ − μ_θ)²] is the squared gap at "
        "x_t's mean PLUS (c2 − a)²·(1 − ᾱ_t), the variance of the gap (it is linear in x_t).":
            kl0(p["beta_tilde"]) + p["gap_sq_at_mean"] / (2 * p["s_mid"]),
        "L_mid uses β_t where the posterior variance β̃_t belongs: q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t).":
            kl0(p["betas_mid"]) + sq / (2 * p["s_mid"]),
        "L_mid is missing the factor ½ of the Gaussian KL.": 2 * p["L_mid"],
    }, rtol=1e-6, atol=1e-10, what="L_mid")
    h.diagnose(r, L_0, p["L_0"], {
        "L_0 is missing ½·log(2π): −log N(x; m, s) = ½·log(2π·s) + (x − m)² / (2s).":
            p["L_0"] - 0.5 * math.log(2 * math.pi),
        "L_0 leaves out the spread of x_1: E[(x_0 − a_0·x_1 − b_0)²] adds a_0²·(1 − ᾱ_0) to the squared gap at "
        "x_1's mean.": p["L_0"] - p["resid_var"] / (2 * p["s_0"]),
        "L_0 has the wrong sign: it is −E log p_θ(x_0 | x_1), a negative log-likelihood.": -p["L_0"],
    }, rtol=1e-6, atol=1e-10, what="L_0")
    bound = p["L_T"] + p["L_mid"].sum(1) + p["L_0"]
    nll = -log_likelihood_1d(x0, inputs["a"], inputs["b"], inputs["s"])
    r.ok(f"{shown}: all three terms match course_utils.elbo; −ELBO {float(bound.mean()):.4f} ≥ −log p_θ(x0) "
         f"{float(nll.mean()):.4f} nats (mean over the {n} points)")


check_elbo_terms = h.register(h.Check(
    "elbo_terms", make_elbo_terms, run_elbo_terms, judge_elbo_terms, reference=reference_elbo_terms,
    doc="Check ``fn(x0, betas, a, b, s) -> (L_T, L_mid, L_0)`` against :func:`course_utils.elbo.elbo_terms_1d` "
        "for a reverse model near the optimal one for Gaussian data (perturbed from a seed).",
    blocks=("course_utils.elbo.elbo_terms_1d", "course_utils.elbo.elbo_parts_1d")))
