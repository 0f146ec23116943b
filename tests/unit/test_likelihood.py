"""course_utils.likelihood: λ_t against plain float64 arithmetic and sympy, loss_vlb against L_simple and the KL
it stands for, the discretised decoder against torch.distributions' cdf, and bits_per_dim against the exact 1-D
ELBO of course_utils.elbo (a point mass and a wrong linear model, exact and Monte-Carlo)."""
import math

import pytest
import torch
from torch import nn

from course_utils.diffusion import GaussianDiffusion
from course_utils.elbo import elbo_terms_1d
from course_utils.likelihood import (NUM_LEVELS, bits_per_dim, discretized_gaussian_log_likelihood, loss_vlb,
                                     quantize, reverse_variances, vlb_weights)
from course_utils.schedules import linear_betas

LEVELS = torch.linspace(-1, 1, NUM_LEVELS, dtype=torch.float64)


def _betas(T=6):
    return linear_betas(T, 0.05, 0.3)


def test_weights_match_the_formula_in_plain_float64_and_sympy():
    sympy = pytest.importorskip("sympy")
    d = GaussianDiffusion(_betas(), variance="beta_tilde")
    betas = [float(b) for b in d.betas.double()]            # the stored (float32) betas, then python floats
    abar, prod = [], 1.0
    for b in betas:
        prod *= 1 - b
        abar.append(prod)
    tilde = [betas[t] * ((1 - abar[t - 1]) if t else 0.0) / (1 - abar[t]) for t in range(len(betas))]
    sig = {"beta": betas, "beta_tilde": [tilde[1]] + tilde[1:]}
    for variance, s2 in sig.items():
        lam = [betas[t] ** 2 / (2 * s2[t] * (1 - betas[t]) * (1 - abar[t])) for t in range(len(betas))]
        assert torch.allclose(vlb_weights(d, variance), torch.tensor(lam, dtype=torch.float64), rtol=1e-12)
        assert torch.allclose(reverse_variances(d, variance), torch.tensor(s2, dtype=torch.float64), rtol=1e-12)
    # with σ² = β, λ_t simplifies to β_t / (2 α_t (1 − ᾱ_t)); sympy confirms the algebra at t = 2 exactly
    b0, b1, b2 = sympy.symbols("b0 b1 b2", positive=True)
    ab2 = (1 - b0) * (1 - b1) * (1 - b2)
    lam_sym = b2 ** 2 / (2 * b2 * (1 - b2) * (1 - ab2))
    assert sympy.simplify(lam_sym - b2 / (2 * (1 - b2) * (1 - ab2))) == 0
    val = float(lam_sym.subs({b0: betas[0], b1: betas[1], b2: betas[2]}))
    assert math.isclose(float(vlb_weights(d, "beta")[2]), val, rel_tol=1e-12)
    # the default variance is the schedule's own
    assert torch.equal(vlb_weights(d), vlb_weights(d, "beta_tilde"))


class _Lin(nn.Module):
    """ε_θ(x, t) = p[t]·x + q[t], a model whose terms have closed forms."""

    def __init__(self, p, q):
        super().__init__()
        self.register_buffer("p", torch.as_tensor(p, dtype=torch.float64))
        self.register_buffer("q", torch.as_tensor(q, dtype=torch.float64))

    def forward(self, x, t, y=None):
        shape = (-1,) + (1,) * (x.dim() - 1)
        return (self.p[t].reshape(shape) * x + self.q[t].reshape(shape)).to(x.dtype)


def test_loss_vlb_with_unit_weights_is_loss_simple_and_weights_the_kl():
    torch.manual_seed(0)
    d = GaussianDiffusion(_betas(), variance="beta")
    T = d.num_timesteps
    conv = nn.Conv2d(1, 1, 3, padding=1)

    def model(x, t, y=None):
        return conv(x) * (1 + t.reshape(-1, 1, 1, 1) / T)
    x0 = torch.rand(5, 1, 4, 4) * 2 - 1
    simple = d.loss_simple(model, x0, generator=torch.Generator().manual_seed(3))
    ones = loss_vlb(model, d, x0, None, torch.Generator().manual_seed(3), weights=torch.ones(T))
    assert torch.allclose(simple, ones, rtol=1e-6, atol=0)
    # at a fixed t ≥ 1: λ_t · mean (ε − ε_θ)² is the KL per pixel minus its θ-free constant
    for variance in ("beta", "beta_tilde"):
        d.variance = variance
        for t in range(1, T):
            noise = torch.randn(x0.shape)
            tt = torch.full((5,), t)
            got = loss_vlb(model, d, x0, t=tt, noise=noise)
            xt = d.q_sample(x0, tt, noise=noise).double()
            with torch.no_grad():
                eps = model(xt.float(), tt).double()
            mq, vq = d.q_posterior(x0.double(), xt, tt)
            mp, _, _ = d.p_mean_variance(eps, xt, tt)
            s2 = float(reverse_variances(d)[t])
            kl_mean = float((mq - mp).pow(2).mean()) / (2 * s2)                 # the KL's θ-dependent part
            assert math.isclose(float(got.detach()), kl_mean, rel_tol=1e-4)


def test_discretised_decoder_sums_to_one_and_matches_normal_cdf_differences():
    normal = torch.distributions.Normal
    for mean, var in ((0.0, 1e-4), (0.3, 0.01), (-0.97, 0.04), (1.2, 0.5), (0.5, 1e-6)):
        logp = discretized_gaussian_log_likelihood(LEVELS, torch.tensor(mean, dtype=torch.float64), var)
        assert math.isclose(float(logp.exp().sum()), 1.0, rel_tol=1e-9)
        n = normal(torch.tensor(mean, dtype=torch.float64), torch.tensor(var, dtype=torch.float64).sqrt())
        edges = torch.cat([torch.tensor([-math.inf]), (LEVELS[:-1] + LEVELS[1:]) / 2, torch.tensor([math.inf])])
        direct = n.cdf(edges[1:]) - n.cdf(edges[:-1])
        big = direct > 1e-6
        assert torch.allclose(logp.exp(), direct, atol=1e-12)
        assert torch.allclose(logp[big], direct[big].log(), rtol=1e-7, atol=1e-9)
    # one pixel far into a tail stays finite (log-space) and agrees with the Mills-ratio asymptote
    lp = discretized_gaussian_log_likelihood(torch.tensor([1.0]), torch.tensor(-1.0), 1e-3)
    z = (1 - 1 / 255 + 1) / math.sqrt(1e-3)
    assert math.isclose(float(lp), -z * z / 2 - math.log(z * math.sqrt(2 * math.pi)), rel_tol=1e-3)


def test_bits_per_dim_of_a_point_mass_with_the_true_noise_matches_the_exact_1d_elbo():
    """Data = one 8-bit level c; ε_θ(x, t) = (x − √ᾱ_t c)/√(1 − ᾱ_t) is the true noise, so every term is
    deterministic: L_T and the KL terms equal course_utils.elbo's, and L_0 is −log of the bin's mass of
    N(c, σ_0²), −log erf(h / (σ_0 √2)) with h = 1/255."""
    betas = _betas()
    c = float(LEVELS[160])
    for variance in ("beta", "beta_tilde"):
        d = GaussianDiffusion(betas, variance=variance)
        b = d.betas.double()
        abar = torch.cumprod(1 - b, 0)
        p, q = 1 / (1 - abar).sqrt(), -abar.sqrt() * c / (1 - abar).sqrt()
        x0 = torch.full((3, 1, 1, 1), c)
        r = bits_per_dim(_Lin(p, q), d, x0, generator=torch.Generator().manual_seed(0))
        assert r.exact and r.L_mid.shape == (3, 5) and torch.equal(r.weights, torch.ones(5, dtype=torch.float64))
        # the same reverse model as a linear-Gaussian chain: μ_θ = (x − β/√(1−ᾱ) ε_θ)/√α = a x + b
        alphas = 1 - b
        a_lin = (1 - b * p / (1 - abar).sqrt()) / alphas.sqrt()
        b_lin = -b * q / ((1 - abar).sqrt() * alphas.sqrt())
        s = reverse_variances(d)
        L_T, L_mid, _ = elbo_terms_1d(c, b, a_lin, b_lin, s)
        ln2 = math.log(2)
        assert torch.allclose(r.L_T, L_T.expand(3) / ln2, rtol=1e-5)
        assert torch.allclose(r.L_mid, L_mid.expand(3, -1) / ln2, rtol=1e-5, atol=1e-9)
        L0 = -math.log(math.erf(1 / 255 / math.sqrt(2 * float(s[0])))) / ln2
        assert torch.allclose(r.L_0, torch.full((3,), L0, dtype=torch.float64), rtol=1e-5)
        assert torch.allclose(r.total, r.L_T + r.L_mid.sum(1) + r.L_0)


def test_bits_per_dim_of_a_wrong_model_matches_the_exact_expectation_by_monte_carlo():
    """A linear ε_θ that is off: the KL terms depend on the sampled x_t; their mean over many images agrees with
    elbo_terms_1d's exact expectation, and the stratified estimate (K < T − 1) agrees with the exact sum."""
    betas = _betas(8)
    d = GaussianDiffusion(betas, variance="beta_tilde")
    b = d.betas.double()
    abar = torch.cumprod(1 - b, 0)
    c = float(LEVELS[60])
    p = 0.8 / (1 - abar).sqrt()
    q = -abar.sqrt() * c / (1 - abar).sqrt() + 0.3
    model = _Lin(p, q)
    alphas = 1 - b
    a_lin = (1 - b * p / (1 - abar).sqrt()) / alphas.sqrt()
    b_lin = -b * q / ((1 - abar).sqrt() * alphas.sqrt())
    _, L_mid, _ = elbo_terms_1d(c, b, a_lin, b_lin, reverse_variances(d))
    exact = L_mid[0] / math.log(2)                                          # (T−1,) bits
    x0 = torch.full((20000, 1, 1, 1), c)
    r = bits_per_dim(model, d, x0, generator=torch.Generator().manual_seed(1))
    se = r.L_mid.std(0) / math.sqrt(x0.shape[0])
    assert ((r.L_mid.mean(0) - exact).abs() < 4 * se + 1e-9).all()
    est = bits_per_dim(model, d, x0, num_timesteps=3, generator=torch.Generator().manual_seed(2))
    assert est.L_mid.shape == (20000, 3) and not est.exact and float(est.weights.sum()) == 7
    mid = (est.L_mid * est.weights).sum(1)
    assert abs(float(mid.mean()) - float(exact.sum())) < 4 * float(mid.std()) / math.sqrt(20000)


def test_bad_input_names_the_argument():
    d = GaussianDiffusion(_betas())
    model = _Lin(torch.zeros(6), torch.zeros(6))
    x0 = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match="num_timesteps must be None"):
        bits_per_dim(model, d, x0, num_timesteps=0)
    with pytest.raises(ValueError, match="num_timesteps must be None"):
        bits_per_dim(model, d, x0, num_timesteps=6)
    with pytest.raises(ValueError, match="x0 must hold images scaled to"):
        bits_per_dim(model, d, x0 + 3)
    with pytest.raises(ValueError, match="variance must be one of"):
        bits_per_dim(model, d, x0, variance="learned")
    with pytest.raises(ValueError, match="weights must be a"):
        loss_vlb(model, d, x0, weights=torch.ones(5))
    with pytest.raises(ValueError, match="diffusion must be a"):
        loss_vlb(model, "linear", x0)
    with pytest.raises(ValueError, match="var must be > 0"):
        discretized_gaussian_log_likelihood(LEVELS, 0.0, 0.0)
    assert torch.allclose(quantize(torch.tensor([-1.0, 0.001, 0.999])),
                          torch.tensor([-1.0, 1 / 255, 1.0]), rtol=0, atol=1e-7)
