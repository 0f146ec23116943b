"""course_utils.origins: the ink drop — particles diffused by the DDPM step (or by Brownian motion).

Kinds: agreement with the closed form q(x_t | x_0) by Monte-Carlo (tolerances from the standard errors),
the equilibrium N(0, I), Brownian variance by an independent sum, shapes, seeding and the error messages.
"""
from __future__ import annotations

import math

import pytest
import torch

from course_utils.diffusion import GaussianDiffusion
from course_utils.origins import (first_step_within, ink_drop, ks_distance, marginal_stats, marginal_std,
                                  points_from_image)
from course_utils.schedules import linear_betas

X0 = torch.tensor([[0.9, -0.7], [-1.0, 0.2], [0.0, 1.0], [0.4, 0.4]], dtype=torch.float64)   # four particles
M = 4000                                                                                     # copies of each


def _copies(T: int, shrink: bool, seed: int = 0):
    """M copies of each of the four particles: (T + 1, M, 4, 2), so every particle's law can be measured."""
    betas = linear_betas(T, 1e-3, 0.05)
    points = X0.repeat(M, 1)                                           # (M·4, 2), particle i at rows i, i + 4, …
    tr = ink_drop(points, betas, generator=torch.Generator().manual_seed(seed), shrink=shrink)
    return betas, tr.reshape(T + 1, M, 4, 2)


@pytest.mark.parametrize("k", [1, 7, 30])
def test_each_particle_follows_q_xt_given_x0(k):
    """Row k is the paper's x_k: mean √ᾱ·x0 and variance 1 − ᾱ with ᾱ = alphas_cumprod[k − 1] (eq. 4)."""
    betas, tr = _copies(30, shrink=True)
    abar = float(GaussianDiffusion(betas).alphas_cumprod[k - 1])
    xs = tr[k]                                                         # (M, 4, 2)
    var = 1.0 - abar
    se_mean = math.sqrt(var / M)
    se_var = var * math.sqrt(2.0 / (M - 1))
    assert (xs.mean(dim=0) - math.sqrt(abar) * X0).abs().max() < 4.5 * se_mean
    assert (xs.var(dim=0) - var).abs().max() < 4.5 * se_var


def test_the_monte_carlo_check_detects_a_step_off_by_one():
    """The tolerance is tight enough to tell row k from the law of row k + 1 (a 0- vs 1-indexing slip)."""
    betas, tr = _copies(30, shrink=True)
    for k in (1, 7):                                                   # early, where one β is a large share
        abar_wrong = float(GaussianDiffusion(betas).alphas_cumprod[k - 2]) if k > 1 else 1.0   # one step short
        var_wrong = 1.0 - abar_wrong if k > 1 else 0.0
        se_var = (1.0 - float(GaussianDiffusion(betas).alphas_cumprod[k - 1])) * math.sqrt(2.0 / (M - 1))
        assert (tr[k].var(dim=0) - var_wrong).abs().min() > 4.5 * se_var


def test_row_zero_is_the_points_and_the_result_keeps_dtype_and_shape():
    pts = torch.randn(5, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    tr = ink_drop(pts, linear_betas(12), generator=torch.Generator().manual_seed(0))
    assert tr.shape == (13, 5, 2) and tr.dtype == torch.float64
    torch.testing.assert_close(tr[0], pts, rtol=0, atol=0)
    assert ink_drop(pts.float(), linear_betas(3)).dtype == torch.float32


def test_the_last_step_is_a_standard_normal():
    """T = 1000 linear steps from a structured cloud: N(0, I) (moments and KS to the 99 % level)."""
    n = 3000
    start = torch.stack([torch.linspace(-1, 1, n), torch.linspace(-1, 1, n) ** 2], dim=1)   # a parabola
    last = ink_drop(start, linear_betas(1000), generator=torch.Generator().manual_seed(5))[-1]
    stats = marginal_stats(last)
    assert stats["mean"].abs().max() < 4 / math.sqrt(n)
    assert (stats["std"] - 1).abs().max() < 4 / math.sqrt(2 * n)
    assert stats["ks"].max() < 1.63 / math.sqrt(n)                   # the KS 99 % critical value
    assert abs(float(torch.corrcoef(last.T)[0, 1])) < 4 / math.sqrt(n)  # x and y independent
    assert marginal_stats(start)["ks"].min() > 0.1                    # … and the start is far from it


def _ks_brute_force(s: torch.Tensor) -> float:
    """The supremum over the jumps of F_N, each side of each sample, by a Python loop."""
    n = len(s)
    best = 0.0
    for v in s.tolist():
        phi = 0.5 * (1 + math.erf(v / math.sqrt(2)))
        below = sum(u < v for u in s.tolist()) / n
        upto = sum(u <= v for u in s.tolist()) / n
        best = max(best, abs(upto - phi), abs(phi - below))
    return best


def test_ks_distance_agrees_with_an_independent_computation():
    s = torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.3 + 0.2
    d = ks_distance(s)
    assert d.shape == (2,)
    for j in range(2):
        assert float(d[j]) == pytest.approx(_ks_brute_force(s[:, j]), abs=1e-12)
    try:
        from scipy import stats
    except ImportError:
        pass
    else:
        assert float(d[0]) == pytest.approx(stats.kstest(s[:, 0].numpy(), "norm").statistic, abs=1e-12)
    assert float(ks_distance(s[:, 0])) == float(d[0])                # (N,) gives a 0-d tensor
    assert float(ks_distance(torch.tensor([0.0]))) == pytest.approx(0.5)


def test_without_the_shrink_the_variance_grows_as_sum_of_betas():
    """Brownian spreading: E[x_k] = x0 and E[x_k²] = x0² + Σ_{s<k} β_s, growing without a limit."""
    T = 30
    betas, tr = _copies(T, shrink=False, seed=1)
    for k in (5, 30):
        total = sum(float(b) for b in betas[:k])                       # independent: a plain Python sum
        var = total
        se_var = var * math.sqrt(2.0 / (M - 1))
        second = (tr[k] ** 2).mean(dim=0)                              # (4, 2)
        assert (second - (X0 ** 2 + total)).abs().max() < 4.5 * math.sqrt(2 * var ** 2 + 4 * var * 1.0) / math.sqrt(M)
        assert (tr[k].mean(dim=0) - X0).abs().max() < 4.5 * math.sqrt(var / M)
        assert (tr[k].var(dim=0) - var).abs().max() < 4.5 * se_var
    std = marginal_std(X0, betas, shrink=False)
    assert bool((std[1:] > std[:-1]).all())                            # it only grows
    assert float(std[-1, 0] ** 2) == pytest.approx(float(X0[:, 0].var(unbiased=False)) + float(betas.sum()))


def test_both_processes_draw_the_same_noise():
    """Same seed, same ε: after one step the two clouds differ by exactly (√(1 − β_0) − 1)·x0."""
    betas = linear_betas(5, 0.1, 0.2)
    a = ink_drop(X0, betas, generator=torch.Generator().manual_seed(9))
    b = ink_drop(X0, betas, generator=torch.Generator().manual_seed(9), shrink=False)
    alpha0 = float(GaussianDiffusion(betas).alphas[0])
    torch.testing.assert_close(a[1] - b[1], (math.sqrt(alpha0) - 1) * X0, rtol=0, atol=1e-6)


def test_generator_makes_it_reproducible():
    betas = linear_betas(20)
    one = ink_drop(X0, betas, generator=torch.Generator().manual_seed(4))
    two = ink_drop(X0, betas, generator=torch.Generator().manual_seed(4))
    other = ink_drop(X0, betas, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(one, two, rtol=0, atol=0)
    assert not torch.equal(one, other)


def test_marginal_std_is_the_closed_form_of_the_measured_spread():
    """The spread of a big cloud follows √(ᾱ·v0 + 1 − ᾱ) (and differs from the Brownian one)."""
    pts = points_from_image(_cross(), 8000, generator=torch.Generator().manual_seed(0))
    betas = linear_betas(200, 1e-3, 0.04)
    tr = ink_drop(pts, betas, generator=torch.Generator().manual_seed(2))
    measured = torch.stack([marginal_stats(tr[k])["std"] for k in (0, 20, 100, 200)])
    closed = marginal_std(pts, betas)[[0, 20, 100, 200]]
    assert closed.shape == (4, 2)
    assert (measured - closed).abs().max() < 4.5 / math.sqrt(2 * 8000)
    assert (marginal_std(pts, betas, shrink=False)[-1] - closed[-1]).abs().min() > 0.5


def test_first_step_within():
    std = torch.tensor([[0.5, 0.5], [0.96, 0.9], [0.96, 0.97], [1.0, 1.0]])
    assert first_step_within(std) == 2
    assert first_step_within(std, tol=0.5) == 0
    assert first_step_within(std[:2]) is None
    closed = marginal_std(X0, linear_betas(1000))
    k = first_step_within(closed)
    assert bool(((closed[k] - 1).abs() <= 0.05).all()) and not bool(((closed[k - 1] - 1).abs() <= 0.05).all())


def _cross():
    img = -torch.ones(1, 8, 8)
    img[0, 3:5, :] = 1.0
    img[0, :, 3:5] = 1.0
    return img


def test_points_from_image_fill_the_bright_pixels_upright():
    img = -torch.ones(4, 4)
    img[0, 3] = 1.0                                                    # top-right pixel only
    pts = points_from_image(img, 500, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (500, 2) and pts.dtype == torch.float32
    assert bool((pts[:, 0] >= 0.5).all() and (pts[:, 0] <= 1).all())  # x in the rightmost quarter
    assert bool((pts[:, 1] >= 0.5).all() and (pts[:, 1] <= 1).all())  # y in the top quarter (upright)
    assert float(pts.std(dim=0).min()) > 0.1                            # spread inside the pixel, not its centre
    cross = points_from_image(_cross()[None], 2000, generator=torch.Generator().manual_seed(1))
    assert bool((cross.abs() <= 1).all())
    corner = (cross.abs() > 0.3).all(dim=1)                            # the dark corners hold no ink
    assert not bool(corner.any())
    again = points_from_image(_cross(), 2000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cross, again, rtol=0, atol=0)


@pytest.mark.parametrize("call, message", [
    (lambda: ink_drop(torch.zeros(3), linear_betas(5)), "points must be a float tensor of shape (N, 2)"),
    (lambda: ink_drop(torch.zeros(3, 2, dtype=torch.long), linear_betas(5)), "points must be a float tensor"),
    (lambda: ink_drop(torch.zeros(0, 2), linear_betas(5)), "points must hold at least one particle"),
    (lambda: ink_drop(torch.full((2, 2), float("nan")), linear_betas(5)), "points holds NaN or inf"),
    (lambda: ink_drop(X0, [0.5, 1.5]), "betas"),
    (lambda: ink_drop(X0, linear_betas(5), shrink=1), "shrink must be True (the DDPM step"),
    (lambda: ink_drop(X0, linear_betas(5), generator=3), "generator must be a torch.Generator or None"),
    (lambda: marginal_std(X0, linear_betas(5), shrink="yes"), "shrink must be True"),
    (lambda: points_from_image(torch.zeros(2, 4, 4), 5), "image must be one float image of shape (H, W)"),
    (lambda: points_from_image(torch.zeros(4, 4), 0), "n, the number of particles, must be a positive int"),
    (lambda: points_from_image(torch.zeros(4, 4), True), "n, the number of particles"),
    (lambda: points_from_image(torch.zeros(4, 4), 5, threshold=1.0), "threshold must be a number in [-1, 1)"),
    (lambda: points_from_image(-torch.ones(4, 4), 5), "image has no pixel brighter than threshold=0.0"),
    (lambda: ks_distance(torch.zeros(0)), "samples must be a float tensor of shape (N,) or (N, D) with N ≥ 1"),
    (lambda: marginal_stats(torch.zeros(4, 3)), "points must be a float tensor of shape (N, 2)"),
    (lambda: first_step_within(torch.ones(4)), "std must be a float tensor of shape (T + 1, D)"),
    (lambda: first_step_within(torch.ones(4, 2), tol=0), "tol must be a relative tolerance in (0, 1)"),
])
def test_bad_inputs_name_the_argument(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
