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


WIDGET_SOURCES = sorted(Path(sys.modules["course_utils.widgets"].__file__).parent.glob("*.py"))


def test_uses_only_ipywidgets_api_common_to_7_and_8():
    """Colab ships ipywidgets 7.x: every `widgets.X` used must exist, with the same name, in 7.7 and 8."""
    used = {n.attr for path in WIDGET_SOURCES for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "widgets"}
    assert used and used <= WIDGET_API_7_AND_8, used - WIDGET_API_7_AND_8


def test_widget_modules_import_only_core_ipywidgets_matplotlib_and_the_package():
    """No ipympl, bqplot, plotly, …: Colab's widget manager renders core ipywidgets only."""
    allowed = {"__future__", "io", "dataclasses", "typing", "torch", "ipywidgets", "matplotlib", "IPython"}
    assert len(WIDGET_SOURCES) >= 7, [p.name for p in WIDGET_SOURCES]        # _base, __init__, 5 lessons
    for path in WIDGET_SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {(a.name if isinstance(n, ast.Import) else n.module or "").split(".")[0]
                    for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                    and not getattr(n, "level", 0) for a in n.names}       # relative imports: the package
        assert imported <= allowed, f"{path.name} imports {imported - allowed}"


def test_package_re_exports_every_public_name_of_every_widget_module():
    """`from course_utils.widgets import X` works for each X of each lesson module (and nothing is listed twice)."""
    import importlib

    import course_utils.widgets as package

    modules = [p.stem for p in WIDGET_SOURCES if not p.stem.startswith("_")]
    assert set(modules) == {"denoiser", "forward_diffusion", "ink_drop", "posterior", "reverse_trajectory",
                            "guidance", "text_to_image", "cascade"}
    names = []
    for m in modules:
        mod = importlib.import_module(f"course_utils.widgets.{m}")
        assert mod.__all__, m
        for name in mod.__all__:
            assert getattr(package, name) is getattr(mod, name), (m, name)
        names += mod.__all__
    assert sorted(package.__all__) == sorted(names) and len(set(names)) == len(names)


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


# ------------------------------------------------------------------ lesson 04: reverse trajectory
def _tiny_trajectory(T=12, n=3):
    from course_utils.schedules import linear_betas

    d = GaussianDiffusion(linear_betas(T))
    class Eps(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x, t):
            return self.conv(x)

    torch.manual_seed(0)
    steps = d.p_sample_loop_progressive(Eps(), (n, 1, 6, 6), generator=torch.Generator().manual_seed(0),
                                        progress=False)
    return d, list(steps)


def test_collect_trajectory_subsamples_and_keeps_the_last_step():
    from course_utils.widgets import collect_trajectory

    _, steps = _tiny_trajectory()
    tr = collect_trajectory(iter(steps), every=5, max_images=2)
    assert tr.t.tolist() == [11, 6, 1, 0] and tr.t_prev.tolist() == [10, 5, 0, -1]
    assert tr.samples.shape == tr.pred_x0.shape == (4, 2, 1, 6, 6)
    torch.testing.assert_close(tr.samples[-1], steps[-1].sample[:2])
    torch.testing.assert_close(tr.pred_x0[1], steps[5].pred_x0[:2])
    again = collect_trajectory((tr.t, tr.samples, tr.pred_x0), every=2)
    assert again.t.tolist() == [11, 1, 0]
    with pytest.raises(ValueError, match="every"):
        collect_trajectory(steps, every=0)
    with pytest.raises(ValueError, match="SampleStep"):
        collect_trajectory([1, 2, 3])


def test_reverse_trajectory_explorer_slider_shows_the_stored_step():
    from course_utils.widgets import reverse_trajectory_explorer

    _, steps = _tiny_trajectory()
    ex = reverse_trajectory_explorer(steps, every=1)
    assert ex.slider.max == 11 and ex.t == 11 and "t = 11 (paper step 12)" in ex.title.get_text()
    before_x = np.ma.getdata(ex.sample_artist.get_array()).copy()
    before_x0 = np.ma.getdata(ex.pred_x0_artist.get_array()).copy()
    png, renders = bytes(ex.image.value), ex.renders
    assert png.startswith(b"\x89PNG")
    ex.slider.value = 11                                  # the last step: the final sample x_0
    assert ex.renders == renders + 1 and bytes(ex.image.value) != png
    after_x = np.ma.getdata(ex.sample_artist.get_array())
    assert not np.allclose(np.nan_to_num(after_x), np.nan_to_num(before_x))
    assert not np.allclose(np.nan_to_num(np.ma.getdata(ex.pred_x0_artist.get_array())), np.nan_to_num(before_x0))
    np.testing.assert_array_equal(after_x, ex.samples[11].numpy())
    final = steps[-1].sample.clamp(-1.5, 1.5)
    torch.testing.assert_close(ex.samples[11][:, :6], final[0, 0])           # first image of the strip
    torch.testing.assert_close(ex.samples[11][:, 7:13], final[1, 0])         # after one NaN gap column
    assert "t = 0 (paper step 1)" in ex.title.get_text() and "x_0" in ex.title.get_text()


def test_reverse_process_animation_writes_a_gif_and_html(tmp_path):
    from matplotlib.animation import FuncAnimation, PillowWriter
    from PIL import Image

    from course_utils.widgets import reverse_process_animation

    _, steps = _tiny_trajectory()
    anim = reverse_process_animation(steps, every=3, dpi=30)
    assert isinstance(anim, FuncAnimation) and len(anim.trajectory) == 5          # steps 11, 8, 5, 2, 0
    path = tmp_path / "reverse.gif"
    anim.save(path, writer=PillowWriter(fps=5))
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        frames = []
        for k in (0, 4):
            gif.seek(k)
            frames.append(np.asarray(gif.convert("L")).copy())
    assert not np.array_equal(frames[0], frames[1])                # the picture changes along the way
    a_x, a_x0, title = anim.artists
    np.testing.assert_array_equal(np.ma.getdata(a_x.get_array()), _strip_last(anim))
    assert "x_0" in title.get_text()
    html = anim.to_jshtml()
    assert "<script" in html and html.count("data:image/png;base64") == 5


def _strip_last(anim):
    from course_utils.widgets.reverse_trajectory import _trajectory_strips

    return _trajectory_strips(anim.trajectory)[0][-1].numpy()


# ------------------------------------------------------------------ lesson 02: the ink drop animation
def test_ink_drop_animation_builds_and_moves_the_cloud_and_its_marginals():
    from matplotlib.animation import FuncAnimation

    from course_utils.origins import ink_drop
    from course_utils.schedules import linear_betas
    from course_utils.widgets import ink_drop_animation, ink_drop_frame_steps

    points = torch.rand(300, 2, generator=torch.Generator().manual_seed(0)) * 0.4 - 0.2     # a small square drop
    betas = linear_betas(60, 1e-3, 0.2)
    ddpm = ink_drop(points, betas, generator=torch.Generator().manual_seed(1))
    brown = ink_drop(points, betas, generator=torch.Generator().manual_seed(1), shrink=False)
    anim = ink_drop_animation({"DDPM": ddpm, "Brownian": brown}, n_frames=4, lim=3.0, bins=12, dpi=30)
    assert isinstance(anim, FuncAnimation) and anim.steps == [0, 20, 40, 60] == ink_drop_frame_steps(60, 4)
    title, panels = anim.artists
    assert len(panels) == 2 and "after 0 of T = 60 steps" in title.get_text()
    before = np.asarray(panels[0]["hist_x"].get_data().values).copy()
    html = anim.to_jshtml()                                           # draws every frame: the last one stays
    assert "<script" in html and html.count("data:image/png;base64") == 4
    assert "after 60 of T = 60 steps" in title.get_text()
    np.testing.assert_allclose(panels[0]["scatter"].get_offsets(), ddpm[60].numpy())
    after = np.asarray(panels[0]["hist_x"].get_data().values)
    edges = np.linspace(-3, 3, 13)
    expected = np.histogram(ddpm[60, :, 0].numpy(), bins=edges)[0] / (300 * 0.5)           # a density on the box
    np.testing.assert_allclose(after, expected, atol=1e-6)
    assert before.max() > 2 * after.max()                            # the peaked drop has spread out
    std = ddpm[60].std(dim=0, unbiased=False)
    assert f"std x {float(std[0]):.2f}" in panels[0]["text"].get_text()
    assert float(brown[60].std()) > 1.5 * float(ddpm[60].std())     # no shrink: it keeps spreading
    one = ink_drop_animation(ddpm, n_frames=2, dpi=30)                # a bare tensor: one panel
    assert len(one.artists[1]) == 1 and one.steps == [0, 60]
    assert one.to_jshtml().count("data:image/png;base64") == 2


def test_ink_drop_animation_bad_inputs():
    from course_utils.widgets import ink_drop_animation, ink_drop_frame_steps

    tr = torch.zeros(5, 3, 2)
    with pytest.raises(ValueError, match=r"must be a float tensor of shape \(T \+ 1, N, 2\)"):
        ink_drop_animation(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="same number of steps"):
        ink_drop_animation({"a": tr, "b": torch.zeros(6, 3, 2)})
    with pytest.raises(ValueError, match="a dict of 1 to 3 of them"):
        ink_drop_animation([tr])
    with pytest.raises(ValueError, match="n_frames must be an int ≥ 2"):
        ink_drop_animation(tr, n_frames=1)
    with pytest.raises(ValueError, match="lim must be a positive number"):
        ink_drop_animation(tr, lim=0)
    with pytest.raises(ValueError, match="bins must be an int ≥ 2"):
        ink_drop_animation(tr, bins=1.5)
    with pytest.raises(ValueError, match="T must be a positive int"):
        ink_drop_frame_steps(0, 3)
    assert ink_drop_frame_steps(3, 10) == [0, 1, 2, 3]


# ------------------------------------------------------------------ lesson 06: the guidance explorer
from course_utils.widgets import guidance_explorer, guidance_sweep  # noqa: E402

# Dropdown and SelectionSlider exist, with the same names and (label, value) options, in ipywidgets 7.7 and 8.
WIDGET_API_7_AND_8 |= {"Dropdown", "SelectionSlider"}


def _l06_model():
    from course_utils import checks
    return checks.tiny_conditional_unet(num_classes=3, seed=0)


@pytest.fixture(scope="module")
def guidance():
    from course_utils.schedules import linear_betas

    model = _l06_model()
    d = GaussianDiffusion(linear_betas(40))
    real = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ex = guidance_explorer(model, d, ws=(-1.0, 0.0, 2.0), per_class=2, num_steps=4, seed=3, real_images=real,
                           class_names=("a", "b", "c"), image_size=8)
    return model, d, ex


def test_guidance_explorer_slider_and_picker_change_the_samples(guidance):
    _, _, ex = guidance
    shown = lambda: np.ma.getdata(ex.image_artist.get_array()).copy()      # noqa: E731
    assert ex.w == 0.0 and ex.label == 0 and bytes(ex.image.value).startswith(b"\x89PNG")
    before, renders = shown(), ex.renders
    ex.slider.value = 2.0                                  # what dragging the slider does
    assert ex.renders == renders + 1
    after = shown()
    assert not np.allclose(np.nan_to_num(after), np.nan_to_num(before))
    np.testing.assert_array_equal(np.nan_to_num(after), np.nan_to_num(ex.grids[2, 0].numpy()))
    assert list(ex.w_lines[0].get_xdata()) == [2.0, 2.0]
    ex.class_picker.value = 2                              # what picking a class does
    np.testing.assert_array_equal(np.nan_to_num(shown()), np.nan_to_num(ex.grids[2, 2].numpy()))
    np.testing.assert_allclose(ex.agreement_line.get_ydata(), ex.agreement[:, 2].numpy())
    assert ex.title.get_text().startswith("c, w = 2")
    assert ex.agreement_line.axes.get_legend().get_texts()[0].get_text() == "c"


def test_guidance_sweep_uses_the_same_noise_for_every_w(guidance):
    model, d, ex = guidance
    assert ex.samples.shape == (3, 3, 2, 1, 8, 8)
    # each (w, class) block is the package's guided DDIM from one shared x_T
    x_T = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.arange(3).repeat_interleave(2)
    for i, w in enumerate((-1.0, 0.0, 2.0)):
        ref = d.ddim_sample_loop(model, x_T=x_T, num_steps=4, y=y, w=w, progress=False)
        torch.testing.assert_close(ex.samples[i].reshape(6, 1, 8, 8), ref)
    assert not torch.allclose(ex.samples[0], ex.samples[2])


def test_guidance_metrics_per_w(guidance):
    from course_utils.metrics import class_agreement_per_class

    _, _, ex = guidance
    assert ex.agreement.shape == (3, 3) and ex.frechet.shape == (3,) and ex.diversity.shape == (3, 3)
    x = ex.samples[1].reshape(6, 1, 8, 8)
    per = class_agreement_per_class(x, torch.arange(3).repeat_interleave(2))
    assert ex.agreement[1].tolist() == pytest.approx([per[k] for k in range(3)])
    torch.testing.assert_close(ex.agreement_mean, ex.agreement.mean(1))
    assert bool((ex.frechet >= -1e-6).all())


def test_guidance_explorer_bad_inputs():
    from course_utils.schedules import linear_betas

    d = GaussianDiffusion(linear_betas(10))
    with pytest.raises(ValueError, match="class-conditional"):
        guidance_sweep(torch.nn.Conv2d(1, 1, 1), d, (0.0,))
    with pytest.raises(ValueError, match="repeat"):
        guidance_explorer(_l06_model(), d, ws=(0.0, 0.0))
    with pytest.raises(ValueError, match="len\\(ws\\)"):
        guidance_explorer(_l06_model(), d, ws=(0.0, 1.0), samples=torch.zeros(3, 3, 2, 1, 8, 8))


# ------------------------------------------------------------------ lesson 08: the text-to-image explorer
# Text (value, placeholder), Button (description, on_click) and HTML (value) are the same in ipywidgets 7.7 and 8.
WIDGET_API_7_AND_8 |= {"Text", "Button", "HTML"}


@pytest.fixture(scope="module")
def t2i():
    from course_utils.clip import CLIP, CLIPConfig
    from course_utils.schedules import linear_betas
    from course_utils.text2image import TextUNet, TextUNetConfig
    from course_utils.models import UNetConfig
    from course_utils.widgets import text_to_image_explorer

    torch.manual_seed(0)
    clip = CLIP(CLIPConfig(embed_dim=16, image_channels=(8, 16), width=16, text_layers=1, heads=2)).eval()
    model = TextUNet(TextUNetConfig(unet=UNetConfig(channels=(8, 16), attention=True), context_dim=16, embed_dim=16,
                                    heads=2)).eval()
    torch.nn.init.normal_(model.conv_out.weight, std=0.3)
    d = GaussianDiffusion(linear_betas(30))
    ex = text_to_image_explorer(model, d, clip, ["a photo of a bag", "a dark coat"], ws=(0.0, 2.0, 5.0), n=2,
                                num_steps=3, live_steps=2, seed=1)
    return model, d, clip, ex


def test_text_to_image_explorer_moves(t2i):
    _, _, _, ex = t2i
    shown = lambda: np.ma.getdata(ex.image_artist.get_array()).copy()      # noqa: E731
    assert ex.w == 2.0 and ex.prompt == "a photo of a bag" and bytes(ex.image.value).startswith(b"\x89PNG")
    before, renders = shown(), ex.renders
    ex.slider.value = 5.0
    assert ex.renders == renders + 1 and not np.allclose(np.nan_to_num(shown()), np.nan_to_num(before))
    ex.prompt_picker.value = "a dark coat"
    assert "a dark coat" in ex.title.get_text() and list(ex.w_line.get_xdata()) == [5.0, 5.0]
    np.testing.assert_allclose(ex.score_line.get_ydata(), ex.scores["a dark coat"].numpy())
    # a new prompt is drawn live, joins the dropdown and is shown
    ex.prompt_box.value = "a small sneaker"
    ex._on_generate()
    assert ex.prompt == "a small sneaker" and "a small sneaker" in ex.prompt_picker.options
    assert ex.samples["a small sneaker"].shape == (3, 2, 1, 16, 16)
    # a bad prompt is reported in the widget, not raised
    ex.prompt_box.value = "a " * 12 + "bag"
    ex._on_generate()
    assert "tokens long" in ex.status.value and ex.prompt == "a small sneaker"


def test_prompt_sweep_uses_one_noise_for_every_w(t2i):
    from course_utils.text2image import encode_prompts, sample
    from course_utils.widgets import prompt_sweep

    model, d, clip, _ = t2i
    x, score = prompt_sweep(model, d, clip, "a bag", (0.0, 3.0), n=2, num_steps=3, seed=4)
    noise = torch.randn((2, 1, 16, 16), generator=torch.Generator().manual_seed(4))
    ref = sample(model, d, encode_prompts(clip, ["a bag"] * 2), encode_prompts(clip, ["", ""]), 3.0, 3, 4, x_T=noise)
    torch.testing.assert_close(x[1], ref)
    emb = clip.encode_text(["a bag"])
    torch.testing.assert_close(score[1], (clip.encode_image(x[1]) @ emb.T).mean())


def test_text_to_image_explorer_bad_inputs(t2i):
    from course_utils.widgets import text_to_image_explorer

    model, d, clip, _ = t2i
    with pytest.raises(ValueError, match="distinct"):
        text_to_image_explorer(model, d, clip, ["a bag"], ws=(1.0, 1.0))
    with pytest.raises(ValueError, match="non-empty list"):
        text_to_image_explorer(model, d, clip, [])


# ------------------------------------------------------------------ lesson 09: cascade and latent diffusion
from course_utils.widgets import augmentation_explorer, side_by_side  # noqa: E402


def _l09_batches(B=3):
    """Base samples (B, 1, 8, 8) and stand-in super-resolved (B, 1, 16, 16) images, one batch per level."""
    g = torch.Generator().manual_seed(9)
    low = torch.rand(B, 1, 8, 8, generator=g) * 2 - 1
    sr = {a: (torch.rand(B, 1, 16, 16, generator=g) * 2 - 1) for a in (0.5, 0.0, 0.2)}   # unsorted on purpose
    return low, sr


def test_augmentation_explorer_slider_swaps_the_super_resolved_row():
    import torch.nn.functional as F

    low, sr = _l09_batches()
    ex = augmentation_explorer(low, sr, reference={0.0: 9.0, 0.2: 3.5, "0.5": 6.25})
    shown = lambda artist: np.ma.getdata(artist.get_array()).copy()      # noqa: E731
    from course_utils.cascade import LESSON_AUG
    assert ex.levels == (0.0, 0.2, 0.5) and ex.level == LESSON_AUG       # starts at cascade.LESSON_AUG
    ex.slider.value = 0.2
    assert ex.title.get_text() == "augmentation level a = 0.2,  FD 3.50"
    assert bytes(ex.image.value).startswith(b"\x89PNG")
    # the rows, against an independent layout: image i at columns i·17 … i·17 + 15, a NaN gap after it
    nearest = F.interpolate(low, scale_factor=2, mode="nearest")
    bicubic = F.interpolate(low, size=(16, 16), mode="bicubic", align_corners=False).clamp(-1, 1)
    for artist, want in ((ex.low_artist, nearest), (ex.bicubic_artist, bicubic), (ex.sr_artist, sr[0.2])):
        got = shown(artist)
        assert got.shape == (16, 3 * 17 - 1) and np.isnan(got[:, 16]).all() and np.isnan(got[:, 33]).all()
        for i in range(3):
            np.testing.assert_allclose(got[:, 17 * i:17 * i + 16], want[i, 0].numpy(), atol=1e-6)
    before, png, renders = shown(ex.sr_artist), bytes(ex.image.value), ex.renders
    fixed = shown(ex.low_artist), shown(ex.bicubic_artist)
    ex.slider.value = 0.5                                                # what dragging the slider does
    assert ex.renders == renders + 1 and bytes(ex.image.value) != png
    np.testing.assert_allclose(shown(ex.sr_artist)[:, 17:33], sr[0.5][1, 0].numpy())
    assert not np.allclose(np.nan_to_num(shown(ex.sr_artist)), np.nan_to_num(before))
    for artist, old in zip((ex.low_artist, ex.bicubic_artist), fixed):  # only the super-resolved row moves
        np.testing.assert_array_equal(shown(artist), old)
    assert ex.title.get_text() == "augmentation level a = 0.5,  FD 6.25"
    # render(): the Figure at a level, without a browser
    fig = ex.render(0.0)
    assert fig is ex.figure and ex.level == 0.0 and ex.title.get_text().endswith("FD 9.00")
    np.testing.assert_allclose(shown(ex.sr_artist)[:, :16], sr[0.0][0, 0].numpy())
    with pytest.raises(ValueError, match="precomputed levels"):
        ex.render(0.3)
    # without reference: the level alone
    plain = augmentation_explorer(low, {0.1: sr[0.0]})
    assert plain.level == 0.1 and plain.title.get_text() == "augmentation level a = 0.1"


def test_augmentation_explorer_bad_inputs():
    low, sr = _l09_batches()
    with pytest.raises(ValueError, match=r"^low must be"):
        augmentation_explorer(low[:, 0], sr)
    with pytest.raises(ValueError, match=r"^low must be a non-empty batch of grey"):
        augmentation_explorer(low.expand(3, 3, 8, 8), sr)
    with pytest.raises(ValueError, match=r"^super_resolved_by_level must be a non-empty dict"):
        augmentation_explorer(low, {})
    with pytest.raises(ValueError, match=r"^super_resolved_by_level must be keyed by augmentation levels"):
        augmentation_explorer(low, {1.0: sr[0.0]})
    with pytest.raises(ValueError, match=r"keyed by augmentation levels"):
        augmentation_explorer(low, {True: sr[0.0]})
    with pytest.raises(ValueError, match=r"must hold low's 3 images super-resolved"):
        augmentation_explorer(low, {0.1: sr[0.0][:2]})
    with pytest.raises(ValueError, match=r"must hold low's 3 images super-resolved"):
        augmentation_explorer(low, {0.1: low})                           # not larger than low
    with pytest.raises(ValueError, match=r"the same shape"):
        augmentation_explorer(low, {0.1: sr[0.0], 0.2: torch.zeros(3, 1, 24, 24)})
    with pytest.raises(ValueError, match=r"twice"):
        augmentation_explorer(low, {0.1: sr[0.0], "0.1": sr[0.2]})
    with pytest.raises(ValueError, match=r"^reference must give a number for every level"):
        augmentation_explorer(low, sr, reference={0.0: 1.0, 0.2: 2.0})
    with pytest.raises(ValueError, match=r"^reference must give a number"):
        augmentation_explorer(low, sr, reference={0.0: 1.0, 0.2: "2", 0.5: 3.0})
    with pytest.raises(ValueError, match=r"^reference must be None or a dict"):
        augmentation_explorer(low, sr, reference=[1.0, 2.0, 3.0])


def test_side_by_side_draws_one_row_per_method():
    from matplotlib.figure import Figure

    g = torch.Generator().manual_seed(2)
    rows = {"pixel 32 px": torch.rand(4, 1, 32, 32, generator=g) * 2 - 1,
            "cascade 16 → 32": torch.rand(4, 1, 32, 32, generator=g) * 2 - 1,
            "latent 4×8×8": torch.rand(2, 1, 32, 32, generator=g) * 2 - 1}
    fig = side_by_side(rows, title="three ways to 32 px")
    assert isinstance(fig, Figure) and fig._suptitle.get_text() == "three ways to 32 px"
    assert [ax.get_ylabel() for ax in fig.axes] == list(rows)
    for ax, x in zip(fig.axes, rows.values()):
        got = np.ma.getdata(ax.images[0].get_array())
        assert got.shape == (32, x.shape[0] * 33 - 1)
        for i in range(x.shape[0]):
            np.testing.assert_allclose(got[:, 33 * i:33 * i + 32], x[i, 0].numpy())
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png")                                       # draws without pyplot or a browser
    assert buf.getvalue().startswith(b"\x89PNG")
    one = side_by_side({"cascade": rows["pixel 32 px"]})
    assert len(one.axes) == 1 and one._suptitle is None


def test_side_by_side_bad_inputs():
    x = torch.zeros(2, 1, 32, 32)
    with pytest.raises(ValueError, match=r"^rows must be a non-empty dict.*an empty dict"):
        side_by_side({})
    with pytest.raises(ValueError, match=r"^rows must be a non-empty dict.*list"):
        side_by_side([x])
    with pytest.raises(ValueError, match=r"^rows must be keyed by method names"):
        side_by_side({1: x})
    with pytest.raises(ValueError, match=r"^rows\['rgb'\] must be a non-empty batch of grey"):
        side_by_side({"rgb": torch.zeros(2, 3, 32, 32)})
    with pytest.raises(ValueError, match=r"^rows\['flat'\] must be a float tensor"):
        side_by_side({"flat": torch.zeros(32, 32)})
    with pytest.raises(ValueError, match=r"^every row of rows must hold images of one size"):
        side_by_side({"a": x, "b": torch.zeros(2, 1, 16, 16)})
    with pytest.raises(ValueError, match=r"^title must be None or a str"):
        side_by_side({"a": x}, title=3)
