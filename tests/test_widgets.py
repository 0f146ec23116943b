"""course_utils.widgets: the lesson 02 explorer, driven from Python as a learner's slider would drive it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.diffusion import GaussianDiffusion
from course_utils.schedules import make_betas

pytest.importorskip("ipywidgets")
from course_utils.widgets import forward_diffusion_explorer  # noqa: E402

T = 50


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 1, 6, 6, generator=g) * 2 - 1


@pytest.fixture
def explorer(images):
    return forward_diffusion_explorer(images, T=T, seed=4)


def shown(ex) -> np.ndarray:
    return np.ma.getdata(ex.image_artist.get_array()).copy()


def test_slider_changes_the_displayed_image(explorer):
    before, png_before, renders = shown(explorer), bytes(explorer.image.value), explorer.renders
    assert png_before.startswith(b"\x89PNG")
    explorer.slider.value = 30                       # what dragging the slider does
    after = shown(explorer)
    assert explorer.renders == renders + 1
    assert not np.allclose(np.nan_to_num(after), np.nan_to_num(before))
    np.testing.assert_array_equal(after, explorer.frames["linear"][30].numpy())
    png_after = bytes(explorer.image.value)
    assert png_after != png_before and png_after.startswith(b"\x89PNG")
    a_bar = float(explorer.alphas_cumprod["linear"][30])
    xs, ys = explorer.marker.get_data()
    assert list(xs) == [30] and ys[0] == pytest.approx(a_bar)
    assert "t = 30 (paper step 31)" in explorer.title.get_text()
    np.testing.assert_allclose(explorer.hist_artist.get_data().values, explorer.hists["linear"][30].numpy())


def test_toggle_switches_schedule(explorer):
    explorer.slider.value = 20
    linear_img = shown(explorer)
    explorer.toggle.value = "cosine"
    np.testing.assert_array_equal(shown(explorer), explorer.frames["cosine"][20].numpy())
    assert not np.allclose(np.nan_to_num(shown(explorer)), np.nan_to_num(linear_img))
    np.testing.assert_allclose(explorer.curve.get_ydata(),
                               GaussianDiffusion(make_betas("cosine", T)).alphas_cumprod.numpy())
    assert explorer.title.get_text().startswith("cosine schedule, t = 20")


def test_frames_are_q_sample_with_one_fixed_noise(images, explorer):
    """Image i of frame t is x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε with the same ε for every t."""
    eps = torch.randn(images.shape, generator=torch.Generator().manual_seed(4))
    W = images.shape[-1]
    for kind in ("linear", "cosine"):
        d = GaussianDiffusion(make_betas(kind, T))
        for t in (0, 17, T - 1):
            want = d.q_sample(images, t, noise=eps)
            strip = explorer.frames[kind][t]
            assert strip.shape == (6, 3 * (W + 1) - 1)
            for i in range(3):
                torch.testing.assert_close(strip[:, i * (W + 1):i * (W + 1) + W], want[i, 0])
            assert torch.isnan(strip[:, W]).all()            # the gap between two images


def test_histograms_are_densities_that_end_near_a_standard_normal():
    g = torch.Generator().manual_seed(1)
    ex = forward_diffusion_explorer(torch.rand(8, 1, 16, 16, generator=g) * 2 - 1, T=1000)
    width = float(ex.edges[1] - ex.edges[0])
    for kind in ("linear", "cosine"):
        h = ex.hists[kind]
        mass = h.sum(1) * width
        assert torch.all(mass <= 1 + 1e-5) and torch.all(mass > 0.99)   # nearly all pixels within ±4
        centres = (ex.edges[:-1] + ex.edges[1:]) / 2
        pdf = torch.exp(-centres ** 2 / 2) / (2 * torch.pi) ** 0.5
        assert float((h[-1] - pdf).abs().max()) < 0.08                 # 2048 pixels at t = T-1
        assert float((h[0] - pdf).abs().max()) > 0.1                     # uniform images at t = 0


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        forward_diffusion_explorer(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="grey"):
        forward_diffusion_explorer(torch.zeros(2, 3, 4, 4), T=5)
    with pytest.raises(ValueError, match="unknown schedule"):
        forward_diffusion_explorer(torch.zeros(2, 1, 4, 4), T=5, schedules=("linear", "quadratic"))


def test_importing_the_package_needs_no_jupyter():
    code = ("import sys, course_utils, course_utils.widgets, course_utils.checks, course_utils.grading, "
            "course_utils.colab; bad = [m for m in ('ipywidgets', 'IPython', 'nbgrader', 'matplotlib') "
            "if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


WIDGET_API_7_AND_8 = {"IntSlider", "ToggleButtons", "Image", "HBox", "VBox", "Layout"}


def test_uses_only_ipywidgets_api_common_to_7_and_8():
    """Colab ships ipywidgets 7.x: every `widgets.X` used must exist, with the same name, in 7.7 and 8."""
    src = Path(sys.modules["course_utils.widgets"].__file__).read_text(encoding="utf-8")
    used = {n.attr for n in ast.walk(ast.parse(src))
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "widgets"}
    assert used and used <= WIDGET_API_7_AND_8, used - WIDGET_API_7_AND_8


# ------------------------------------------------------------------ lesson 03: the posterior explorer
from course_utils.widgets import GaussianMixture1D, empirical_posterior, posterior_explorer  # noqa: E402


@pytest.fixture(scope="module")
def post_explorer():
    return posterior_explorer(make_betas("cosine", 6), x0_values=(-0.5, 0.5), n=20000, seed=1)


def test_posterior_sliders_change_the_display(post_explorer):
    ex = post_explorer
    before, png, renders = ex.known_artist.get_data().values.copy(), bytes(ex.image.value), ex.renders
    ex.t_slider.value = 4
    assert ex.renders == renders + 1 and bytes(ex.image.value) != png
    f = ex.frames[(4, 0)]
    np.testing.assert_allclose(ex.known_artist.get_data().values, f["known"].numpy())
    assert not np.allclose(ex.known_artist.get_data().values, before)
    ex.x0_slider.value = 1
    assert ex.x0 == 0.5 and ex.x0_line.get_xdata()[0] == 0.5
    assert "t = 4 (paper step 5), x0 = 0.50" in ex.title.get_text()
    # the curve is N(μ̃_t, β̃_t) of the package's q_posterior at the window's centre
    d = GaussianDiffusion(make_betas("cosine", 6))
    f = ex.frames[(4, 1)]
    mean, var = (float(v) for v in d.q_posterior(torch.tensor([0.5]), torch.tensor([f["xt"]]), 4))
    xs, ys = ex.pdf_line.get_data()
    np.testing.assert_allclose(ys, np.exp(-(xs - mean) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var), rtol=1e-4)


def test_empirical_posterior_matches_the_formula(post_explorer):
    """Monte-Carlo: the kept x_{t-1} have mean μ̃_t and variance β̃_t (t = 0: exactly x0)."""
    for (t, i), f in post_explorer.frames.items():
        s = f["samples"].double()
        assert len(s) > 200
        if t == 0:
            assert f["var"] == 0 and torch.allclose(s, torch.full_like(s, float(post_explorer.x0_values[i])))
            continue
        se = (f["var"] / len(s)) ** 0.5
        assert abs(float(s.mean()) - f["mean"]) < 5 * se + 0.02 * f["var"] ** 0.5, (t, i)
        assert abs(float(s.var()) / f["var"] - 1) < 0.15, (t, i)


def test_empirical_posterior_api():
    d = GaussianDiffusion(make_betas("linear", 10))
    g = torch.Generator().manual_seed(0)
    out = empirical_posterior(d, 5, GaussianMixture1D().sample(5000, g), 0.3, 0.05, 5000, g)
    assert out.ndim == 1 and 0 < len(out) < 5000
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        empirical_posterior(d, 5, torch.zeros(3), 0.3, 0.05, 5000)
    m = GaussianMixture1D()
    z = torch.linspace(-3, 3, 2001)
    assert abs(float(m.pdf(z).sum() * (z[1] - z[0])) - 1) < 1e-3


# ------------------------------------------------------------------ lesson 01: denoiser explorer
def test_denoiser_explorer_slider_shows_precomputed_level():
    from course_utils.diffusion import blend_noise
    from course_utils.widgets import denoiser_explorer

    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    ex = denoiser_explorer(model, imgs, levels=[0.0, 0.5, 1.0], train_level=0.5, seed=3)
    assert ex.slider.value == 1 and "trained at 0.5" in ex.title.get_text()
    before = np.ma.getdata(ex.output_artist.get_array()).copy()
    png, renders = bytes(ex.image.value), ex.renders
    ex.slider.value = 2
    assert ex.renders == renders + 1 and bytes(ex.image.value) != png
    after = np.ma.getdata(ex.output_artist.get_array())
    assert not np.allclose(np.nan_to_num(after), np.nan_to_num(before))
    eps = torch.randn(imgs.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = model(blend_noise(imgs, eps, 1.0))
    torch.testing.assert_close(ex.outputs[2][:, :8], want[0, 0])
    np.testing.assert_array_equal(np.ma.getdata(ex.input_artist.get_array()), ex.inputs[2].numpy())
    assert float(ex.mse[2]) == pytest.approx(float(((want - imgs) ** 2).mean()), rel=1e-5)
