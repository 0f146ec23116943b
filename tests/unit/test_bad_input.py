"""Bad input to the public API: a clear error or a correct result — never NaN, never a crash deep in torch.

Hypothesis draws shapes, dtypes, devices and out-of-range values and sends them through the public
functions. Every call must either return a finite result of the documented shape, or raise
``ValueError``/``TypeError`` whose message names the argument (so a learner knows what to fix).
Any other exception (``RuntimeError``/``IndexError`` from inside torch) fails the test.
"""
from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from course_utils import metrics, models, schedules
from course_utils.diffusion import GaussianDiffusion, classifier_free_guidance, gaussian_kl
from course_utils.models import UNet, drop_labels, sinusoidal_embedding

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=True)
T = 20
D = GaussianDiffusion(schedules.linear_betas(T))

DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
                          torch.uint8, torch.bool, torch.complex64])
DEVICES = st.sampled_from(["cpu", "meta"])
SHAPES = st.lists(st.integers(0, 5), min_size=0, max_size=5).map(tuple)
WEIRD = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.floats(allow_nan=True, allow_infinity=True),
                  st.integers(-10**6, 10**6), st.lists(st.integers(-3, 3), max_size=3))


def _tensor(shape, dtype, device, fill):
    if device == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    x = torch.full(shape, fill) if dtype.is_floating_point or dtype.is_complex else torch.zeros(shape)
    return x.to(dtype)


tensors = st.builds(_tensor, SHAPES, DTYPES, DEVICES,
                    st.floats(-3, 3) | st.sampled_from([math.nan, math.inf, -math.inf]))
anything = st.one_of(tensors, WEIRD)


def names_argument(msg: str, name: str) -> bool:
    """Whether ``msg`` names the argument ``name`` as a word (``t`` in "t must be…", not the t of "must")."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", msg) is not None


def test_names_argument_matches_whole_words_only():
    assert names_argument("t must be an int64 tensor of shape (B,)", "t")
    assert names_argument("`x_t` has shape (2,)", "x_t")
    assert not names_argument("the timesteps must be integers", "t")
    assert not names_argument("expected a tensor", "s")
    assert not names_argument("x0 is not finite", "x")


def outcome(fn, *args, names: tuple[str, ...], **kwargs):
    """Call ``fn``; a ValueError/TypeError must name one of ``names`` as a word; other exceptions propagate."""
    try:
        return fn(*args, **kwargs), None
    except (ValueError, TypeError) as err:
        msg = str(err)
        assert any(names_argument(msg, n) for n in names), \
            f"unclear error from {fn.__name__}: {msg!r} names none of {names}"
        assert len(msg) > 20, f"terse error from {fn.__name__}: {msg!r}"
        return None, err


def _finite(x):
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.device.type != "meta":
        return bool(torch.isfinite(x).all())
    return True


def _good_inputs(*xs):
    return all(isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
               and x.numel() and bool(torch.isfinite(x).all()) for x in xs)


@SETTINGS
@given(T=WEIRD | st.integers(-5, 2000), a=WEIRD, b=WEIRD)
def test_linear_betas(T, a, b):
    args = {k: v for k, v in (("beta_start", a), ("beta_end", b)) if v is not None}
    out, err = outcome(schedules.linear_betas, T, **args, names=("T", "beta_start", "beta_end", "beta"))
    if err is None:
        assert out.shape == (T,) and out.dtype == torch.float64 and bool(((out > 0) & (out < 1)).all())


@SETTINGS
@given(T=WEIRD | st.integers(-5, 2000), s=WEIRD)
def test_cosine_betas(T, s):
    args = {} if s is None else {"s": s}
    out, err = outcome(schedules.cosine_betas, T, **args, names=("T", "s", "max_beta"))
    if err is None:
        assert out.shape == (T,) and bool(((out > 0) & (out < 1)).all())


@SETTINGS
@given(betas=anything)
def test_gaussian_diffusion_betas(betas):
    d, err = outcome(GaussianDiffusion, betas, names=("betas",))
    if err is None:
        assert _finite(d.alphas_cumprod) and _finite(d.posterior_variance)


@SETTINGS
@given(x0=anything, t=anything | st.integers(-3, T + 3), noise=st.one_of(st.none(), tensors))
def test_q_sample(x0, t, noise):
    out, err = outcome(D.q_sample, x0, t, noise=noise, names=("x0", "t", "noise", "generator"))
    if err is None and _good_inputs(x0) and (noise is None or _good_inputs(noise)):
        assert out.shape == x0.shape and _finite(out)


@SETTINGS
@given(x0=anything, xt=anything, t=anything | st.integers(-3, T + 3))
def test_q_posterior(x0, xt, t):
    out, err = outcome(D.q_posterior, x0, xt, t, names=("x0", "xt", "t"))
    if err is None and _good_inputs(x0, xt):
        mean, var = out
        assert mean.shape == x0.shape and _finite(mean) and _finite(var)


@SETTINGS
@given(eps=anything, xt=anything, t=anything | st.integers(-3, T + 3),
       variance=st.sampled_from(["beta", "beta_tilde", "sigma", None]))
def test_reverse_step(eps, xt, t, variance):
    out, err = outcome(D.step, eps, xt, t, variance=variance, names=("eps", "xt", "t", "variance", "noise"))
    if err is None and _good_inputs(eps, xt):
        assert out.sample.shape == xt.shape and _finite(out.sample) and _finite(out.pred_x0)


@SETTINGS
@given(eps=anything, xt=anything, t=st.integers(-2, T + 2) | anything, t_prev=st.integers(-3, T + 2) | anything,
       eta=st.floats(allow_nan=True) | WEIRD)
def test_ddim_step(eps, xt, t, t_prev, eta):
    args = {} if eta is None else {"eta": eta}
    out, err = outcome(D.ddim_step, eps, xt, t, t_prev, **args, names=("eps", "xt", "t", "t_prev", "eta", "noise"))
    if err is None and _good_inputs(eps, xt):
        assert out.sample.shape == xt.shape and _finite(out.sample)


@SETTINGS
@given(eps=anything, xt=anything, t=st.integers(-2, T + 2) | anything, t_prev=st.integers(-3, T + 2) | anything,
       variance=st.sampled_from(["beta", "beta_tilde", "sigma", None]))
def test_respaced_step(eps, xt, t, t_prev, variance):
    out, err = outcome(D.respaced_step, eps, xt, t, t_prev, variance=variance,
                       names=("eps", "xt", "t", "t_prev", "variance", "noise"))
    if err is None and _good_inputs(eps, xt):
        assert out.sample.shape == xt.shape and _finite(out.sample) and _finite(out.pred_x0)


@SETTINGS
@given(c=anything, u=anything, w=st.floats(allow_nan=True, allow_infinity=True) | WEIRD)
def test_classifier_free_guidance(c, u, w):
    out, err = outcome(classifier_free_guidance, c, u, w, names=("eps_cond", "eps_uncond", "w"))
    if err is None and _good_inputs(c, u):
        assert out.shape == c.shape and _finite(out)


@SETTINGS
@given(m1=anything, v1=anything, m2=anything, v2=anything)
def test_gaussian_kl(m1, v1, m2, v2):
    out, err = outcome(gaussian_kl, m1, v1, m2, v2, names=("mean1", "var1", "mean2", "var2", "var"))
    if err is None and _good_inputs(m1, v1, m2, v2) and all(bool((v > 0).all()) for v in (v1, v2)):
        assert _finite(out)


@SETTINGS
@given(t=anything, dim=WEIRD | st.integers(-4, 64))
def test_sinusoidal_embedding(t, dim):
    out, err = outcome(sinusoidal_embedding, t, dim, names=("t", "dim"))
    if err is None and isinstance(t, torch.Tensor) and t.device.type == "cpu":
        assume(t.dtype != torch.bool)
        assert out.shape == (t.shape[0], dim) and _finite(out)


@SETTINGS
@given(y=anything, p=st.floats(allow_nan=True) | WEIRD, null=WEIRD | st.integers(-2, 12))
def test_drop_labels(y, p, null):
    out, err = outcome(drop_labels, y, p, null, names=("y", "labels", "p", "null_class"))
    if err is None:
        assert out.shape == y.shape


TINY = UNet(channels=(8, 16), num_classes=3).eval()


@SETTINGS
@given(x=anything, t=anything | st.integers(-3, 1200), y=st.one_of(st.none(), anything, st.integers(-2, 5)))
def test_unet_forward(x, t, y):
    with torch.no_grad():
        out, err = outcome(TINY, x, t, y, names=("x", "t", "y", "label", "class"))
    if err is None and _good_inputs(x):
        assert out.shape == x.shape and _finite(out)


@SETTINGS
@given(config=st.fixed_dictionaries({}, optional={
    "channels": WEIRD | st.lists(st.integers(-8, 64), max_size=4).map(tuple),
    "num_res_blocks": WEIRD, "norm_groups": WEIRD | st.integers(-2, 9), "dropout": WEIRD,
    "num_classes": WEIRD, "downsample": WEIRD | st.sampled_from(["conv", "rearrange"]),
    "class_dropout_prob": WEIRD}))
def test_unet_config(config):
    outcome(models.UNetConfig, **config, names=tuple(config) or ("UNetConfig",))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(images=anything, labels=anything)
def test_class_agreement(images, labels):
    out, err = outcome(metrics.class_agreement, images, labels, names=("images", "labels"))
    if err is None:
        assert 0.0 <= out <= 1.0


# Public names with no property test of their own here, and why.
NOT_PROPERTY_TESTED = {
    "extract": "a gather helper; every GaussianDiffusion method above goes through it",
    "check_betas": "the validator that test_gaussian_diffusion_betas drives through GaussianDiffusion",
    "make_betas": "a name → schedule switch over linear_betas/cosine_betas, both tested above",
    "alpha_tables": "check_betas (the validator above) then 1 − β and cumulative products; its values and its "
                    "refusal of a bad schedule are tested in test_schedules.py",
    "StepOutput": "a NamedTuple returned by the steps tested above",
    "SampleStep": "a record yielded by the progressive samplers",
    "guided_eps": "calls the model and classifier_free_guidance, both tested above",
    "blend_noise": "lesson 01's demo mix of two tensors, validated like classifier_free_guidance",
}


def _names_used_by_tests() -> set[str]:
    """The names and attributes that this module's ``test_*`` functions use (not the coverage test), plus the
    constructor of each module-level object they use (``TINY = UNet(…)`` counts for UNet, not its args)."""
    import ast
    tree = ast.parse(open(__file__, encoding="utf-8").read())
    me = "test_every_public_callable_is_covered_or_trivially_safe"
    used: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and node.name != me:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name):
                    used.add(sub.id)
                elif isinstance(sub, ast.Attribute):
                    used.add(sub.attr)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in used for t in node.targets):
            f = node.value
            while isinstance(f, (ast.Call, ast.Attribute)):       # walk the call chain: UNet(...).eval()
                f = f.func if isinstance(f, ast.Call) else f.value
            if isinstance(f, ast.Name):
                used.add(f.id)
    return used


def test_every_public_callable_is_covered_or_trivially_safe():
    """Every public callable of the numeric modules is called by a property test in this file, or is
    listed in NOT_PROPERTY_TESTED with the reason (read from the tests that exist, not from a list)."""
    import course_utils.diffusion as diffusion
    public = set(schedules.__all__) | set(diffusion.__all__) | {"sinusoidal_embedding", "drop_labels", "UNet",
                                                               "UNetConfig", "class_agreement"}
    untested = sorted(public - _names_used_by_tests() - set(NOT_PROPERTY_TESTED))
    assert not untested, f"add property tests for {untested} (or list them in NOT_PROPERTY_TESTED with why)"
    stale = sorted(set(NOT_PROPERTY_TESTED) - public)
    assert not stale, f"NOT_PROPERTY_TESTED names {stale}, which are no longer public: remove them"
