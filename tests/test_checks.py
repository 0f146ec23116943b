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


# ------------------------------------------------------------------ lesson 05: time embeddings
import math  # noqa: E402

from einops import rearrange as _l05_rearrange  # noqa: E402

from course_utils.models import ResBlock as _L05ResBlock, sinusoidal_embedding as _l05_emb  # noqa: E402


def _l05_emb_variant(order="sin_cos", denom="half", cast=None, check_odd=True):
    def fn(t, dim):
        if check_odd and dim % 2:
            raise ValueError(f"dim must be even; got {dim}")
        half = dim // 2
        i = torch.arange(half, dtype=torch.float32)
        d = {"half": half, "half-1": max(half - 1, 1), "dim": dim}[denom]
        freqs = torch.exp(-math.log(10000.0) * i / d)
        tt = t.long().float() if cast == "long" else t.float()
        a = tt[:, None] * freqs[None]
        if order == "interleave":
            return torch.stack([a.sin(), a.cos()], dim=-1).flatten(1)
        parts = [a.sin(), a.cos()] if order == "sin_cos" else [a.cos(), a.sin()]
        return torch.cat(parts, dim=-1)
    return fn


def test_lesson05_embedding_right(capsys):
    run(checks.check_sinusoidal_embedding, _l05_emb)
    run(checks.check_sinusoidal_embedding, _l05_emb_variant(), dim=10, t=torch.tensor([0.5, 1.25, 7.75]))
    run(checks.check_sinusoidal_embedding_rejects_odd_dim, _l05_emb, dim=9)
    run(checks.check_sinusoidal_embedding_neighbours, _l05_emb)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 4 and "✗" not in out.out


@pytest.mark.parametrize("fn, kwargs, match", [
    (_l05_emb_variant(order="cos_sin"), {}, "halves are swapped"),
    (_l05_emb_variant(order="interleave"), {}, "interleaved"),
    (_l05_emb_variant(denom="half-1"), {}, "off by one"),
    (_l05_emb_variant(denom="dim"), {}, "i/dim"),
    (_l05_emb_variant(cast="long"), {"t": torch.tensor([0.5, 1.5, 2.25])}, "rounded or truncated"),
    (lambda t, dim: _l05_emb(t, dim).T, {"dim": 16}, "transposed"),
])
def test_lesson05_embedding_mistakes(capsys, fn, kwargs, match):
    fails(capsys, checks.check_sinusoidal_embedding, fn, match=match, **kwargs)


def test_lesson05_odd_dim_must_raise_clear_error(capsys):
    fails(capsys, checks.check_sinusoidal_embedding_rejects_odd_dim, _l05_emb_variant(check_odd=False),
          match="without complaint")

    def vague(t, dim):
        if dim % 2:
            raise ValueError("bad")
        return _l05_emb(t, dim)

    fails(capsys, checks.check_sinusoidal_embedding_rejects_odd_dim, vague, match="say why")

    def index_error(t, dim):
        raise IndexError("out of range")

    fails(capsys, checks.check_sinusoidal_embedding_rejects_odd_dim, index_error, match="IndexError")


def test_lesson05_neighbours_distinct(capsys):
    fails(capsys, checks.check_sinusoidal_embedding_neighbours,
          lambda t, dim: _l05_emb((t // 2) * 2, dim), match="same embedding")


def test_lesson05_add_time_embedding(capsys):
    good = lambda h, emb: h + _l05_rearrange(emb, 'b c -> b c 1 1')      # noqa: E731
    run(checks.check_add_time_embedding, good)
    run(checks.check_add_time_embedding, good, shape=(4, 4, 4, 4))
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h + emb, shape=(4, 4, 4, 4),
          match="wrong axes")
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h + _l05_rearrange(emb, 'b c -> c b 1 1'),
          shape=(4, 4, 4, 4), match="swapped")
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h * emb[:, :, None, None], match="multiplied")
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h + emb[0][None, :, None, None],
          match="same shift")
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h + emb, match="raised RuntimeError")


class _L05Block(_L05ResBlock):
    """The package's block with one mistake in forward."""

    mistake = None

    def forward(self, x, emb):
        h = self.conv1(self.act(self.norm1(x)))
        e = _l05_rearrange(self.emb_proj(emb), 'b c -> b c 1 1')
        if self.mistake != "no_emb" and self.mistake != "late_emb":
            h = h + e
        h = self.conv2(self.act(self.norm2(h)))
        if self.mistake == "late_emb":
            h = h + e
        return h if self.mistake == "no_skip" else self.skip(x) + h


@pytest.mark.parametrize("mistake, match", [("no_emb", "embedding is missing"), ("no_skip", "skip connection"),
                                            ("late_emb", "after the second conv")])
def test_lesson05_res_block(capsys, mistake, match):
    run(checks.check_res_block, _L05ResBlock)
    run(checks.check_res_block, _L05ResBlock, in_ch=8, out_ch=8, emb_dim=12, groups=4, size=4)
    cls = type("Wrong", (_L05Block,), {"mistake": mistake})
    fails(capsys, checks.check_res_block, cls, match=match)


def test_lesson05_res_block_renamed_layers(capsys):
    class Renamed(torch.nn.Module):
        def __init__(self, in_ch, out_ch, emb_dim, groups):
            super().__init__()
            self.inner = _L05ResBlock(in_ch, out_ch, emb_dim, groups)

        def forward(self, x, emb):
            return self.inner(x, emb)

    fails(capsys, checks.check_res_block, Renamed, match="do not fit your block")


def test_lesson05_rearrange_pool(capsys):
    run(checks.check_rearrange_pool, lambda x: _l05_rearrange(x, 'b c (h p1) (w p2) -> b (c p1 p2) h w',
                                                              p1=2, p2=2))
    for pattern, match in [('b c (h p1) (w p2) -> b (p1 p2 c) h w', "ordered"),
                           ('b c (p1 h) (p2 w) -> b (c p1 p2) h w', "quarter-images"),
                           ('b c (h p1) (w p2) -> b (c p2 p1) h w', "swapped")]:
        fails(capsys, checks.check_rearrange_pool,
              lambda x, p=pattern: _l05_rearrange(x, p, p1=2, p2=2), match=match)
    fails(capsys, checks.check_rearrange_pool, lambda x: torch.nn.functional.max_pool2d(x, 2),
          match="ordinary pooling")


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


def test_gaussian_kl(capsys):
    def kl(m1, v1, m2, v2):
        return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)

    run(checks.check_gaussian_kl, kl)
    run(checks.check_gaussian_kl, kl, shape=(2, 3, 4), dtype=torch.float32)
    fails(capsys, checks.check_gaussian_kl, lambda m1, v1, m2, v2: kl(m1, v1 ** 2, m2, v2 ** 2),
          match="variances as standard deviations")
    fails(capsys, checks.check_gaussian_kl, lambda m1, v1, m2, v2: kl(m2, v2, m1, v1), match="swapped")
    fails(capsys, checks.check_gaussian_kl, lambda m1, v1, m2, v2: 2 * kl(m1, v1, m2, v2), match="½")


def test_complete_the_square(capsys):
    import sympy as sp

    def good(beta, abar_prev, xt, x0, x):
        alpha = 1 - beta
        abar = abar_prev * alpha
        Q = sp.expand((xt - sp.sqrt(alpha) * x) ** 2 / beta + (x - sp.sqrt(abar_prev) * x0) ** 2 / (1 - abar_prev)
                      - (xt - sp.sqrt(abar) * x0) ** 2 / (1 - abar))
        A, B = Q.coeff(x, 2), -Q.coeff(x, 1) / 2
        return A, B / A

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


# ------------------------------------------------------------------ lesson 01: U-Net blocks
def _l01_classes():
    from torch import nn

    from course_utils.models import Downsample, Upsample

    class Down(nn.Module):
        def __init__(self, i, o, groups=8):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(groups, o), nn.GELU())
            self.down = Downsample(o)

        def forward(self, x):
            return self.down(self.conv(x))

    class Up(nn.Module):
        def __init__(self, i, s, o, groups=8):
            super().__init__()
            self.up = Upsample(i)
            self.conv = nn.Sequential(nn.Conv2d(i + s, o, 3, padding=1), nn.GroupNorm(groups, o), nn.GELU())

        def forward(self, x, skip):
            return self.conv(torch.cat([self.up(x), skip], dim=1))

    return Down, Up


def test_unet_blocks_right(capsys):
    Down, Up = _l01_classes()
    run(checks.check_down_block, Down)
    run(checks.check_down_block, Down, 1, 8, sizes=((3, 28, 28),))
    run(checks.check_up_block, Up)

    def unet(in_channels=1, channels=(16, 32)):
        return checks.reference_small_unet(in_channels, channels)
    run(checks.check_small_unet, unet)
    run(checks.check_small_unet, unet, in_channels=3, channels=(8, 16), sizes=((2, 12, 20),))
    run(checks.check_count_parameters, lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad))
    out = capsys.readouterr()
    assert out.err == "" and "✗" not in out.out and "matches course_utils.models.DownBlock" in out.out


def test_unet_blocks_classic_mistakes(capsys):
    from torch import nn

    Down, Up = _l01_classes()

    class NoHalf(Down):
        def forward(self, x):
            return self.conv(x)

    class ActFirst(Down):
        def __init__(self, i, o, groups=8):
            super().__init__(i, o)
            self.conv = nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GELU(), nn.GroupNorm(groups, o))

    class HardCoded(Down):
        def forward(self, x):
            return self.down(self.conv(x)).reshape(x.shape[0], -1, 8, 8)

    class NoSkip(Up):
        def forward(self, x, skip):
            return self.conv(torch.cat([self.up(x), 0 * skip], dim=1))

    class Swapped(Up):
        def forward(self, x, skip):
            return self.conv(torch.cat([skip, self.up(x)], dim=1))

    fails(capsys, checks.check_down_block, NoHalf, match="kept the resolution")
    fails(capsys, checks.check_down_block, ActFirst, match="GELU before GroupNorm")
    fails(capsys, checks.check_down_block, HardCoded, match="never from a fixed image size")
    fails(capsys, checks.check_up_block, NoSkip, match="no gradient reaches the skip")
    fails(capsys, checks.check_up_block, Swapped, 8, 8, 8, match=r"concatenated \[skip, h\]")

    class UNetNoSkip(nn.Module):
        def __init__(self, in_channels=1, channels=(16, 32)):
            super().__init__()
            self.ref = checks.reference_small_unet(in_channels, channels)

        def forward(self, x):
            r = self.ref
            h0 = r.conv_in(x)
            h2 = r.down2(r.down1(h0))
            return r.conv_out(r.up2(r.up1.conv(torch.cat([r.up1.up(h2), torch.zeros_like(r.down1(h0))], 1)), h0))

    fails(capsys, checks.check_small_unet, UNetNoSkip, match="gets no gradient|found 1 call")
    fails(capsys, checks.check_count_parameters, lambda m: len(list(m.parameters())), match="parameter tensors")
    fails(capsys, checks.check_count_parameters, lambda m: sum(p.numel() for p in m.parameters()),
          match="frozen")


# ------------------------------------------------------------------ lesson 04: Algorithms 1 and 2
_L04 = '''
import torch
import torch.nn.functional as F


def loss_simple(model, diffusion, x0, y=None, generator=None):
    t = torch.randint(0, diffusion.num_timesteps, (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    xt = diffusion.q_sample(x0, t, noise=eps)
    eps_pred = model(xt, t) if y is None else model(xt, t, y)
    return F.mse_loss(eps_pred, eps)


def train_step(model, diffusion, optimizer, x0, loss_fn, generator=None):
    optimizer.zero_grad()
    loss = loss_fn(model, diffusion, x0, generator=generator)
    loss.backward()
    optimizer.step()
    return loss.item()


def p_sample_step(eps, xt, t, diffusion, noise):
    beta_t, alpha_t, alpha_bar_t = diffusion.betas[t], diffusion.alphas[t], diffusion.alphas_cumprod[t]
    mean = (xt - beta_t / torch.sqrt(1 - alpha_bar_t) * eps) / torch.sqrt(alpha_t)
    if t == 0:
        return mean
    return mean + torch.sqrt(beta_t) * noise


@torch.no_grad()
def sample_loop(model, diffusion, shape, generator=None, step=p_sample_step):
    x = torch.randn(shape, generator=generator)
    for t in range(diffusion.num_timesteps - 1, -1, -1):
        eps = model(x, torch.full((shape[0],), t, dtype=torch.long))
        z = torch.randn(shape, generator=generator)
        x = step(eps, x, t, diffusion, z)
    return x
'''


def _l04(old=None, new=None):
    src = _L04
    if old is not None:
        assert old in src, old
        src = src.replace(old, new)
    ns: dict = {}
    exec(src, ns)                                   # noqa: S102
    return ns


def test_lesson04_checks_pass_the_right_answers(capsys):
    ns = _l04()
    run(checks.check_loss_simple, ns["loss_simple"])
    run(checks.check_loss_simple, ns["loss_simple"], T=1000, probe_calls=40, probe_batch=512)
    run(checks.check_train_step, ns["train_step"])
    run(checks.check_p_sample_step, ns["p_sample_step"])
    run(checks.check_p_sample_step, ns["p_sample_step"], T=10, shape=(2, 3, 4, 4), seed=5)
    run(checks.check_sample_loop, ns["sample_loop"])
    run(checks.check_p_sample_step, checks.reference_p_sample_step)
    run(checks.check_loss_simple, checks.reference_loss_simple)
    out = capsys.readouterr()
    assert out.err == "" and "✗" not in out.out and out.out.count("✓") == 8


@pytest.mark.parametrize("check, name, old, new, match", [
    ("check_loss_simple", "loss_simple", "torch.randint(0,", "torch.randint(1,", "never was 0"),
    ("check_loss_simple", "loss_simple", "(0, diffusion.num_timesteps,", "(0, diffusion.num_timesteps - 1,",
     "never was T-1"),
    ("check_loss_simple", "loss_simple", "F.mse_loss(eps_pred, eps)", "F.mse_loss(eps_pred, x0)", "with x0"),
    ("check_loss_simple", "loss_simple", "F.mse_loss(eps_pred, eps)", "((eps_pred - eps) ** 2).sum()", "a sum"),
    ("check_loss_simple", "loss_simple", "F.mse_loss(eps_pred, eps)", "F.mse_loss(eps_pred, eps).detach()",
     "gradients"),
    ("check_loss_simple", "loss_simple", "(x0.shape[0],), generator=generator,", "(x0.shape[0],),",
     "seeded alike"),
    ("check_loss_simple", "loss_simple", "(0, diffusion.num_timesteps, (x0.shape[0],)",
     "(0, diffusion.num_timesteps, (x0.shape[0],)) ** 0 * torch.randint(0, diffusion.num_timesteps, (1,)",
     "one t per image"),
    ("check_train_step", "train_step", "optimizer.zero_grad()", "pass", "zero_grad"),
    ("check_train_step", "train_step", "optimizer.step()\n", "pass\n", "did not change"),
    ("check_train_step", "train_step", "return loss.item()", "return loss", "Python float"),
    ("check_p_sample_step", "p_sample_step", "diffusion.betas[t]", "diffusion.betas[t - 1]", "β_{t-1}"),
    ("check_p_sample_step", "p_sample_step", "diffusion.alphas_cumprod[t]", "diffusion.alphas_cumprod[t - 1]",
     "ᾱ_{t-1}"),
    ("check_p_sample_step", "p_sample_step", "if t == 0:", "if False:", "no noise is added"),
    ("check_p_sample_step", "p_sample_step", "torch.sqrt(beta_t) * noise", "beta_t * noise", "a variance"),
    ("check_p_sample_step", "p_sample_step", "torch.sqrt(beta_t) * noise",
     "torch.sqrt(diffusion.posterior_variance[t]) * noise", "β̃_t"),
    ("check_sample_loop", "sample_loop", "range(diffusion.num_timesteps - 1, -1, -1)",
     "range(diffusion.num_timesteps - 1, 0, -1)", "stops at t = 1"),
    ("check_sample_loop", "sample_loop", "range(diffusion.num_timesteps - 1, -1, -1)",
     "range(diffusion.num_timesteps, -1, -1)", "t = 20"),
    ("check_sample_loop", "sample_loop", "z = torch.randn(shape, generator=generator)", "z = torch.randn(shape)",
     "same seed"),
])
def test_lesson04_checks_name_the_classic_mistakes(capsys, check, name, old, new, match):
    fails(capsys, getattr(checks, check), _l04(old, new)[name], match=match)


# ---------------------------------------------------------------- lesson 07: the assessment's pieces
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


# ------------------------------------------------------------------ lesson 06: classifier-free guidance
from course_utils.diffusion import guided_eps as _l06_guided_eps  # noqa: E402
from course_utils.models import drop_labels as _l06_drop_labels  # noqa: E402


def _l06_drop(mode="right"):
    def fn(y, p, null_class, generator=None):
        u = torch.rand(y.shape, generator=generator)
        drop = {"right": u < p, "keep_p": u >= p, "all": torch.ones_like(u, dtype=torch.bool)}[mode] \
            if mode in ("right", "keep_p", "all") else u < p
        fill = {"zero": 0, "minus_one": -1}.get(mode, null_class)
        if mode == "in_place":
            return y.masked_fill_(drop, null_class)
        if mode == "global_rng":
            drop = torch.rand(y.shape) < p
        if mode == "fixed":
            drop = torch.arange(len(y)) % 10 == 0
        if mode == "half_rate":
            drop = u < p / 2
        return torch.where(drop, torch.full_like(y, fill), y)
    return fn


def test_lesson06_drop_labels_right(capsys):
    run(checks.check_drop_labels, _l06_drop_labels)
    run(checks.check_drop_labels, _l06_drop(), p=0.3, null_class=7, seed=5)
    run(checks.check_drop_labels, _l06_drop(), p=0.0)
    run(checks.check_drop_labels, _l06_drop(), p=1.0)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 4 and "✗" not in out.out


@pytest.mark.parametrize("mode, kwargs, match", [
    ("keep_p", {}, "keep a label with probability p"),
    ("zero", {}, "set to 0"),
    ("minus_one", {}, "set to -1"),
    ("all", {}, "every label was dropped"),
    ("half_rate", {"p": 0.2}, "expect 0.2 ±"),
    ("in_place", {}, "in place"),
    ("global_rng", {}, "generator"),
    ("fixed", {}, "must be random"),
])
def test_lesson06_drop_labels_mistakes(capsys, mode, kwargs, match):
    fails(capsys, checks.check_drop_labels, _l06_drop(mode), match=match, **kwargs)


def test_lesson06_drop_rate_tolerance_is_binomial():
    # 5 standard deviations of a fraction of 20000 draws at p = 0.1: 5 * sqrt(0.09 / 20000) ≈ 0.0106
    assert checks._drop_rate_tolerance(0.1, 20000) == pytest.approx(0.0106066, rel=1e-4)
    assert checks._drop_rate_tolerance(0.0, 100) < 1e-9


def _l06_guided(mistake=None):
    def fn(model, x, t, y, w):
        null = torch.full_like(y, model.null_class)
        e_c, e_u = model(x, t, y), model(x, t, null)
        if mistake == "mix":
            return w * e_c + (1 - w) * e_u
        if mistake == "sign":
            return (1 - w) * e_c + w * e_u
        if mistake == "label0":
            return (1 + w) * e_c - w * model(x, t, torch.zeros_like(y))
        if mistake == "swapped":
            return (1 + w) * e_u - w * e_c
        if mistake == "cond_only":
            return e_c
        if mistake == "hard_coded_null":
            return (1 + w) * e_c - w * model(x, t, torch.full_like(y, 10))
        if mistake == "none_null":                          # model(x, t) means ∅ for the package's UNet: fine
            return (1 + w) * e_c - w * model(x, t)
        return e_u + (1 + w) * (e_c - e_u)                   # the same formula, rearranged
    return fn


def test_lesson06_guided_eps_right(capsys):
    run(checks.check_guided_eps, _l06_guided_eps)
    run(checks.check_guided_eps, _l06_guided(), w=0.5, num_classes=7, batch=6, seed=2)
    run(checks.check_guided_eps, _l06_guided("none_null"), w=3.0)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 3 and "✗" not in out.out


@pytest.mark.parametrize("mistake, kwargs, match", [
    ("mix", {}, "w = 0\nwould be|w = 0 would be"),
    ("sign", {}, "sign of w is swapped"),
    ("label0", {}, "label 0"),
    ("swapped", {}, "swapped"),
    ("cond_only", {}, "conditional prediction ε\\(x, y\\) alone"),
    ("hard_coded_null", {"num_classes": 7}, "raised ValueError"),
    ("hard_coded_null", {"num_classes": 12}, "does not match"),
])
def test_lesson06_guided_eps_mistakes(capsys, mistake, kwargs, match):
    fails(capsys, checks.check_guided_eps, _l06_guided(mistake), match=match, **kwargs)


def test_lesson06_tiny_model_depends_on_the_label_and_keeps_the_global_rng():
    state = torch.random.get_rng_state()
    model = checks.tiny_conditional_unet(10, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 500])
    with torch.no_grad():
        e = [model(x, t, torch.full((2,), k)) for k in (0, 1, model.null_class)]
    assert e[0].abs().mean() > 0.01
    assert not torch.allclose(e[0], e[1]) and not torch.allclose(e[0], e[2])


def _l06_sampler(mistake=None):
    def fn(model, diffusion, x_T, y, w, num_steps):
        ts = diffusion.ddim_timesteps(num_steps if mistake != "all_steps" else diffusion.num_timesteps)
        pairs = list(zip(ts, ts[1:] + [-1]))
        if mistake == "early":
            pairs = pairs[:-1]
        x = x_T.clone() if mistake != "fresh_noise" else torch.randn_like(x_T)
        for t_int, t_prev in pairs:
            t = torch.full((x.shape[0],), t_int, dtype=torch.long)
            eps = _l06_guided_eps(model, x, t, y, 0.0 if mistake == "unguided" else w)
            x = diffusion.ddim_step(eps, x, t, t_prev).sample
        return x
    return fn


def test_lesson06_guided_sampler_right(capsys):
    run(checks.check_guided_sampler, _l06_sampler())
    run(checks.check_guided_sampler, _l06_sampler(), w=0.0, y=torch.tensor([0, 4, 9]), num_steps=5)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 2 and "✗" not in out.out


@pytest.mark.parametrize("mistake, match", [
    ("unguided", "unguided"), ("early", "one step early"), ("all_steps", "every step"),
    ("fresh_noise", "same x_T"),
])
def test_lesson06_guided_sampler_mistakes(capsys, mistake, match):
    fails(capsys, checks.check_guided_sampler, _l06_sampler(mistake), match=match)
