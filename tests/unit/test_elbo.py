"""course_utils.elbo: the 1-D ELBO terms against a Monte-Carlo estimate of E_q[log q(x_{1:T}|x_0) − log p_θ(x_{0:T})]
from sampled forward trajectories, the exact log-likelihood against ancestral samples of the reverse chain, the
bound (−ELBO ≥ −log p_θ), and the optimal reverse model against Gaussian data's own density."""
import math

import pytest
import torch

from course_utils.elbo import elbo_parts_1d, elbo_terms_1d, log_likelihood_1d, optimal_reverse_1d
from course_utils.schedules import cosine_betas, linear_betas


def _normal_logpdf(x, m, v):
    return -0.5 * (math.log(2 * math.pi) + torch.log(torch.as_tensor(v, dtype=torch.float64)) + (x - m) ** 2 / v)


def _perturbed(betas, seed=0, mean=0.3, var=0.04):
    g = torch.Generator().manual_seed(seed)
    a, b, s = optimal_reverse_1d(betas, mean, var)
    T = betas.shape[0]
    return (a + 0.2 * s.sqrt() * torch.randn(T, generator=g, dtype=torch.float64),
            b + 0.2 * s.sqrt() * torch.randn(T, generator=g, dtype=torch.float64),
            s * (0.7 + 0.6 * torch.rand(T, generator=g, dtype=torch.float64)))


def _monte_carlo_negative_elbo(x0: float, betas, a, b, s, n=400_000, seed=1):
    """E_q[log q(x_{1:T} | x0) − log p_θ(x_{0:T})] from n forward trajectories, step by step (the definition,
    eq. 3 of Ho et al. 2020, not the split into terms). Returns (mean, standard error)."""
    g = torch.Generator().manual_seed(seed)
    betas = betas.double()
    T = betas.shape[0]
    x_prev = torch.full((n,), float(x0), dtype=torch.float64)
    total = torch.zeros(n, dtype=torch.float64)
    xs = [x_prev]
    for k in range(T):                       # forward: x_k = √α_k x_{k-1} + √β_k ε
        x = (1 - betas[k]).sqrt() * x_prev + betas[k].sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
        total += _normal_logpdf(x, (1 - betas[k]).sqrt() * x_prev, betas[k])          # log q(x_k | x_{k-1})
        xs.append(x)
        x_prev = x
    total -= _normal_logpdf(xs[-1], 0.0, 1.0)                                          # − log p(x_T)
    for k in range(T):                       # − log p_θ(x_{k-1} | x_k): xs[k] given xs[k + 1]
        total -= _normal_logpdf(xs[k], a[k] * xs[k + 1] + b[k], s[k])
    return float(total.mean()), float(total.std() / math.sqrt(n))


@pytest.mark.parametrize("betas", [linear_betas(6), cosine_betas(12)], ids=["linear6", "cosine12"])
def test_terms_sum_to_the_monte_carlo_negative_elbo(betas):
    a, b, s = _perturbed(betas)
    for x0 in (-0.4, 0.3):
        L_T, L_mid, L_0 = elbo_terms_1d(torch.tensor([x0]), betas, a, b, s)
        closed = float(L_T[0] + L_mid[0].sum() + L_0[0])
        mc, se = _monte_carlo_negative_elbo(x0, betas, a, b, s)
        assert abs(closed - mc) < 5 * se + 1e-9, (closed, mc, se)


def test_shapes_and_one_term_by_hand():
    betas = linear_betas(5).double()
    a, b, s = _perturbed(betas, seed=3)
    x0 = torch.tensor([0.1, -0.2, 0.5])
    L_T, L_mid, L_0 = elbo_terms_1d(x0, betas, a, b, s)
    assert L_T.shape == (3,) and L_mid.shape == (3, 4) and L_0.shape == (3,)
    assert L_mid.dtype == torch.float64
    # L_mid[:, 1] (k = 2) by numerical integration over x_2 of the KL of two Gaussians
    k = 2
    abar = torch.cumprod(1 - betas, 0)
    grid = torch.linspace(-8, 8, 200_001, dtype=torch.float64)
    for i in range(3):
        xk = abar[k].sqrt() * x0[i] + (1 - abar[k]).sqrt() * grid
        w = torch.exp(-0.5 * grid ** 2) / math.sqrt(2 * math.pi) * (grid[1] - grid[0])
        c1 = abar[k - 1].sqrt() * betas[k] / (1 - abar[k])
        c2 = (1 - betas[k]).sqrt() * (1 - abar[k - 1]) / (1 - abar[k])
        bt = (1 - abar[k - 1]) / (1 - abar[k]) * betas[k]
        m_post, m_model = c1 * x0[i] + c2 * xk, a[k] * xk + b[k]
        kl = 0.5 * (torch.log(s[k] / bt) + (bt + (m_post - m_model) ** 2) / s[k] - 1)
        assert float((kl * w).sum()) == pytest.approx(float(L_mid[i, k - 1]), rel=1e-6)


def test_log_likelihood_matches_ancestral_samples():
    betas = cosine_betas(8)
    a, b, s = _perturbed(betas, seed=5)
    g = torch.Generator().manual_seed(0)
    n = 400_000
    x = torch.randn(n, generator=g, dtype=torch.float64)
    for k in range(7, -1, -1):
        x = a[k] * x + b[k] + s[k].sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
    m, v = float(x.mean()), float(x.var())
    pts = torch.tensor([-0.3, 0.2, 0.9], dtype=torch.float64)
    ll = log_likelihood_1d(pts, a, b, s)
    assert torch.allclose(ll, _normal_logpdf(pts, m, v), atol=0.01)


@pytest.mark.parametrize("seed", range(4))
def test_the_bound_holds_and_is_tight_for_the_optimal_model(seed):
    betas = cosine_betas(50)              # ᾱ_{T-1} ≈ 0: q(x_T | x0) is nearly the prior N(0, 1)
    x0 = torch.linspace(-1, 1, 9)
    a, b, s = _perturbed(betas, seed=seed)
    L_T, L_mid, L_0 = elbo_terms_1d(x0, betas, a, b, s)
    gap = L_T + L_mid.sum(1) + L_0 + log_likelihood_1d(x0, a, b, s)
    assert bool((gap > 1e-6).all())                     # a model that is not the true reverse: a real gap
    a, b, s = optimal_reverse_1d(betas, 0.3, 0.04)
    L_T, L_mid, L_0 = elbo_terms_1d(x0, betas, a, b, s)
    gap = L_T + L_mid.sum(1) + L_0 + log_likelihood_1d(x0, a, b, s)
    # the true reverse process: the only slack left is the prior's mismatch (q(x_T) is not exactly N(0, 1))
    assert bool((gap >= -1e-9).all()) and float(gap.max()) < 1e-3
    data = _normal_logpdf(x0.double(), 0.3, 0.04)
    assert torch.allclose(log_likelihood_1d(x0, a, b, s), data, atol=1e-3)


def test_parts_are_the_terms():
    betas = linear_betas(7)
    a, b, s = _perturbed(betas)
    p = elbo_parts_1d(torch.tensor([0.2]), betas, a, b, s)
    assert torch.equal(p["L_mid"], elbo_terms_1d(torch.tensor([0.2]), betas, a, b, s)[1])


def test_bad_input_is_named():
    betas = linear_betas(4)
    a, b, s = optimal_reverse_1d(betas, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"a must have shape \(T,\) = \(4,\)"):
        elbo_terms_1d(0.1, betas, a[:3], b, s)
    with pytest.raises(ValueError, match="every entry must be > 0"):
        elbo_terms_1d(0.1, betas, a, b, -s)
    with pytest.raises(ValueError, match="data's variance"):
        optimal_reverse_1d(betas, 0.0, 0.0)
    with pytest.raises(ValueError, match="one length"):
        log_likelihood_1d(0.1, a, b[:2], s)
