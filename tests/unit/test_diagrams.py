"""course_utils.diagrams: each diagram is a Figure whose text carries the numbers of its arguments (read from
the real model or the package's formula), and bad arguments raise a ValueError that names them."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from course_utils import diagrams  # noqa: E402
from course_utils.clip import CLIPConfig  # noqa: E402
from course_utils.models import UNet, count_parameters  # noqa: E402


def texts(fig) -> str:
    """Every string drawn on the figure (box texts, labels, the title), one per line."""
    return "\n".join(t.get_text() for t in fig.findobj(Text))


# --- the U-Nets -------------------------------------------------------------------------------------

def test_unet_diagram_shows_the_real_models_shapes():
    fig = diagrams.unet_diagram((24, 48), 8)
    assert isinstance(fig, Figure)
    s = texts(fig)
    # independent arithmetic: level 0 at 8 px with 24 channels, level 1 at 4 px with 48, emb = 4 · 24
    for part in ("24 × 8 × 8", "48 × 4 × 4", "(48 + 48) → 48 × 4 × 4", "(48 + 24) → 24 × 8 × 8",
                 "8 → 4 px", "4 → 8 px", "skip: 24 channels", "skip: 48 channels", "96-d", "sin/cos (24-d)",
                 "1 × 8 × 8", f"{count_parameters(UNet(channels=(24, 48))):,} parameters"):
        assert part in s, part
    for absent in ("64", "32", "16"):
        assert not re.search(rf"(?<![\d,]){absent}(?![\d,])", s), absent
    assert "class table" not in s


def test_unet_diagram_follows_the_config():
    s = texts(diagrams.unet_diagram((32, 64, 128), 16, num_classes=10))
    assert "128 × 4 × 4" in s and "16 → 8 px" in s and "8 → 4 px" in s
    assert "11 rows; row 10 = ∅" in s and "num_classes=10" in s
    s = texts(diagrams.unet_diagram((16, 32), 16, time_embedding=False))
    assert "no time input" in s and "sin/cos" not in s and "time_embedding=False" in s


def test_small_unet_diagram_is_lesson_01s_table():
    s = texts(diagrams.small_unet_diagram((16, 32), 16))
    for part in ("h0 = conv_in(x)\n16 × 16 × 16", "h1 = down1(h0)\n16 × 8 × 8", "h2 = down2(h1)\n32 × 4 × 4",
                 "u1 = up1(h2, h1)\n(32 + 16) → 16 × 8 × 8", "u2 = up2(u1, h0)\n(16 + 16) → 16 × 16 × 16",
                 "35,585 parameters"):                            # lesson 01 prints 35,585 for SmallUNet(1, (16, 32))
        assert part in s, part
    assert "64" not in s


@pytest.mark.parametrize("kwargs, name", [
    (dict(channels=(32, 60)), "channels"), (dict(channels=()), "channels"), (dict(channels=(32.0, 64)), "channels"),
    (dict(image_size=15), "image_size"), (dict(image_size=True), "image_size"),
    (dict(time_embedding=1), "time_embedding"), (dict(num_classes=0), "num_classes"),
    (dict(in_channels=True), "in_channels"), (dict(ax="axes"), "ax"),
])
def test_unet_diagram_names_a_bad_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        diagrams.unet_diagram(**kwargs)


@pytest.mark.parametrize("kwargs, name", [
    (dict(channels=(32, 64, 128)), "channels"), (dict(image_size=18), "image_size"),
    (dict(in_channels=0), "in_channels"),
])
def test_small_unet_diagram_names_a_bad_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        diagrams.small_unet_diagram(**kwargs)


def test_a_diagram_draws_into_a_given_axes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    assert diagrams.guidance_diagram(1.0, ax=ax) is fig
    assert "w = 1" in texts(fig)


def test_a_diagram_shows_itself_as_a_png_without_the_inline_backend():
    """IPython's own PNG formatter (no pyplot, no inline backend registered) renders the returned Figure."""
    formatters = pytest.importorskip("IPython.core.formatters")
    png = formatters.PNGFormatter()(diagrams.clip_diagram())
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG")


# --- the chain ----------------------------------------------------------------------------------------

def test_chain_diagram_labels_and_arrows():
    fig = diagrams.diffusion_chain_diagram(T_label=1000)
    assert isinstance(fig, Figure)
    s = texts(fig)
    for part in ("$x_0$", "$x_1$", "$x_{t-1}$", "$x_t$", "$x_{1000}$", "$q(x_t \\mid x_{t-1})$",
                 "$p_\\theta(x_{t-1} \\mid x_t)$", "≈ N(0, I)"):
        assert part in s, part
    ax = fig.axes[0]
    arrows = [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
    forward = [a for a in arrows if a.arrow_patch.get_edgecolor()[2] > 0.6]      # blue
    reverse = [a for a in arrows if a.arrow_patch.get_edgecolor()[0] > 0.6]      # red
    assert len(forward) == len(reverse) == 6                       # one arrow per link, each way
    assert all(a.xy[0] > a.xyann[0] for a in forward)              # blue: left to right (q)
    assert all(a.xy[0] < a.xyann[0] for a in reverse)              # red: right to left (p_θ)


def test_chain_diagram_shows_the_images():
    from course_utils import schedules
    from course_utils.diffusion import GaussianDiffusion

    d = GaussianDiffusion(schedules.linear_betas(100))
    x0 = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    xs = [x0[0]] + [d.q_sample(x0, t, generator=torch.Generator().manual_seed(t))[0] for t in (0, 49, 50, 99)]
    fig = diagrams.diffusion_chain_diagram(images=xs, captions=["a", "b", "c", "d", "e"])
    assert len(fig.axes[0].images) == 5
    assert "≈ N(0, I)" not in texts(fig) and "e" in texts(fig).splitlines()


@pytest.mark.parametrize("kwargs, name", [
    (dict(T_label=""), "T_label"), (dict(T_label=True), "T_label"), (dict(T_label="$T$"), "T_label"),
    (dict(images=[torch.zeros(1, 8, 8)] * 4), "images"), (dict(images=[torch.zeros(8, 8)] * 5), "images"),
    (dict(captions=["a"] * 4), "captions"),
])
def test_chain_diagram_names_a_bad_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        diagrams.diffusion_chain_diagram(**kwargs)


# --- guidance -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("w, cond, null", [(2.0, "3", "− 2"), (2.5, "3.5", "− 2.5"), (0.0, "1", "+ 0"),
                                           (-1.0, "0", "+ 1")])
def test_guidance_diagram_writes_the_packages_formula(w, cond, null):
    s = texts(diagrams.guidance_diagram(w))
    # the package's convention, classifier_free_guidance: (1 + w)·ε(x, y) − w·ε(x, ∅)
    assert "$\\hat\\epsilon = (1 + w)\\,\\epsilon_\\theta(x_t, y) - w\\,\\epsilon_\\theta(x_t, \\varnothing)$" in s
    assert f"$\\hat\\epsilon = {cond}\\,\\epsilon_\\theta(x_t, y) {null}\\,\\epsilon_\\theta(x_t, \\varnothing)$" in s
    assert f"× (1 + w) = × {cond}" in s


@pytest.mark.parametrize("w", [float("nan"), "2", True, None])
def test_guidance_diagram_names_a_bad_w(w):
    with pytest.raises(ValueError, match=r"guidance weight w must be a finite float"):
        diagrams.guidance_diagram(w)


# --- CLIP -----------------------------------------------------------------------------------------------

def test_clip_diagram_reads_the_config():
    s = texts(diagrams.clip_diagram())
    assert "CNN 16→8→4 px" in s and "64-d" in s and "2 layers" in s and "(B, 1, 16, 16)" in s
    fig = diagrams.clip_diagram(CLIPConfig(embed_dim=40, image_size=32, image_channels=(8, 16, 24), text_layers=1),
                                batch=4)
    s = texts(fig)
    assert "CNN 32→16→8→4 px" in s and "40-d" in s and "1 layer," in s and "4 × 4" in s and "64" not in s
    assert len(fig.axes[0].patches) >= 16


@pytest.mark.parametrize("kwargs, name", [(dict(config={"embed_dim": 64}), "config"), (dict(batch=1), "batch"),
                                          (dict(batch=9), "batch"), (dict(batch=4.0), "batch")])
def test_clip_diagram_names_a_bad_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        diagrams.clip_diagram(**kwargs)


def test_the_module_imports_matplotlib_only_inside_its_functions():
    """Importing course_utils never needs matplotlib: no module-level import of it in diagrams.py."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(diagrams))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names] + \
        [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m.startswith("matplotlib")]
    assert "matplotlib" in inspect.getsource(diagrams._axes)          # the check can see an import
