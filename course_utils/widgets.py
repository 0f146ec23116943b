"""Interactive widgets for the lessons: ipywidgets core and matplotlib only.

ipywidgets is imported inside the functions, so importing ``course_utils`` never needs Jupyter. Only API
common to ipywidgets 7.7 (Colab) and 8 is used: ``IntSlider``, ``ToggleButtons``, ``Image``, ``HBox``,
``VBox``, ``Layout`` and ``observe(handler, names="value")``.

The figures are plain :class:`matplotlib.figure.Figure` objects rendered with the Agg canvas into an
``ipywidgets.Image`` — no pyplot, so the inline backend does not display a second, static copy, and no
ipympl, which Colab lacks. Everything a widget shows is computed once up front; moving a control only
calls ``set_data`` on existing artists and re-renders one small PNG.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from .diffusion import GaussianDiffusion
from .schedules import make_betas

__all__ = [
    "ForwardDiffusionExplorer",
    "forward_diffusion_explorer",
    "GaussianMixture1D",
    "empirical_posterior",
    "PosteriorExplorer",
    "posterior_explorer",
    "DenoiserExplorer",
    "denoiser_explorer",
]


class _FigureWidget:
    """Shared by the explorers: re-render ``figure`` into the PNG ``image`` widget; display ``widget``."""

    def _show_figure(self) -> None:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png")
        self.image.value = buf.getvalue()
        self.renders += 1

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


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


def _check_images(images) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor of shape (N, 1, H, W) in [-1, 1]; got "
                         f"{getattr(images, 'shape', type(images).__name__)}.")


def _strip(x: torch.Tensor) -> torch.Tensor:
    """(T, N, 1, H, W) → (T, H, N·(W+1) − 1): images side by side, NaN columns between them."""
    T, N, C, H, W = x.shape
    if C != 1:
        raise ValueError(f"the explorer shows grey images, (N, 1, H, W); got {C} channels.")
    pad = torch.full((T, N, H, 1), float("nan"))
    x = torch.cat([x[:, :, 0], pad], dim=3)                        # (T, N, H, W+1)
    return x.permute(0, 2, 1, 3).reshape(T, H, N * (W + 1))[:, :, :-1]


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
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, 3, width_ratios=[2.2, 1, 1], wspace=0.3)
    ax_img, ax_hist, ax_curve = (fig.add_subplot(gs[0, i]) for i in range(3))
    gray = matplotlib.colormaps["gray"].with_extremes(bad="white")       # NaN: the gaps between images
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


# ----------------------------------------------------------------------------------------------
# Lesson 01: a one-level denoiser at other noise levels
# ----------------------------------------------------------------------------------------------
@dataclass
class DenoiserExplorer(_FigureWidget):
    """Lesson 01's widget: a slider over the noise level at test time; input, output and target side by side.

    Attributes:
        slider: ``ipywidgets.IntSlider`` over the index into ``levels``.
        image: ``ipywidgets.Image`` holding the rendered figure (PNG bytes).
        widget: the ``VBox`` to display (``display(explorer)`` works too).
        figure: the matplotlib Figure; ``input_artist``, ``output_artist``, ``target_artist`` (three
            AxesImages) and ``title``.
        levels: (L,) noise levels; ``train_level``: the level the model was trained at.
        inputs, outputs: (L, H, W') image strips, precomputed: noisy input and the model's output.
        target: (H, W') strip of the clean images; ``mse``: (L,) mean squared error output vs target.
    """

    slider: Any
    image: Any
    widget: Any
    figure: Any
    input_artist: Any
    output_artist: Any
    target_artist: Any
    title: Any
    levels: torch.Tensor
    train_level: float | None
    inputs: torch.Tensor
    outputs: torch.Tensor
    target: torch.Tensor
    mse: torch.Tensor
    renders: int = field(default=0)

    @property
    def level(self) -> float:
        return float(self.levels[int(self.slider.value)])

    def update(self, *_args) -> None:
        """Show the current level: set_data on the two changing images, re-render one PNG."""
        i = int(self.slider.value)
        self.input_artist.set_data(self.inputs[i].numpy())
        self.output_artist.set_data(self.outputs[i].numpy())
        trained = "" if self.train_level is None else f"  (trained at {self.train_level:g})"
        self.title.set_text(f"noise level {self.level:.2f}{trained}:  MSE(output, target) = "
                            f"{float(self.mse[i]):.4f}")
        self._show_figure()


def denoiser_explorer(model: torch.nn.Module, images: torch.Tensor, levels: Sequence[float] | None = None,
                      train_level: float | None = None, seed: int = 0, figsize=(9.0, 3.4),
                      dpi: int = 80) -> DenoiserExplorer:
    """A slider over the noise level fed to a denoiser trained at one level.

    For every level ``a``, the input is :func:`course_utils.diffusion.blend_noise` ``(x0, ε, a)`` with one
    fixed ε, and the model's output is computed once up front (``model.eval()``, no gradients), so the
    slider only swaps image data.

    Args:
        model: maps (N, 1, H, W) → (N, 1, H, W), e.g. lesson 01's U-Net.
        images: (N, 1, H, W) clean images in [-1, 1] (a handful).
        levels: noise levels in [0, 1]; default 0, 0.1, …, 1.
        train_level: the level the model was trained at (shown in the title); the slider starts there.
        seed: seed of the fixed noise.
        figsize, dpi: size of the rendered figure.
    Returns:
        a :class:`DenoiserExplorer`; display it (last line of a cell) to use it.
    """
    import ipywidgets as widgets
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .diffusion import blend_noise

    _check_images(images)
    levels = torch.linspace(0, 1, 11) if levels is None else torch.as_tensor(list(levels), dtype=torch.float32)
    if levels.ndim != 1 or len(levels) == 0 or bool(((levels < 0) | (levels > 1)).any()):
        raise ValueError("levels must be a non-empty list of noise levels in [0, 1].")
    param = next(model.parameters(), None)
    device = param.device if param is not None else images.device
    x0 = images.detach().float().to(device)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            noisy = torch.stack([blend_noise(x0, noise, float(a)) for a in levels])      # (L, N, 1, H, W)
            out = torch.stack([model(x) for x in noisy])                                 # (L, N, 1, H, W)
    finally:
        model.train(was)
    noisy, out, x0 = noisy.cpu(), out.float().cpu(), x0.cpu()
    mse = ((out - x0) ** 2).flatten(1).mean(1)                                           # (L,)
    inputs, outputs = _strip(noisy), _strip(out)
    target = _strip(x0.unsqueeze(0))[0]

    start = 0 if train_level is None else int((levels - train_level).abs().argmin())
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1)
    gray = matplotlib.colormaps["gray"].with_extremes(bad="white")
    arts = []
    for ax, strip, label in zip(axes, (inputs[start], outputs[start], target),
                                ("input: (1 − a)·x0 + a·ε", "output: model(input)", "target: x0")):
        arts.append(ax.imshow(strip.numpy(), cmap=gray, vmin=-1, vmax=1, interpolation="nearest"))
        ax.set_axis_off()
        ax.set_title(label, fontsize=9)
    title = fig.suptitle("", fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.82, bottom=0.02, hspace=0.35)

    slider = widgets.IntSlider(value=start, min=0, max=len(levels) - 1, step=1,
                               description="level index", continuous_update=True,
                               layout=widgets.Layout(width="60%"))
    image = widgets.Image(value=b"", format="png")
    box = widgets.VBox([slider, image])
    explorer = DenoiserExplorer(slider=slider, image=image, widget=box, figure=fig, input_artist=arts[0],
                                output_artist=arts[1], target_artist=arts[2], title=title, levels=levels,
                                train_level=train_level, inputs=inputs, outputs=outputs, target=target, mse=mse)
    slider.observe(explorer.update, names="value")
    explorer.update()
    return explorer


# ==============================================================================================
# Lesson 03: the posterior q(x_{t-1} | x_t, x_0) on a 1-D toy
# ==============================================================================================


@dataclass(frozen=True)
class GaussianMixture1D:
    """A 1-D mixture of Gaussians, the toy data distribution of lesson 03 (as in Prince, UDL ch. 18).

    Attributes:
        weights, means, stds: one entry per component; the weights sum to 1. The default puts three
            bumps inside [-1, 1], the data range of the course.
    """

    weights: tuple[float, ...] = (0.3, 0.5, 0.2)
    means: tuple[float, ...] = (-0.8, 0.1, 0.8)
    stds: tuple[float, ...] = (0.1, 0.15, 0.08)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n,) float32 samples."""
        k = torch.multinomial(torch.tensor(self.weights), n, replacement=True, generator=generator)
        z = torch.randn(n, generator=generator)
        return torch.tensor(self.means)[k] + torch.tensor(self.stds)[k] * z

    def pdf(self, x: torch.Tensor) -> torch.Tensor:
        """Density at the points x (any shape)."""
        x = x.unsqueeze(-1)
        w, m, s = (torch.tensor(v) for v in (self.weights, self.means, self.stds))
        return (w * torch.exp(-0.5 * ((x - m) / s) ** 2) / (s * (2 * torch.pi) ** 0.5)).sum(-1)


def empirical_posterior(diffusion: GaussianDiffusion, t: int, x0, xt_star: float, half_width: float,
                        n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte-Carlo samples of x_{t-1} given x_t ∈ [xt_star − half_width, xt_star + half_width].

    Draws n pairs (x_{t-1}, x_t) with x_{t-1} ~ q(x_{t-1} | x_0) (:meth:`GaussianDiffusion.q_sample` at
    t − 1; x_{-1} is x0 itself) and x_t ~ q(x_t | x_{t-1}) (:meth:`GaussianDiffusion.q_step`), then keeps
    the x_{t-1} whose x_t fell in the window. For a fixed x0 their histogram approaches
    N(μ̃_t(x_t, x0), β̃_t) as the window shrinks (Ho et al. 2020, eqs. 6–7).

    Args:
        diffusion: the schedule; t: 0-indexed step in [0, T-1].
        x0: a float (x0 known) or an (n,) tensor of x0 samples (x0 drawn from the data).
        xt_star, half_width: the window on x_t.
        n: number of pairs drawn; generator: optional CPU torch.Generator.
    Returns:
        (m,) float32 tensor of the accepted x_{t-1}, m ≤ n.
    """
    x0 = torch.as_tensor(x0, dtype=torch.float32)
    x0 = x0.expand(n).clone() if x0.ndim == 0 else x0
    if x0.shape != (n,):
        raise ValueError(f"x0 must be a float or a tensor of shape (n,) = ({n},); got {tuple(x0.shape)}.")
    x_prev, xt = _posterior_pairs(diffusion, t, x0, generator)
    return x_prev[(xt - xt_star).abs() <= half_width]


def _posterior_pairs(d: GaussianDiffusion, t: int, x0: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_{t-1}, x_t) for each x0: q_sample at t − 1 (x_{-1} = x0), then one q_step at t."""
    x_prev = d.q_sample(x0, t - 1, generator=generator) if t > 0 else x0
    return x_prev, d.q_step(x_prev, t, generator=generator)


@dataclass
class PosteriorExplorer(_FigureWidget):
    """Lesson 03's widget: histograms of x_{t-1} given x_t (and x0) against N(μ̃_t, β̃_t).

    Attributes:
        t_slider: ``IntSlider`` over the 0-indexed step t; ``x0_slider``: ``IntSlider`` over the index of
            ``x0_values``. ``image`` (``ipywidgets.Image``, PNG) and ``widget`` (the ``VBox``).
        figure and its artists: ``known_artist`` / ``unknown_artist`` (StepPatch histograms of x_{t-1}
            with x0 known / x0 drawn from the mixture), ``pdf_line`` (the analytic N(μ̃, β̃); a spike at
            t = 0, where β̃_0 = 0), ``x0_line`` and ``xt_line`` (on the data density), ``title``.
        frames: (t, i) → dict with "edges", "known", "unknown" (histogram densities), "grid", "pdf",
            "mean", "var" (μ̃, β̃ from q_posterior), "xt" (the window's centre), "samples" (the
            accepted x_{t-1} for known x0), "n_unknown".
    """

    t_slider: Any
    x0_slider: Any
    image: Any
    widget: Any
    figure: Any
    known_artist: Any
    unknown_artist: Any
    pdf_line: Any
    x0_line: Any
    xt_line: Any
    ax_post: Any
    title: Any
    x0_values: torch.Tensor
    frames: dict
    renders: int = field(default=0)

    @property
    def t(self) -> int:
        return int(self.t_slider.value)

    @property
    def x0(self) -> float:
        return float(self.x0_values[int(self.x0_slider.value)])

    def frame(self) -> dict:
        return self.frames[(self.t, int(self.x0_slider.value))]

    def update(self, *_args) -> None:
        """Show the current (t, x0): set_data on the artists, re-render one PNG."""
        f = self.frame()
        self.known_artist.set_data(values=f["known"].numpy(), edges=f["edges"].numpy())
        self.unknown_artist.set_data(values=f["unknown"].numpy(), edges=f["edges"].numpy())
        self.pdf_line.set_data(f["grid"].numpy(), f["pdf"].numpy())
        self.x0_line.set_xdata([self.x0, self.x0])
        self.xt_line.set_xdata([f["xt"], f["xt"]])
        e = f["edges"]
        self.ax_post.set_xlim(float(e[0]), float(e[-1]))
        top = max(float(f["known"].max()), float(f["unknown"].max()),
                  float(f["pdf"].max()) if f["var"] > 0 else 0.0, 1e-3)
        self.ax_post.set_ylim(0, 1.15 * top)
        self.title.set_text(f"t = {self.t} (paper step {self.t + 1}), x0 = {self.x0:.2f}, x_t ≈ {f['xt']:.2f}:"
                            f"  μ̃ = {f['mean']:.3f},  β̃ = {f['var']:.2e}  ({len(f['samples'])} samples)")
        self._show_figure()


def posterior_explorer(betas: torch.Tensor, x0_values: Sequence[float] = (-0.8, -0.4, 0.0, 0.4, 0.8),
                       data: GaussianMixture1D | None = None, n: int = 40000, eps_star: float = 0.8,
                       window: float = 0.05, bins: int = 40, seed: int = 0, figsize=(10.0, 3.0),
                       dpi: int = 80) -> PosteriorExplorer:
    """Sliders over t and x0 showing the empirical q(x_{t-1} | x_t ≈ x_t*, x0) against N(μ̃_t, β̃_t).

    For every (t, x0) — all precomputed — the window's centre is a typical x_t,
    x_t* = √ᾱ_t·x0 + eps_star·√(1 − ᾱ_t), and its half-width ``window``·√(1 − ᾱ_t). Two histograms of
    the accepted x_{t-1} (:func:`empirical_posterior`, n pairs each): with x0 fixed at the slider's value,
    and with x0 drawn from the mixture ``data`` (the unknown-x0 posterior q(x_{t-1} | x_t) a model has
    to learn). The curve is N(μ̃_t(x_t*, x0), β̃_t) from :meth:`GaussianDiffusion.q_posterior`.

    Args:
        betas: (T,) schedule (keep T small, e.g. 25: everything is precomputed).
        x0_values: the clean values the x0 slider offers.
        data: the data distribution (default :class:`GaussianMixture1D`).
        n, eps_star, window, bins, seed: Monte-Carlo pairs per frame, window position and width, bins.
    Returns:
        a :class:`PosteriorExplorer`; display it (last line of a cell) to use it.
    """
    import ipywidgets as widgets
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    d = GaussianDiffusion(betas)
    T = d.num_timesteps
    data = data or GaussianMixture1D()
    xs = torch.as_tensor(list(x0_values), dtype=torch.float32)
    if xs.ndim != 1 or len(xs) == 0:
        raise ValueError("x0_values must be a non-empty sequence of floats.")
    g = torch.Generator().manual_seed(seed)
    frames = {}
    k = len(xs)
    for t in range(T):                     # one batch per t: k known-x0 groups, then k unknown-x0 groups
        sd = float(d.sqrt_one_minus_alphas_cumprod[t])
        centres = float(d.sqrt_alphas_cumprod[t]) * xs + eps_star * sd               # (k,) x_t*
        x0_all = torch.cat([xs.repeat_interleave(n), data.sample(k * n, g)])
        x_prev, xt_all = _posterior_pairs(d, t, x0_all, g)
        keep = (xt_all - centres.repeat(2).repeat_interleave(n)).abs() <= window * sd
        groups = [x_prev[j * n:(j + 1) * n][keep[j * n:(j + 1) * n]] for j in range(2 * k)]
        for i, x0 in enumerate(xs.tolist()):
            xt = float(centres[i])
            known, unknown = groups[i], groups[k + i]
            mean, var = d.q_posterior(torch.tensor([x0]), torch.tensor([xt]), t)
            mean, var = float(mean), float(var)
            s = max(var ** 0.5, 0.01)
            edges = torch.linspace(mean - 5 * s, mean + 5 * s, bins + 1)
            width = float(edges[1] - edges[0])

            def density(v):
                return torch.histc(v, bins, float(edges[0]), float(edges[-1])) / (max(len(v), 1) * width)

            grid = torch.linspace(float(edges[0]), float(edges[-1]), 200)
            if var > 0:
                pdf = torch.exp(-0.5 * (grid - mean) ** 2 / var) / (2 * torch.pi * var) ** 0.5
            else:                                      # β̃_0 = 0: the posterior is a spike at x0
                grid = torch.tensor([mean, mean])
                pdf = torch.tensor([0.0, 1e6])
            frames[(t, i)] = dict(edges=edges, known=density(known), unknown=density(unknown), grid=grid,
                                  pdf=pdf, mean=mean, var=var, xt=xt, samples=known, n_unknown=len(unknown))

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax_data, ax_post = fig.add_subplot(1, 3, 1), fig.add_subplot(1, 3, (2, 3))
    z = torch.linspace(-1.5, 1.5, 300)
    ax_data.plot(z.numpy(), data.pdf(z).numpy(), color="grey")
    x0_line = ax_data.axvline(float(xs[0]), color="C0", label="x0")
    xt_line = ax_data.axvline(0.0, color="C3", ls="--", label="x_t*")
    ax_data.set_xlim(-1.5, 1.5)
    ax_data.set_title("data: a mixture of Gaussians", fontsize=9)
    ax_data.legend(fontsize=7, loc="upper left")
    ax_data.tick_params(labelsize=7)
    f0 = frames[(0, 0)]
    unknown_artist = ax_post.stairs(f0["unknown"].numpy(), f0["edges"].numpy(), fill=True, alpha=0.35,
                                    color="grey", label="x_{t-1} | x_t ≈ x_t*  (x0 from the data)")
    known_artist = ax_post.stairs(f0["known"].numpy(), f0["edges"].numpy(), fill=True, alpha=0.6,
                                  color="C0", label="x_{t-1} | x_t ≈ x_t*, x0")
    pdf_line, = ax_post.plot(f0["grid"].numpy(), f0["pdf"].numpy(), "k-", lw=1.2, label="N(μ̃_t, β̃_t)")
    ax_post.legend(fontsize=7, loc="upper right")
    ax_post.tick_params(labelsize=7)
    ax_post.set_xlabel("x_{t-1}", fontsize=8)
    title = fig.suptitle("", fontsize=9)
    fig.subplots_adjust(left=0.04, right=0.98, top=0.82, bottom=0.16, wspace=0.25)

    t_slider = widgets.IntSlider(value=0, min=0, max=T - 1, step=1, description="t",
                                 continuous_update=True, layout=widgets.Layout(width="60%"))
    x0_slider = widgets.IntSlider(value=0, min=0, max=len(xs) - 1, step=1, description="x0 index",
                                  continuous_update=True, layout=widgets.Layout(width="40%"))
    image = widgets.Image(value=b"", format="png")
    box = widgets.VBox([widgets.HBox([t_slider, x0_slider]), image])
    explorer = PosteriorExplorer(
        t_slider=t_slider, x0_slider=x0_slider, image=image, widget=box, figure=fig,
        known_artist=known_artist, unknown_artist=unknown_artist, pdf_line=pdf_line, x0_line=x0_line,
        xt_line=xt_line, ax_post=ax_post, title=title, x0_values=xs, frames=frames)
    t_slider.observe(explorer.update, names="value")
    x0_slider.observe(explorer.update, names="value")
    explorer.update()
    return explorer
