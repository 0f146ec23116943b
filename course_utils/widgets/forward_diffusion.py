"""Lesson 02's widget: scrub t and watch images drown in noise under q(x_t | x_0), schedule by schedule."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..diffusion import GaussianDiffusion
from ..schedules import make_betas
from ._base import _check_images, _figure, _FigureWidget, _gray, _strip

__all__ = ["ForwardDiffusionExplorer", "forward_diffusion_explorer"]


@dataclass
class ForwardDiffusionExplorer(_FigureWidget):
    """Lesson 02's widget: scrub t and watch images drown in noise.

    Attributes:
        slider: ``ipywidgets.IntSlider`` over the 0-indexed timestep t ∈ {0, …, T-1}.
        toggle: ``ipywidgets.ToggleButtons`` choosing the schedule ("linear" or "cosine").
        image: ``ipywidgets.Image`` holding the rendered figure (PNG bytes).
        widget: the ``VBox`` to display (``display(explorer)`` works too).
        figure: the matplotlib Figure; ``image_artist`` (the noisy images), ``hist_artist`` (a StepPatch
            of the pixel histogram), ``curve`` (the ᾱ_t line), ``marker`` (the point at t) and ``title``.
        frames: schedule → (T, H, W') noisy image strips, precomputed with ``GaussianDiffusion.q_sample``.
        hists: schedule → (T, bins) histogram densities; ``edges``: (bins + 1,) bin edges.
        alphas_cumprod: schedule → (T,) ᾱ_t.
    """

    slider: Any
    toggle: Any
    image: Any
    widget: Any
    figure: Any
    image_artist: Any
    hist_artist: Any
    curve: Any
    marker: Any
    title: Any
    frames: dict[str, torch.Tensor]
    hists: dict[str, torch.Tensor]
    edges: torch.Tensor
    alphas_cumprod: dict[str, torch.Tensor]
    renders: int = field(default=0)

    @property
    def t(self) -> int:
        return int(self.slider.value)

    @property
    def schedule(self) -> str:
        return str(self.toggle.value)

    def update(self, *_args) -> None:
        """Show the current slider/toggle values: set_data on the artists, re-render one PNG."""
        kind, t = self.schedule, self.t
        a_bar = self.alphas_cumprod[kind]
        self.image_artist.set_data(self.frames[kind][t].numpy())
        self.hist_artist.set_data(values=self.hists[kind][t].numpy())
        self.curve.set_ydata(a_bar.numpy())
        self.marker.set_data([t], [float(a_bar[t])])
        a = float(a_bar[t])
        snr = a / (1 - a)
        self.title.set_text(f"{kind} schedule, t = {t} (paper step {t + 1}):  ᾱ_t = {a:.4f},  "
                            f"SNR = ᾱ/(1−ᾱ) = {snr:.3g}")
        self._show_figure()



def _histograms(frames: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Density histograms of the finite pixel values of each frame: (T, H, W') → (T, bins)."""
    T = frames.shape[0]
    bins = edges.numel() - 1
    v = frames.reshape(T, -1)
    finite = torch.isfinite(v)
    n = finite.sum(1, keepdim=True).clamp(min=1)
    width = float(edges[1] - edges[0])
    b = ((v - float(edges[0])) / width).floor()
    keep = finite & (b >= 0) & (b < bins)
    rows = torch.arange(T).unsqueeze(1).expand_as(v)
    flat = (rows * bins + b.nan_to_num(0).long())[keep]
    counts = torch.bincount(flat, minlength=T * bins).reshape(T, bins).double()
    return (counts / (n * width)).float()



def forward_diffusion_explorer(images: torch.Tensor, T: int = 1000,
                               schedules: Sequence[str] = ("linear", "cosine"),
                               seed: int = 0, bins: int = 40, value_range: float = 4.0,
                               figsize=(10.0, 2.8), dpi: int = 80) -> ForwardDiffusionExplorer:
    """A slider over t showing a few images noised by q(x_t | x_0), their pixel histogram against
    N(0, 1), and where t sits on the ᾱ_t curve, with a toggle between noise schedules.

    The noise ε is drawn once (seeded), so scrubbing t shows the same noise growing, and every frame
    x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε is precomputed with :meth:`GaussianDiffusion.q_sample`.

    Args:
        images: (N, 1, H, W) images in [-1, 1] (any device; a handful, e.g. 4).
        T: number of diffusion steps.
        schedules: schedule names for :func:`course_utils.schedules.make_betas`; the toggle's options.
        seed: seed of the fixed noise.
        bins, value_range: the histogram's bins over [-value_range, value_range].
        figsize, dpi: size of the rendered figure.
    Returns:
        a :class:`ForwardDiffusionExplorer`; display it (last line of a cell) to use it.
    """
    import ipywidgets as widgets

    _check_images(images)
    if not schedules:
        raise ValueError("schedules must name at least one schedule, e.g. ('linear', 'cosine').")
    x0 = images.detach().float().cpu()
    N = x0.shape[0]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    t_all = torch.arange(T).repeat_interleave(N)                    # (T·N,)
    frames, hists, a_bars = {}, {}, {}
    edges = torch.linspace(-value_range, value_range, bins + 1)
    for kind in schedules:
        d = GaussianDiffusion(make_betas(kind, T))
        xt = d.q_sample(x0.repeat(T, 1, 1, 1), t_all, noise=noise.repeat(T, 1, 1, 1))
        frames[kind] = _strip(xt.reshape(T, N, *x0.shape[1:]))
        hists[kind] = _histograms(frames[kind], edges)
        a_bars[kind] = d.alphas_cumprod.clone()

    first = schedules[0]
    fig = _figure(figsize, dpi)
    gs = fig.add_gridspec(1, 3, width_ratios=[2.2, 1, 1], wspace=0.3)
    ax_img, ax_hist, ax_curve = (fig.add_subplot(gs[0, i]) for i in range(3))
    gray = _gray()       # NaN: the gaps between images
    image_artist = ax_img.imshow(frames[first][0].numpy(), cmap=gray, vmin=-1, vmax=1,
                                 interpolation="nearest")
    ax_img.set_axis_off()
    ax_img.set_title("x_t (values outside [-1, 1] clipped)", fontsize=9)

    hist_artist = ax_hist.stairs(hists[first][0].numpy(), edges.numpy(), fill=True, alpha=0.6,
                                 label="pixels of x_t")
    z = torch.linspace(-value_range, value_range, 200)
    ax_hist.plot(z.numpy(), (torch.exp(-z ** 2 / 2) / (2 * torch.pi) ** 0.5).numpy(), "k--", lw=1,
                 label="N(0, 1)")
    ax_hist.set_xlim(-value_range, value_range)
    ax_hist.set_ylim(0, 1.0)           # N(0, 1) peaks at 0.4; the clean images' spikes are cut off
    ax_hist.set_title("pixel histogram vs N(0, 1)", fontsize=9)
    ax_hist.legend(fontsize=7, loc="upper right")
    ax_hist.tick_params(labelsize=7)

    steps = torch.arange(T).numpy()
    curve, = ax_curve.plot(steps, a_bars[first].numpy(), lw=1.5)
    marker, = ax_curve.plot([0], [float(a_bars[first][0])], "o", color="C3")
    ax_curve.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_curve.set_xlim(0, T - 1)
    ax_curve.set_ylim(-0.02, 1.02)
    ax_curve.set_xlabel("t (0-indexed)", fontsize=8)
    ax_curve.set_title("ᾱ_t  (dotted: SNR = 1)", fontsize=9)
    ax_curve.tick_params(labelsize=7)
    title = fig.suptitle("", fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.78, bottom=0.18)

    slider = widgets.IntSlider(value=0, min=0, max=T - 1, step=1, description="t",
                               continuous_update=True, layout=widgets.Layout(width="60%"))
    toggle = widgets.ToggleButtons(options=list(schedules), value=first, description="schedule")
    image = widgets.Image(value=b"", format="png")
    box = widgets.VBox([widgets.HBox([toggle]), slider, image])
    explorer = ForwardDiffusionExplorer(
        slider=slider, toggle=toggle, image=image, widget=box, figure=fig, image_artist=image_artist,
        hist_artist=hist_artist, curve=curve, marker=marker, title=title, frames=frames, hists=hists,
        edges=edges, alphas_cumprod=a_bars)
    slider.observe(explorer.update, names="value")
    toggle.observe(explorer.update, names="value")
    explorer.update()
    return explorer

