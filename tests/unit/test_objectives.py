"""min-SNR-γ weighting, v- and x0-prediction (course_utils.objectives) against computations written out here."""
import math

import pytest
import torch

from course_utils.diffusion import GaussianDiffusion
from course_utils.objectives import (EpsFromV, EpsFromX0, loss_min_snr, loss_v, loss_x0, min_snr_weights,
                                     v_target)
from course_utils.schedules import cosine_betas, linear_betas


def _alphas_bar(betas):
    out, prod = [], 1.0
    for b in betas:
        prod *= 1.0 - float(b)
        out.append(prod)
    return out


@pytest.mark.parametrize("make", [lambda: linear_betas(1000), lambda: cosine_betas(200)])
def test_min_snr_weights_match_the_products_of_the_betas(make):
    betas = make()
    d = GaussianDiffusion(betas)
    w = min_snr_weights(d, gamma=5.0)
    for t in (0, 1, 10, len(betas) // 3, len(betas) - 1):
        a = _alphas_bar(betas)[t]
        snr = a / (1 - a)
        assert float(w[t]) == pytest.approx(min(snr, 5.0) / snr, rel=1e-5)
    assert w.shape == (len(betas),) and float(w.max()) <= 1.0 + 1e-6
    assert float(w[-1]) == pytest.approx(1.0) and float(w[0]) < 0.01      # clean steps are down-weighted


class _Const(torch.nn.Module):
    """A 'network' that returns a fixed tensor plus a multiple of its input: known errors."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x, t, y=None):
        return self.out + 0.3 * x


def test_min_snr_with_a_huge_gamma_is_l_simple_on_the_same_draws():
    d = GaussianDiffusion(linear_betas(100))
    x0 = torch.rand(6, 1, 4, 4) * 2 - 1
    net = _Const(torch.randn(6, 1, 4, 4))
    a = loss_min_snr(net, d, x0, generator=torch.Generator().manual_seed(3), gamma=1e12)
    b = d.loss_simple(net, x0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    t = torch.tensor([0, 5, 50, 99, 20, 1])
    eps = torch.randn(6, 1, 4, 4)
    xt = d.q_sample(x0, t, noise=eps)
    err = (net(xt, t) - eps) ** 2
    w = torch.tensor([min(s, 5.0) / s for s in (_alphas_bar(linear_betas(100))[i] / (1 - _alphas_bar(linear_betas(100))[i])
                                                for i in t.tolist())])
    direct = (w.view(-1, 1, 1, 1) * err).mean()
    torch.testing.assert_close(loss_min_snr(net, d, x0, t=t, noise=eps), direct.float(), rtol=1e-5, atol=1e-7)


def test_v_round_trip_gives_back_eps_and_x0():
    """With the true v, EpsFromV returns the ε that made x_t, and √ᾱ x_t − √(1−ᾱ) v is x0 (Salimans & Ho 2022)."""
    d = GaussianDiffusion(linear_betas(1000))
    torch.manual_seed(0)
    x0, eps = torch.rand(5, 1, 6, 6) * 2 - 1, torch.randn(5, 1, 6, 6)
    t = torch.tensor([0, 3, 400, 998, 999])
    xt = d.q_sample(x0, t, noise=eps)
    v = v_target(d, x0, eps, t)
    ab = torch.tensor([_alphas_bar(linear_betas(1000))[i] for i in t.tolist()]).view(-1, 1, 1, 1)
    torch.testing.assert_close(v, (ab.sqrt() * eps - (1 - ab).sqrt() * x0).float(), rtol=1e-5, atol=1e-5)
    model = EpsFromV(_Const(v - 0.3 * xt), d)
    torch.testing.assert_close(model(xt, t), eps, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close((ab.sqrt() * xt - (1 - ab).sqrt() * v).float(), x0, rtol=1e-4, atol=1e-4)


def test_loss_v_is_the_eps_error_of_the_wrapped_model_over_alpha_bar():
    """‖v − v̂‖² = ‖ε − ε̂‖² / ᾱ_t per sample, with ε̂ from EpsFromV: the v-loss weights the ε-loss by 1 + 1/SNR."""
    d = GaussianDiffusion(linear_betas(200))
    x0, eps = torch.rand(4, 1, 4, 4) * 2 - 1, torch.randn(4, 1, 4, 4)
    t = torch.tensor([2, 50, 120, 199])
    net = _Const(torch.randn(4, 1, 4, 4))
    xt = d.q_sample(x0, t, noise=eps)
    eps_err = ((EpsFromV(net, d)(xt, t) - eps) ** 2).mean(dim=(1, 2, 3))
    ab = torch.tensor([_alphas_bar(linear_betas(200))[i] for i in t.tolist()])
    expected = (eps_err.double() / ab).mean()
    assert float(loss_v(net, d, x0, t=t, noise=eps)) == pytest.approx(float(expected), rel=1e-4)
    assert math.isfinite(float(loss_v(net, d, x0, generator=torch.Generator().manual_seed(0))))


def test_eps_from_v_keeps_the_conditioning_and_samples():
    from course_utils.models import UNet

    d = GaussianDiffusion(linear_betas(50), clip_x0=True)
    net = UNet(channels=(8, 16), num_classes=3)
    wrapped = EpsFromV(net, d)
    assert wrapped.null_class == net.null_class
    out = d.ddim_sample_loop(wrapped, (3, 1, 8, 8), num_steps=4, y=torch.tensor([0, 1, 2]), w=2.0,
                             generator=torch.Generator().manual_seed(0), progress=False)
    assert out.shape == (3, 1, 8, 8) and torch.isfinite(out).all()


def test_x0_round_trip_gives_back_eps():
    """With the true x0, EpsFromX0 returns the ε that made x_t = √ᾱ x0 + √(1−ᾱ) ε (ᾱ from a product written out
    here), at the first and last timesteps too."""
    d = GaussianDiffusion(linear_betas(1000))
    torch.manual_seed(0)
    x0, eps = torch.rand(5, 1, 6, 6) * 2 - 1, torch.randn(5, 1, 6, 6)
    t = torch.tensor([0, 3, 400, 998, 999])
    ab = torch.tensor([_alphas_bar(linear_betas(1000))[i] for i in t.tolist()], dtype=torch.float64).view(-1, 1, 1, 1)
    xt = (ab.sqrt() * x0.double() + (1 - ab).sqrt() * eps.double()).float()
    model = EpsFromX0(_Const(x0 - 0.3 * xt), d)
    torch.testing.assert_close(model(xt, t), eps, rtol=1e-3, atol=1e-3)


def test_loss_x0_is_the_eps_error_of_the_wrapped_model_over_snr():
    """‖x0 − x̂0‖² = ‖ε − ε̂‖² / SNR_t per sample, with ε̂ from EpsFromX0: x0-prediction weights the ε-loss by 1/SNR,
    and a network that returns the true x0 has zero loss."""
    d = GaussianDiffusion(linear_betas(200))
    x0, eps = torch.rand(4, 1, 4, 4) * 2 - 1, torch.randn(4, 1, 4, 4)
    t = torch.tensor([2, 50, 120, 199])
    net = _Const(torch.randn(4, 1, 4, 4))
    xt = d.q_sample(x0, t, noise=eps)
    eps_err = ((EpsFromX0(net, d)(xt, t) - eps) ** 2).mean(dim=(1, 2, 3)).double()
    ab = torch.tensor([_alphas_bar(linear_betas(200))[i] for i in t.tolist()], dtype=torch.float64)
    expected = (eps_err * (1 - ab) / ab).mean()
    assert float(loss_x0(net, d, x0, t=t, noise=eps)) == pytest.approx(float(expected), rel=1e-4)
    assert float(loss_x0(_Const(x0 - 0.3 * xt), d, x0, t=t, noise=eps)) == pytest.approx(0.0, abs=1e-10)
    assert math.isfinite(float(loss_x0(net, d, x0, generator=torch.Generator().manual_seed(0))))


def test_eps_from_x0_keeps_the_conditioning_and_samples():
    from course_utils.models import UNet

    d = GaussianDiffusion(linear_betas(50), clip_x0=True)
    net = UNet(channels=(8, 16), num_classes=3)
    wrapped = EpsFromX0(net, d)
    assert wrapped.null_class == net.null_class and wrapped.config is net.config
    out = d.ddim_sample_loop(wrapped, (3, 1, 8, 8), num_steps=4, y=torch.tensor([0, 1, 2]), w=2.0,
                             generator=torch.Generator().manual_seed(0), progress=False)
    assert out.shape == (3, 1, 8, 8) and torch.isfinite(out).all()


def test_bad_input_is_named():
    d = GaussianDiffusion(linear_betas(10))
    with pytest.raises(ValueError, match="gamma"):
        min_snr_weights(d, gamma=0)
    with pytest.raises(ValueError, match="GaussianDiffusion"):
        min_snr_weights(linear_betas(10))
    with pytest.raises(ValueError, match="GaussianDiffusion"):
        EpsFromX0(torch.nn.Identity(), linear_betas(10))
    with pytest.raises(ValueError, match="eps must have"):
        v_target(d, torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 3), torch.tensor([0, 1]))
