"""GaussianDiffusion against independent computations: Monte-Carlo, brute-force Gaussian conditioning,
the lecture's iterative noising loop, and DDPM/DDIM identities."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.diffusion import (GaussianDiffusion, classifier_free_guidance, extract, gaussian_kl,
                                    guided_eps)
from course_utils.schedules import cosine_betas, linear_betas


@pytest.fixture(scope="module")
def diff():
    return GaussianDiffusion(linear_betas(1000))


# ------------------------------------------------------------------ buffers and conventions
def test_buffers_names_dtype_device(diff):
    names = ["betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
             "sqrt_one_minus_alphas_cumprod", "posterior_variance", "posterior_mean_coef1",
             "posterior_mean_coef2"]
    bufs = dict(diff.named_buffers())
    for n in names:
        assert bufs[n].dtype == torch.float32 and bufs[n].shape == (1000,), n
    assert diff.num_timesteps == 1000
    # ᾱ_{-1} = 1 and ᾱ_t is the running product (checked with python floats in float64)
    assert float(diff.alphas_cumprod_prev[0]) == 1.0
    prods = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    assert np.allclose(diff.alphas_cumprod.numpy(), prods, rtol=1e-5)
    assert np.allclose(diff.alphas_cumprod_prev[1:].numpy(), prods[:-1], rtol=1e-5)
    # buffers follow .to() and are in the state_dict
    assert "posterior_variance" in diff.state_dict()
    d64 = GaussianDiffusion(linear_betas(10)).to(torch.float64)
    assert d64.betas.dtype == torch.float64


def test_posterior_variance_is_beta_tilde_not_beta(diff):
    b = np.linspace(1e-4, 0.02, 1000)          # float64, independent of the module
    a = np.cumprod(1 - b)
    a_prev = np.concatenate([[1.0], a[:-1]])
    beta_tilde = (1 - a_prev) / (1 - a) * b
    assert np.allclose(diff.posterior_variance.numpy(), beta_tilde, rtol=1e-5, atol=0)
    assert float(diff.posterior_variance[0]) == 0.0          # t = 0: ᾱ_{-1} = 1
    assert torch.all(diff.posterior_variance[1:] < diff.betas[1:])


def test_extract_shape():
    a = torch.arange(10.0)
    t = torch.tensor([0, 3, 9])
    out = extract(a, t, (3, 2, 5, 5))
    assert out.shape == (3, 1, 1, 1) and out.flatten().tolist() == [0.0, 3.0, 9.0]
    assert extract(a, t, (3, 7)).shape == (3, 1)


# ------------------------------------------------------------------ q(x_t | x_0)
@pytest.mark.parametrize("t", [0, 10, 250, 999])
def test_q_sample_monte_carlo(diff, t):
    x0 = torch.tensor([[-1.0, -0.3, 0.2, 0.9]])  # (1, 4)
    n = 200_000
    g = torch.Generator().manual_seed(t)
    xt = diff.q_sample(x0.expand(n, 4).contiguous(), torch.full((n,), t), generator=g)
    a_bar = float(np.prod(1 - np.linspace(1e-4, 0.02, 1000)[: t + 1]))
    se = math.sqrt(1 - a_bar) / math.sqrt(n)
    assert torch.allclose(xt.mean(0), math.sqrt(a_bar) * x0[0], atol=5 * se + 1e-6)
    var = xt.var(0)
    assert torch.allclose(var, torch.full((4,), 1 - a_bar), rtol=0.02, atol=1e-7)


def test_q_sample_given_noise_is_eq4(diff, x0):
    t = torch.tensor([0, 5, 500, 999])
    eps = torch.randn_like(x0)
    xt = diff.q_sample(x0, t, noise=eps)
    a = torch.from_numpy(np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[t.numpy()]).view(-1, 1, 1, 1)
    ref = a.sqrt() * x0.double() + (1 - a).sqrt() * eps.double()
    assert torch.allclose(xt.double(), ref, atol=1e-6)
    mean, var = diff.q_mean_variance(x0, t)
    assert torch.allclose(mean.double(), a.sqrt() * x0.double(), atol=1e-6)
    assert torch.allclose(var.double(), 1 - a, atol=1e-6)


def test_iterative_chain_matches_closed_form_in_distribution():
    """The lecture's loop x = sqrt(1-β_t)·x + sqrt(β_t)·ε, run t+1 times, has the law of eq. 4."""
    T = 10
    B = torch.linspace(0.0001, 0.02, T, dtype=torch.float64)   # the deck's toy schedule
    d = GaussianDiffusion(B)
    n, t_stop = 400_000, 7
    x0 = torch.full((n, 1), 0.8, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    x = x0.clone()
    for t in range(t_stop + 1):
        noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
        x = torch.sqrt(1 - B[t]) * x + torch.sqrt(B[t]) * noise
    # the package's one-step q_step is the same loop: replay it with the same noises
    g_replay = torch.Generator().manual_seed(1)
    x_pkg = x0.float()
    for t in range(t_stop + 1):
        x_pkg = d.q_step(x_pkg, t, noise=torch.randn(x0.shape, generator=g_replay, dtype=torch.float64).float())
    assert torch.allclose(x_pkg.double(), x, atol=1e-5)
    closed = d.q_sample(x0.float(), torch.full((n,), t_stop), generator=g)
    assert abs(float(x.mean()) - float(closed.mean())) < 5 * math.sqrt(2 * float(x.var()) / n)
    assert float(x.var()) == pytest.approx(float(closed.var()), rel=0.02)
    # and both agree with the closed-form moments
    a_bar = float(torch.prod(1 - B[: t_stop + 1]))
    assert float(x.mean()) == pytest.approx(math.sqrt(a_bar) * 0.8, abs=1e-3)
    assert float(x.var()) == pytest.approx(1 - a_bar, rel=0.02)


def test_snr(diff):
    s = diff.snr(torch.tensor([0, 999]))
    a = diff.alphas_cumprod[[0, 999]]
    assert torch.allclose(s, a / (1 - a))
    assert diff.snr(3).shape == (1,)


# ------------------------------------------------------------------ q(x_{t-1} | x_t, x_0)
def _brute_force_posterior(x0, xt, t, betas):
    """Condition the joint Gaussian of (x_{t-1}, x_t) | x_0 with the generic formula (numpy, float64)."""
    alphas = 1 - betas
    a_bar = np.cumprod(alphas)
    a_prev = 1.0 if t == 0 else a_bar[t - 1]
    # x_{t-1} = √ᾱ_{t-1} x0 + √(1-ᾱ_{t-1}) ε1 ;  x_t = √α_t x_{t-1} + √β_t ε2
    mu = np.array([math.sqrt(a_prev) * x0, math.sqrt(a_bar[t]) * x0])
    A = np.array([[math.sqrt(1 - a_prev), 0.0],
                  [math.sqrt(alphas[t]) * math.sqrt(1 - a_prev), math.sqrt(betas[t])]])
    S = A @ A.T
    mean = mu[0] + S[0, 1] / S[1, 1] * (xt - mu[1])
    var = S[0, 0] - S[0, 1] ** 2 / S[1, 1]
    return mean, var


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("t", [0, 1, 37, 500, 999])
def test_posterior_against_brute_force_conditioning(schedule, t):
    betas = linear_betas(1000) if schedule == "linear" else cosine_betas(1000)
    d = GaussianDiffusion(betas)
    x0 = torch.tensor([[0.7], [-0.4]])
    xt = torch.tensor([[0.1], [-1.3]])
    mean, var = d.q_posterior(x0, xt, torch.full((2,), t))
    for i in range(2):
        m_ref, v_ref = _brute_force_posterior(float(x0[i]), float(xt[i]), t, betas.numpy())
        assert float(mean[i]) == pytest.approx(m_ref, abs=2e-5, rel=1e-4)
        assert float(var[i]) == pytest.approx(v_ref, abs=1e-8, rel=1e-4)


def test_posterior_monte_carlo():
    """Sample the forward chain, keep pairs whose x_t falls in a small window, compare x_{t-1}."""
    T = 50
    betas = linear_betas(T, 1e-3, 0.2)
    d = GaussianDiffusion(betas)
    t, x0_val, x_star, h = 20, 0.5, 0.3, 0.02
    n = 2_000_000
    g = torch.Generator().manual_seed(3)
    x0 = torch.full((n, 1), x0_val)
    x_prev = d.q_sample(x0, torch.full((n,), t - 1), generator=g)
    x_t = d.alphas[t].sqrt() * x_prev + d.betas[t].sqrt() * torch.randn(x_prev.shape, generator=g)
    keep = (x_t - x_star).abs() < h
    sel = x_prev[keep]
    mean, var = d.q_posterior(torch.tensor([[x0_val]]), torch.tensor([[x_star]]), torch.tensor([t]))
    assert sel.numel() > 5000
    assert float(sel.mean()) == pytest.approx(float(mean), abs=5 * math.sqrt(float(var) / sel.numel()) + 2e-3)
    assert float(sel.var()) == pytest.approx(float(var), rel=0.06)


def test_predict_x0_inverts_q_sample(diff, x0):
    t = torch.tensor([0, 10, 300, 900])
    eps = torch.randn_like(x0)
    xt = diff.q_sample(x0, t, noise=eps)
    assert torch.allclose(diff.predict_x0_from_eps(xt, t, eps), x0, atol=1e-3)
    assert torch.allclose(diff.predict_eps_from_x0(xt, t, x0), eps, atol=1e-3)


def test_posterior_mean_in_eps_form_equals_x0_form(diff, x0):
    """μ̃(x_t, x_0) = 1/√α_t (x_t − β_t/√(1−ᾱ_t) ε) when x_0 and ε are consistent (eq. 10 of Ho et al.)."""
    t = torch.tensor([1, 10, 300, 999])
    eps = torch.randn_like(x0)
    xt = diff.q_sample(x0, t, noise=eps)
    mean_x0, _ = diff.q_posterior(x0, xt, t)
    mean_eps, var, _ = diff.p_mean_variance(eps, xt, t)
    assert torch.allclose(mean_eps, mean_x0, atol=2e-4)


# ------------------------------------------------------------------ reverse steps
def _oracle_eps(d, x0_star):
    """ε that a perfect model would predict when the data is the single point x0_star."""
    def eps(xt, t):
        return d.predict_eps_from_x0(xt, t, x0_star.expand_as(xt))
    return eps


@pytest.mark.parametrize("t", [1, 100, 700])
def test_ddpm_step_with_oracle_preserves_marginals(t):
    """With a perfect ε and σ² = β̃, x_{t-1} ~ q(x_{t-1} | x_0) exactly (Monte-Carlo)."""
    d = GaussianDiffusion(linear_betas(1000))
    n = 200_000
    x0_star = torch.tensor([0.6])
    g = torch.Generator().manual_seed(t)
    xt = d.q_sample(x0_star.expand(n, 1).contiguous(), t, generator=g)
    eps = _oracle_eps(d, x0_star)(xt, torch.full((n,), t))
    x_prev, pred_x0 = d.step(eps, xt, t, generator=g)
    assert torch.allclose(pred_x0, x0_star.expand(n, 1), atol=2e-3)
    a_prev = float(d.alphas_cumprod[t - 1])
    assert float(x_prev.mean()) == pytest.approx(math.sqrt(a_prev) * 0.6, abs=5 * math.sqrt((1 - a_prev) / n) + 1e-4)
    assert float(x_prev.var()) == pytest.approx(1 - a_prev, rel=0.02)


def test_step_no_noise_at_t0_and_variance_choice(diff, x0):
    eps = torch.randn_like(x0)
    xt = torch.randn_like(x0)
    z1, z2 = torch.randn_like(x0), torch.randn_like(x0)
    a, _ = diff.step(eps, xt, 0, noise=z1)
    b, _ = diff.step(eps, xt, 0, noise=z2)
    assert torch.equal(a, b)                      # no noise at the last step
    t = torch.full((4,), 500)
    mean, _, _ = diff.p_mean_variance(eps, xt, t)
    for variance, table in [("beta_tilde", diff.posterior_variance), ("beta", diff.betas)]:
        out, _ = diff.step(eps, xt, t, noise=z1, variance=variance)
        assert torch.allclose(out, mean + table[500].sqrt() * z1, atol=1e-6)
    # the constructor setting is the default
    d_beta = GaussianDiffusion(linear_betas(1000), variance="beta")
    assert torch.allclose(d_beta.step(eps, xt, t, noise=z1)[0], diff.step(eps, xt, t, noise=z1, variance="beta")[0])


def test_step_returns_sample_then_pred_x0(diff, x0):
    eps = torch.randn_like(x0)
    t = torch.full((4,), 200)
    xt = diff.q_sample(x0, t, noise=eps)
    out = diff.step(eps, xt, t, noise=torch.zeros_like(x0))
    assert torch.allclose(out.pred_x0, x0, atol=1e-4)
    assert torch.equal(out[0], out.sample) and torch.equal(out[1], out.pred_x0)


def test_clipping_off_by_default_and_matches_posterior_when_inactive(diff, x0):
    t = torch.full((4,), 50)
    eps = torch.randn_like(x0)
    xt = diff.q_sample(x0 * 0.5, t, noise=eps)     # x0 well inside [-1, 1]: clipping is inactive
    z = torch.randn_like(x0)
    a, _ = diff.step(eps, xt, t, noise=z)
    b, _ = diff.step(eps, xt, t, noise=z, clip_x0=True)
    assert torch.allclose(a, b, atol=1e-4)
    big = diff.q_sample(torch.full_like(x0, 3.0), t, noise=eps)   # x0 = 3 is outside the data range
    _, px_off = diff.step(eps, big, t)
    _, px_on = diff.step(eps, big, t, clip_x0=True)
    assert px_off.max() > 2.5 and px_on.max() <= 1.0


def test_ddim_eta0_deterministic_and_exact_with_oracle():
    """η = 0 with a perfect ε keeps the same ε: x_{t_prev} = √ᾱ_prev x0 + √(1−ᾱ_prev) ε (eq. 12)."""
    d = GaussianDiffusion(cosine_betas(1000))
    x0_star = torch.tensor([[-0.25], [0.8]])
    eps0 = torch.tensor([[1.3], [-0.4]])
    t = torch.tensor([900, 400])
    t_prev = torch.tensor([400, -1])
    xt = d.q_sample(x0_star, t, noise=eps0)
    eps = d.predict_eps_from_x0(xt, t, x0_star)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    a, _ = d.ddim_step(eps, xt, t, t_prev, eta=0.0, generator=g1)
    b, _ = d.ddim_step(eps, xt, t, t_prev, eta=0.0, generator=g2)
    assert torch.equal(a, b)
    expected0 = d.q_sample(x0_star[:1], torch.tensor([400]), noise=eps0[:1])
    assert torch.allclose(a[:1], expected0, atol=1e-4)
    assert torch.allclose(a[1:], x0_star[1:], atol=1e-4)      # t_prev = -1 means ᾱ = 1: the clean sample


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_preserves_marginals_for_any_eta(eta):
    """DDIM's defining property (Song et al. §4.1): with a perfect ε, x_{t_prev} ~ q(x_{t_prev} | x_0)."""
    d = GaussianDiffusion(linear_betas(1000))
    n, t, t_prev = 200_000, 800, 300
    x0_star = torch.tensor([0.5])
    g = torch.Generator().manual_seed(7)
    xt = d.q_sample(x0_star.expand(n, 1).contiguous(), t, generator=g)
    eps = d.predict_eps_from_x0(xt, torch.full((n,), t), x0_star.expand(n, 1))
    out, _ = d.ddim_step(eps, xt, t, t_prev, eta=eta, generator=g)
    a_prev = float(d.alphas_cumprod[t_prev])
    assert float(out.mean()) == pytest.approx(math.sqrt(a_prev) * 0.5, abs=5 * math.sqrt((1 - a_prev) / n) + 1e-3)
    assert float(out.var()) == pytest.approx(1 - a_prev, rel=0.02)


class LinearEps(nn.Module):
    """A deterministic stand-in for ε_θ that depends on x and t (and on y when given)."""

    null_class = 3

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.3))
        self.calls = 0

    def forward(self, x, t, y=None):
        self.calls += 1
        out = self.scale * x + 1e-3 * t.view(-1, *([1] * (x.ndim - 1))).float()
        if y is not None:
            out = out + 0.1 * y.view(-1, *([1] * (x.ndim - 1))).float()
        return out


def test_ddim_all_steps_eta1_equals_ddpm_beta_tilde():
    d = GaussianDiffusion(linear_betas(20, 1e-3, 0.2))
    model = LinearEps()
    shape = (3, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    xT = torch.randn(shape, generator=g)
    noises = [torch.randn(shape, generator=g) for _ in range(20)]
    x_ddpm = xT.clone()
    x_ddim = xT.clone()
    with torch.no_grad():
        for i, t in enumerate(range(19, -1, -1)):
            tt = torch.full((3,), t)
            x_ddpm, _ = d.step(model(x_ddpm, tt), x_ddpm, tt, noise=noises[i])
            x_ddim, _ = d.ddim_step(model(x_ddim, tt), x_ddim, tt, tt - 1, eta=1.0, noise=noises[i])
    assert torch.allclose(x_ddpm, x_ddim, atol=1e-4)
    assert d.ddim_timesteps(20) == list(range(19, -1, -1))


# ------------------------------------------------------------------ guidance
def test_guidance_formula():
    c, u = torch.randn(2, 3), torch.randn(2, 3)
    assert torch.equal(classifier_free_guidance(c, u, 0.0), c)
    assert torch.allclose(classifier_free_guidance(c, u, -1.0), u)
    w = 2.5
    assert torch.allclose(classifier_free_guidance(c, u, w), c + w * (c - u))   # extrapolation from ∅ past y
    with pytest.raises(ValueError, match="guidance weight"):
        classifier_free_guidance(c, u, float("nan"))
    with pytest.raises(ValueError, match="same shape"):
        classifier_free_guidance(c, u[:1], 1.0)


def test_guided_eps_uses_null_class_and_one_batched_call():
    m = LinearEps()
    x = torch.randn(2, 1, 4, 4)
    t = torch.tensor([5, 6])
    y = torch.tensor([1, 7])
    with torch.no_grad():
        expected = 3.0 * m(x, t, y) - 2.0 * m(x, t, torch.full_like(y, 3))
        m.calls = 0
        got = guided_eps(m, x, t, y, w=2.0)
    assert m.calls == 1 and torch.allclose(got, expected)
    with torch.no_grad():
        assert torch.equal(guided_eps(m, x, t, y, w=0.0), m(x, t, y))     # w = 0: plain conditional
        assert torch.equal(guided_eps(m, x, t, None, w=3.0), m(x, t))    # no label: unconditional


# ------------------------------------------------------------------ samplers
def test_p_sample_loop_progressive_and_reproducible():
    d = GaussianDiffusion(linear_betas(10))
    m = LinearEps()
    steps = list(d.p_sample_loop_progressive(m, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0),
                                             progress=False))
    assert [s.t for s in steps] == list(range(9, -1, -1))
    assert steps[-1].t_prev == -1 and steps[-1].sample.shape == (2, 1, 4, 4)
    a = d.p_sample_loop(m, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(a, steps[-1].sample)
    c = d.p_sample_loop(m, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1), progress=False)
    assert not torch.equal(a, c)
    assert m.training          # the sampler restores the model's mode


def test_ddim_sample_loop_steps_and_labels():
    d = GaussianDiffusion(linear_betas(100))
    m = LinearEps()
    steps = list(d.ddim_sample_loop_progressive(m, (2, 1, 4, 4), num_steps=5, y=2, w=1.5, progress=False,
                                                generator=torch.Generator().manual_seed(0)))
    assert [s.t for s in steps] == [99, 74, 50, 25, 0] and steps[-1].t_prev == -1
    assert torch.isfinite(steps[-1].sample).all()
    assert d.ddim_timesteps(1) == [99]


def test_loss_simple_compares_eps():
    d = GaussianDiffusion(linear_betas(10))

    class Oracle(nn.Module):
        def forward(self, xt, t):
            return self.noise

    m = Oracle()
    x0 = torch.rand(3, 1, 4, 4) * 2 - 1
    m.noise = torch.randn_like(x0)
    assert float(d.loss_simple(m, x0, noise=m.noise)) == 0.0
    m.noise2 = m.noise
    loss = d.loss_simple(m, x0, noise=torch.zeros_like(x0))
    assert float(loss) == pytest.approx(float((m.noise ** 2).mean()), rel=1e-6)


def test_sample_timesteps_cover_full_range():
    d = GaussianDiffusion(linear_betas(5))
    t = d.sample_timesteps(5000, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and set(t.tolist()) == {0, 1, 2, 3, 4}


def test_gaussian_kl_against_monte_carlo():
    m1, v1, m2, v2 = 0.3, 0.5, -0.2, 1.7
    kl = float(gaussian_kl(torch.tensor(m1), torch.tensor(v1), torch.tensor(m2), torch.tensor(v2)))
    g = torch.Generator().manual_seed(0)
    x = m1 + math.sqrt(v1) * torch.randn(1_000_000, generator=g, dtype=torch.float64)
    logp = -0.5 * ((x - m1) ** 2 / v1 + math.log(2 * math.pi * v1))
    logq = -0.5 * ((x - m2) ** 2 / v2 + math.log(2 * math.pi * v2))
    assert kl == pytest.approx(float((logp - logq).mean()), abs=5e-3)
    assert float(gaussian_kl(0.0, 1.0, 0.0, 1.0)) == 0.0
    with pytest.raises(ValueError, match="variance"):
        gaussian_kl(0.0, -1.0, 0.0, 1.0)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("betas", [[0.0, 0.1], [0.5, 1.0], [], [[0.1]], "abc"])
def test_bad_betas(betas):
    with pytest.raises(ValueError):
        GaussianDiffusion(betas)


def test_bad_inputs(diff, x0):
    t = torch.zeros(4, dtype=torch.long)
    cases = [
        (lambda: diff.q_sample(x0, torch.full((4,), 1000)), "0-indexed"),
        (lambda: diff.q_sample(x0, torch.full((4,), -1)), r"\[0, 999\]"),
        (lambda: diff.q_sample(x0, torch.zeros(4)), "integer"),
        (lambda: diff.q_sample(x0, torch.zeros(3, dtype=torch.long)), r"shape \(B,\)"),
        (lambda: diff.q_sample(x0, torch.zeros(4, 1, dtype=torch.long)), r"shape \(B,\)"),
        (lambda: diff.q_sample((x0 * 127).to(torch.uint8), t), "floating-point"),
        (lambda: diff.q_sample(x0.numpy(), t), "torch.Tensor"),
        (lambda: diff.q_sample(x0, t, noise=torch.randn(4, 1, 4, 4)), "same shape"),
        (lambda: diff.q_posterior(x0, x0[:2], t), "same shape"),
        (lambda: diff.step(x0, x0, t, variance="sigma"), "variance"),
        (lambda: diff.ddim_step(x0, x0, torch.full((4,), 5), torch.full((4,), 5)), "t_prev must be smaller"),
        (lambda: diff.ddim_step(x0, x0, torch.full((4,), 5), torch.full((4,), -2)), r"\[-1, 999\]"),
        (lambda: diff.ddim_step(x0, x0, t + 5, t, eta=-1.0), "eta"),
        (lambda: diff.ddim_timesteps(0), "num_steps"),
        (lambda: diff.ddim_timesteps(1001), "num_steps"),
        (lambda: diff.p_sample_loop(LinearEps(), (4, 1, 0, 8), progress=False), "shape"),
        (lambda: guided_eps(LinearEps(), x0, t, y=torch.zeros(4), w=1.0), "integer tensor"),
        (lambda: guided_eps(LinearEps(), x0, t, y=torch.zeros(3, dtype=torch.long), w=1.0), "shape"),
        (lambda: diff.q_sample(x0, t, generator=42), "generator"),
    ]
    for fn, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            fn()


def test_blend_noise_mixes_one_fixed_level():
    """Lesson 01's fixed-level corruption: (1 − a)·x0 + a·ε; 0 is clean, 1 pure noise; bad levels raise."""
    from course_utils.diffusion import blend_noise

    g = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(2, 1, 4, 4, generator=g) * 2 - 1, torch.randn(2, 1, 4, 4, generator=g)
    torch.testing.assert_close(blend_noise(x0, eps, 0.0), x0)
    torch.testing.assert_close(blend_noise(x0, eps, 1.0), eps)
    torch.testing.assert_close(blend_noise(x0, eps, 0.3), 0.7 * x0 + 0.3 * eps)
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="level"):
            blend_noise(x0, eps, bad)
    with pytest.raises(ValueError, match="shape"):
        blend_noise(x0, eps[:1], 0.5)


# ------------------------------------------------------------------ respaced DDPM (Nichol & Dhariwal 2021, §4)
def _brute_force_skip_posterior(x0, xt, a_t, a_prev):
    """q(x_prev | x_t, x0) by Gaussian conditioning of the joint of (x_prev, x_t) given x0, where
    x_prev = √ᾱ_prev·x0 + √(1 − ᾱ_prev)·e1 and x_t = √(ᾱ_t/ᾱ_prev)·x_prev + √(1 − ᾱ_t/ᾱ_prev)·e2."""
    r = a_t / a_prev
    cov = math.sqrt(r) * (1 - a_prev)                         # Cov(x_prev, x_t)
    var_t = r * (1 - a_prev) + (1 - r)                        # = 1 − ᾱ_t
    mean = math.sqrt(a_prev) * x0 + cov / var_t * (xt - math.sqrt(a_t) * x0)
    return mean, (1 - a_prev) - cov ** 2 / var_t


@pytest.mark.parametrize("t,t_prev", [(999, 949), (500, 100), (37, 0), (10, 9), (5, -1)])
def test_respaced_step_is_the_skip_posterior_by_brute_force(t, t_prev):
    d = GaussianDiffusion(linear_betas(1000))
    x0 = torch.tensor([0.7, -0.4]).reshape(2, 1, 1, 1)
    xt = torch.tensor([0.1, -1.3]).reshape(2, 1, 1, 1)
    tt = torch.full((2,), t)
    eps = d.predict_eps_from_x0(xt, tt, x0)                  # a model whose x̂0 is exactly x0
    a_t = float(d.alphas_cumprod.double()[t])
    a_prev = float(d.alphas_cumprod.double()[t_prev]) if t_prev >= 0 else 1.0
    zero = torch.zeros_like(xt)
    mean = d.respaced_step(eps, xt, tt, torch.full((2,), t_prev), noise=zero).sample
    one = d.respaced_step(eps, xt, tt, torch.full((2,), t_prev), noise=torch.ones_like(xt)).sample
    beta_noise = d.respaced_step(eps, xt, tt, torch.full((2,), t_prev), noise=torch.ones_like(xt),
                                 variance="beta").sample
    for i in range(2):
        m_ref, v_ref = _brute_force_skip_posterior(float(x0[i]), float(xt[i]), a_t, a_prev)
        assert float(mean[i]) == pytest.approx(m_ref, abs=2e-5, rel=1e-4)
        if t_prev == -1:                                      # the last step adds no noise (and x̂0 = x0)
            assert float(one[i]) == float(mean[i]) == pytest.approx(float(x0[i]), abs=1e-5)
            continue
        assert float(one[i] - mean[i]) ** 2 == pytest.approx(v_ref, abs=1e-7, rel=1e-3)       # σ² = β̃'
        assert float(beta_noise[i] - mean[i]) ** 2 == pytest.approx(1 - a_t / a_prev, abs=1e-7, rel=1e-3)


def test_respaced_step_with_consecutive_t_is_the_ddpm_step_and_eta1_ddim_when_skipping():
    d = GaussianDiffusion(linear_betas(50, 1e-3, 0.2))
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(3, 1, 4, 4, generator=g) for _ in range(3))
    for t in (49, 20, 1, 0):
        tt = torch.full((3,), t)
        for variance in ("beta_tilde", "beta"):
            ref = d.step(eps, x, tt, noise=z, variance=variance).sample
            got = d.respaced_step(eps, x, tt, tt - 1, noise=z, variance=variance).sample
            assert torch.allclose(got, ref, atol=1e-5), (t, variance)
    for t, t_prev in ((49, 30), (30, 2), (2, -1)):
        tt, tp = torch.full((3,), t), torch.full((3,), t_prev)
        assert torch.allclose(d.respaced_step(eps, x, tt, tp, noise=z).sample,
                              d.ddim_step(eps, x, tt, tp, eta=1.0, noise=z).sample, atol=1e-5)


def test_p_sample_loop_num_steps_visits_the_respaced_timesteps():
    d = GaussianDiffusion(linear_betas(100))
    m = LinearEps()
    g = lambda: torch.Generator().manual_seed(0)                          # noqa: E731
    steps = list(d.p_sample_loop_progressive(m, (2, 1, 4, 4), generator=g(), progress=False, num_steps=10))
    assert [s.t for s in steps] == d.ddim_timesteps(10) and [s.t_prev for s in steps][-1] == -1
    full = d.p_sample_loop(m, (2, 1, 4, 4), generator=g(), progress=False)
    assert torch.equal(d.p_sample_loop(m, (2, 1, 4, 4), generator=g(), progress=False, num_steps=100), full)
    with pytest.raises(ValueError, match="num_steps"):
        d.p_sample_loop(m, (2, 1, 4, 4), progress=False, num_steps=0)
    with pytest.raises(ValueError, match="t_prev must be smaller"):
        d.respaced_step(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.tensor([3]), torch.tensor([3]))
