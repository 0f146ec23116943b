"""Schedules: golden values from the lecture and the papers, monotonicity, validation."""
import math

import pytest
import torch

from course_utils.schedules import alpha_tables, check_betas, cosine_betas, linear_betas, make_betas


def test_lecture_toy_schedule_T10():
    # The deck's "Getting Lost in the Noise": β = [0.0001, 0.0023, 0.0045, 0.0067, …, 0.0200], T = 10.
    b = linear_betas(10, 0.0001, 0.02)
    assert b.dtype == torch.float64 and b.shape == (10,)
    assert [round(float(v), 4) for v in b[:4]] == [0.0001, 0.0023, 0.0045, 0.0067]
    assert float(b[-1]) == pytest.approx(0.02)


def test_linear_ho_defaults_and_alpha_bar_small():
    b = linear_betas(1000)
    assert float(b[0]) == pytest.approx(1e-4) and float(b[-1]) == pytest.approx(0.02)
    d = torch.diff(b)
    assert torch.allclose(d, torch.full_like(d, (0.02 - 1e-4) / 999))
    # ᾱ_T = ∏(1-β) ≈ 4.0e-5 for Ho et al.'s schedule (computed here as exp Σ log).
    alpha_bar_T = math.exp(sum(math.log(1 - float(v)) for v in b))
    assert 3e-5 < alpha_bar_T < 5e-5


@pytest.mark.parametrize("T", [10, 100, 1000, 4000])
def test_cosine_matches_closed_form_alpha_bar(T):
    s = 0.008
    b = cosine_betas(T)
    alpha_bar = torch.cumprod(1 - b, 0)

    def f(t):  # Nichol & Dhariwal eq. 17, written independently with math
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    for t in [1, T // 4, T // 2, (3 * T) // 4]:
        assert float(alpha_bar[t - 1]) == pytest.approx(f(t) / f(0), rel=1e-9)
    assert float(b.max()) <= 0.999
    assert float(alpha_bar[-1]) < 1e-4           # the signal is gone at t = T
    assert torch.all(torch.diff(b) >= 0)         # β increases
    assert torch.all(torch.diff(alpha_bar) < 0)  # ᾱ decreases


def test_cosine_clips_last_beta():
    b = cosine_betas(1000)
    assert float(b[-1]) == pytest.approx(0.999)
    b2 = cosine_betas(1000, max_beta=0.5)
    assert float(b2.max()) == pytest.approx(0.5)


def test_cosine_keeps_more_signal_midway_than_linear():
    lin = torch.cumprod(1 - linear_betas(1000), 0)
    cos = torch.cumprod(1 - cosine_betas(1000), 0)
    assert cos[500] > lin[500]


def test_make_betas_dispatch():
    assert torch.equal(make_betas("cosine", 50), cosine_betas(50))
    with pytest.raises(ValueError, match="unknown schedule"):
        make_betas("quadratic", 10)


@pytest.mark.parametrize("T", [0, -3, 2.5, "10", True, None])
def test_bad_T(T):
    with pytest.raises(ValueError, match="T"):
        linear_betas(T)
    with pytest.raises(ValueError, match="T"):
        cosine_betas(T)


@pytest.mark.parametrize("bad", [[0.0, 0.1], [0.1, 1.0], [-0.1], [1.5], [float("nan")], [], [[0.1, 0.2]]])
def test_check_betas_rejects(bad):
    with pytest.raises(ValueError, match="beta|β"):
        check_betas(bad)


@pytest.mark.parametrize("kw", [dict(beta_start=0.0), dict(beta_end=1.0), dict(beta_start=-1e-3)])
def test_linear_bad_range(kw):
    with pytest.raises(ValueError, match="beta_"):
        linear_betas(10, **kw)


def test_cosine_bad_params():
    with pytest.raises(ValueError, match="max_beta"):
        cosine_betas(10, max_beta=1.0)
    with pytest.raises(ValueError, match="s must"):
        cosine_betas(10, s=-0.1)


def test_alpha_tables_against_a_running_product():
    """α_t, ᾱ_t and ᾱ_{t-1} (ᾱ_{-1} = 1) in float64, against a plain loop; bad schedules are refused the same way."""
    betas = [1e-4, 0.02, 0.3, 0.5]
    b, a, abar, abar_prev = alpha_tables(torch.tensor(betas, dtype=torch.float32))
    running, want, want_prev = 1.0, [], []
    for beta in torch.tensor(betas, dtype=torch.float32).double().tolist():
        want_prev.append(running)
        running *= 1.0 - beta
        want.append(running)
    assert all(x.dtype == torch.float64 and x.shape == (4,) for x in (b, a, abar, abar_prev))
    torch.testing.assert_close(a, 1 - b)
    torch.testing.assert_close(abar, torch.tensor(want, dtype=torch.float64), rtol=1e-15, atol=0)
    torch.testing.assert_close(abar_prev, torch.tensor(want_prev, dtype=torch.float64), rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="strictly inside"):
        alpha_tables([0.1, 1.0])
