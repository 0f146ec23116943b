"""course_utils.score: the mixture's noised density integrates to 1 and matches samples of the forward process,
its autograd score matches finite differences, Tweedie's formula E[ε | x_t] = −√(1 − ᾱ)·∇ log q(x_t) holds between
the two independent computations (conditioning vs autograd) and against a Monte-Carlo regression, and Langevin
dynamics on the score reproduces each mode."""
import math

import pytest
import torch

from course_utils.score import GaussianMixture2D, langevin


@pytest.fixture
def gm():
    return GaussianMixture2D()


def test_density_integrates_to_one_and_matches_forward_samples(gm):
    h = 0.02
    ax = torch.arange(-5, 5, h, dtype=torch.float64)
    grid = torch.cartesian_prod(ax, ax)
    for abar in (1.0, 0.4):
        p = gm.log_prob(grid, abar).exp()
        assert float(p.sum() * h * h) == pytest.approx(1.0, abs=1e-4)
    g = torch.Generator().manual_seed(0)
    x0 = gm.sample(200_000, g)
    xt = math.sqrt(0.4) * x0 + math.sqrt(0.6) * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    # the fraction of forward samples in a box equals the density's mass there
    box = (xt[:, 0] > 0) & (xt[:, 0] < 0.5) & (xt[:, 1] > -0.5) & (xt[:, 1] < 0.5)
    inside = (grid[:, 0] > 0) & (grid[:, 0] < 0.5) & (grid[:, 1] > -0.5) & (grid[:, 1] < 0.5)
    mass = float(gm.log_prob(grid[inside], 0.4).exp().sum() * h * h)
    assert float(box.double().mean()) == pytest.approx(mass, abs=4e-3)


def test_score_matches_finite_differences(gm):
    x = torch.tensor([[0.1, 0.2], [-1.0, -0.5], [0.9, 1.3]], dtype=torch.float64)
    for abar in (1.0, 0.7, 0.05):
        s = gm.score(x, abar)
        e = 1e-6
        for j in range(2):
            d = torch.zeros(2, dtype=torch.float64)
            d[j] = e
            fd = (gm.log_prob(x + d, abar) - gm.log_prob(x - d, abar)) / (2 * e)
            assert torch.allclose(s[:, j], fd, rtol=1e-6, atol=1e-6)


def test_tweedie_conditioning_equals_scaled_score(gm):
    g = torch.Generator().manual_seed(1)
    x = 1.5 * torch.randn(50, 2, generator=g, dtype=torch.float64)
    for abar in (0.99, 0.5, 0.02):
        assert torch.allclose(gm.eps_posterior_mean(x, abar), -math.sqrt(1 - abar) * gm.score(x, abar), atol=1e-10)


def test_eps_posterior_mean_is_the_regression_of_the_noise(gm):
    """E[ε | x_t] minimises the squared error: the residual ε − E[ε | x_t] is uncorrelated with functions of x_t."""
    g = torch.Generator().manual_seed(2)
    abar = 0.3
    x0 = gm.sample(200_000, g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    xt = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps
    resid = eps - gm.eps_posterior_mean(xt, abar)
    assert resid.mean(0).abs().max() < 0.01
    for f in (xt[:, 0], xt[:, 1], xt[:, 0] * xt[:, 1], torch.tanh(3 * xt[:, 0])):
        assert (resid * f[:, None]).mean(0).abs().max() < 0.01
    # and it beats a plain linear predictor
    assert float((resid ** 2).mean()) < float(((eps - math.sqrt(1 - abar) * xt) ** 2).mean())


def test_langevin_samples_each_mode(gm):
    """Each mode's Langevin samples have that component's mean and covariance. (How many land in each mode is set
    mostly by where the chains start: crossing between modes is rare at a small step — the weakness that noise
    levels, annealed or diffused, repair. So the fractions are only checked loosely.)"""
    g = torch.Generator().manual_seed(3)
    x = langevin(lambda z: gm.score(z), 2 * torch.randn(4000, 2, generator=g, dtype=torch.float64), 0.002, 1000, g)
    nearest = torch.stack([-((x - m) ** 2).sum(1) for m in gm.means], 1).argmax(1)
    for i in range(3):
        xi = x[nearest == i]
        assert abs(len(xi) / len(x) - float(gm.weights[i])) < 0.1
        assert torch.allclose(xi.mean(0), gm.means[i], atol=0.03)
        assert torch.allclose(torch.cov(xi.T), gm.covs[i], atol=0.015)


def test_bad_input_is_named(gm):
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        gm.log_prob(torch.zeros(3))
    with pytest.raises(ValueError, match=r"a number in \(0, 1\]"):
        gm.score(torch.zeros(1, 2, dtype=torch.float64), 0.0)
    with pytest.raises(ValueError, match="no noise to predict"):
        gm.eps_posterior_mean(torch.zeros(1, 2, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="positive-definite"):
        GaussianMixture2D(means=[[0, 0]], covs=[[[1, 0], [0, -1]]], weights=[1.0])
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture2D(means=[[0, 0], [1, 1]], covs=[[[1, 0], [0, 1]]] * 2, weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="step must be a positive number"):
        langevin(gm.score, torch.zeros(1, 2, dtype=torch.float64), 0, 3)
