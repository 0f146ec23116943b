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
    "Trajectory",
    "collect_trajectory",
    "ReverseTrajectoryExplorer",
    "reverse_trajectory_explorer",
    "reverse_process_animation",
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


# ==============================================================================================
# Lesson 04: the reverse process, x_t and the predicted x0 at every step
# ==============================================================================================
@dataclass
class Trajectory:
    """A stored (subsampled) reverse trajectory of a batch.

    Attributes:
        t: (K,) int64, the 0-indexed step denoised at each stored frame (x_t → x_{t_prev}).
        t_prev: (K,) int64, the timestep of ``samples`` (-1 = the final, clean sample).
        samples: (K, N, C, H, W) x_{t_prev}, on the CPU.
        pred_x0: (K, N, C, H, W) the model's estimate of x0 at that step, on the CPU.
    """

    t: torch.Tensor
    t_prev: torch.Tensor
    samples: torch.Tensor
    pred_x0: torch.Tensor

    def __len__(self) -> int:
        return int(self.t.shape[0])


def collect_trajectory(steps_or_tensors, every: int = 1, max_images: int | None = None) -> Trajectory:
    """Store a reverse trajectory, keeping every ``every``-th step (and always the last).

    Args:
        steps_or_tensors: an iterable of :class:`course_utils.diffusion.SampleStep` (what
            ``p_sample_loop_progressive`` / ``ddim_sample_loop_progressive`` yield), a :class:`Trajectory`,
            or a tuple ``(t, samples, pred_x0)`` of a (K,) tensor and two (K, N, C, H, W) tensors.
        every: keep one step in ``every`` (1 keeps all).
        max_images: keep only the first images of the batch.
    Returns:
        a :class:`Trajectory` on the CPU.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int (1 keeps every step); got {every!r}.")
    n = slice(None) if max_images is None else slice(0, int(max_images))
    if isinstance(steps_or_tensors, Trajectory):
        tr = steps_or_tensors
        t, t_prev, xs, x0s = tr.t, tr.t_prev, tr.samples, tr.pred_x0
    elif isinstance(steps_or_tensors, tuple) and len(steps_or_tensors) == 3 \
            and all(isinstance(v, torch.Tensor) for v in steps_or_tensors):
        t, xs, x0s = steps_or_tensors
        t = t.long().cpu()
        t_prev = torch.cat([t[1:], torch.tensor([-1])]) if len(t) else t
    else:
        ts, tps, xs_l, x0_l = [], [], [], []
        last = None
        for i, s in enumerate(steps_or_tensors):
            if not all(hasattr(s, a) for a in ("t", "t_prev", "sample", "pred_x0")):
                raise ValueError("steps_or_tensors must yield SampleStep items (t, t_prev, sample, pred_x0), as "
                                 "GaussianDiffusion.p_sample_loop_progressive does.")
            last = s
            if i % every == 0:
                ts.append(int(s.t)), tps.append(int(s.t_prev))
                xs_l.append(s.sample[n].detach().float().cpu()), x0_l.append(s.pred_x0[n].detach().float().cpu())
                last = None
        if last is not None:
            ts.append(int(last.t)), tps.append(int(last.t_prev))
            xs_l.append(last.sample[n].detach().float().cpu()), x0_l.append(last.pred_x0[n].detach().float().cpu())
        if not ts:
            raise ValueError("the trajectory is empty: pass the steps of a sampler.")
        return Trajectory(torch.tensor(ts), torch.tensor(tps), torch.stack(xs_l), torch.stack(x0_l))
    if xs.ndim != 5 or x0s.shape != xs.shape or t.ndim != 1 or t.shape[0] != xs.shape[0]:
        raise ValueError(f"expected t (K,), samples and pred_x0 (K, N, C, H, W) of the same shape; got "
                         f"{tuple(t.shape)}, {tuple(xs.shape)}, {tuple(x0s.shape)}.")
    keep = sorted(set(range(0, len(t), every)) | {len(t) - 1})
    return Trajectory(t[keep].long().cpu(), t_prev[keep].long().cpu(), xs[keep][:, n].detach().float().cpu(),
                      x0s[keep][:, n].detach().float().cpu())


def _trajectory_strips(tr: Trajectory) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, H, W') strips of x_t and of the predicted x0, images side by side; values clipped for display."""
    return _strip(tr.samples.clamp(-1.5, 1.5)), _strip(tr.pred_x0.clamp(-1.5, 1.5))


def _frame_title(tr: Trajectory, k: int) -> str:
    t, tp = int(tr.t[k]), int(tr.t_prev[k])
    after = "x_0 (final sample)" if tp < 0 else f"x_{tp}"
    return f"frame {k + 1}/{len(tr)}: step t = {t} (paper step {t + 1}) done → {after}"


def _trajectory_figure(tr: Trajectory, figsize, dpi):
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs, x0s = _trajectory_strips(tr)
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1)
    gray = matplotlib.colormaps["gray"].with_extremes(bad="white")
    arts = []
    for ax, strip, label in zip(axes, (xs[0], x0s[0]), ("x_t: the current sample",
                                                           "x̂0: the model's prediction of x0 at this step")):
        arts.append(ax.imshow(strip.numpy(), cmap=gray, vmin=-1, vmax=1, interpolation="nearest"))
        ax.set_axis_off()
        ax.set_title(label, fontsize=9)
    title = fig.suptitle(_frame_title(tr, 0), fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.8, bottom=0.02, hspace=0.3)
    return fig, arts[0], arts[1], title, xs, x0s


@dataclass
class ReverseTrajectoryExplorer(_FigureWidget):
    """Lesson 04's widget: scrub a stored reverse trajectory; x_t and the predicted x0 side by side.

    Attributes:
        slider: ``ipywidgets.IntSlider`` over the stored frames (0 = the first reverse step).
        image: ``ipywidgets.Image`` holding the rendered figure (PNG bytes).
        widget: the ``VBox`` to display (``display(explorer)`` works too).
        figure: the matplotlib Figure; ``sample_artist`` (x_t), ``pred_x0_artist`` (x̂0) and ``title``.
        trajectory: the :class:`Trajectory` shown; ``samples``, ``pred_x0``: its (K, H, W') image strips.
    """

    slider: Any
    image: Any
    widget: Any
    figure: Any
    sample_artist: Any
    pred_x0_artist: Any
    title: Any
    trajectory: Trajectory
    samples: torch.Tensor
    pred_x0: torch.Tensor
    renders: int = field(default=0)

    @property
    def t(self) -> int:
        """The 0-indexed step shown."""
        return int(self.trajectory.t[int(self.slider.value)])

    def update(self, *_args) -> None:
        """Show the current frame: set_data on the two images, re-render one PNG."""
        k = int(self.slider.value)
        self.sample_artist.set_data(self.samples[k].numpy())
        self.pred_x0_artist.set_data(self.pred_x0[k].numpy())
        self.title.set_text(_frame_title(self.trajectory, k))
        self._show_figure()


def reverse_trajectory_explorer(steps_or_tensors, every: int = 1, max_images: int | None = 8,
                                figsize=(9.0, 3.0), dpi: int = 80) -> ReverseTrajectoryExplorer:
    """A slider over the steps of a reverse process: the sample x_t and the predicted x0 at each step.

    Args:
        steps_or_tensors: see :func:`collect_trajectory` (SampleStep items, a Trajectory, or tensors).
        every: keep one step in ``every`` (a 1000-step DDPM run is best stored every 10–25 steps).
        max_images: show only the first images of the batch.
        figsize, dpi: size of the rendered figure.
    Returns:
        a :class:`ReverseTrajectoryExplorer`; display it (last line of a cell) to use it.
    """
    import ipywidgets as widgets

    tr = collect_trajectory(steps_or_tensors, every=every, max_images=max_images)
    if tr.samples.shape[2] != 1:
        raise ValueError(f"the explorer shows grey images, (N, 1, H, W); got {tr.samples.shape[2]} channels.")
    fig, a_x, a_x0, title, xs, x0s = _trajectory_figure(tr, figsize, dpi)
    slider = widgets.IntSlider(value=0, min=0, max=len(tr) - 1, step=1, description="frame",
                               continuous_update=True, layout=widgets.Layout(width="60%"))
    image = widgets.Image(value=b"", format="png")
    box = widgets.VBox([slider, image])
    explorer = ReverseTrajectoryExplorer(slider=slider, image=image, widget=box, figure=fig, sample_artist=a_x,
                                         pred_x0_artist=a_x0, title=title, trajectory=tr, samples=xs, pred_x0=x0s)
    slider.observe(explorer.update, names="value")
    explorer.update()
    return explorer


def reverse_process_animation(steps_or_tensors, every: int = 1, max_images: int | None = 8, interval: int = 80,
                              figsize=(9.0, 3.0), dpi: int = 60):
    """An animation of a reverse process, x_t over the predicted x0, one frame per stored step.

    Save it with ``anim.save("reverse.gif", writer=matplotlib.animation.PillowWriter(fps=12))`` or show
    it in a notebook with ``IPython.display.HTML(anim.to_jshtml())``. No pyplot figure is created, so
    nothing is displayed twice.

    Args:
        steps_or_tensors, every, max_images: see :func:`collect_trajectory`.
        interval: milliseconds between frames.
        figsize, dpi: size of each frame.
    Returns:
        a ``matplotlib.animation.FuncAnimation``; it also carries ``trajectory`` (the :class:`Trajectory`)
        and ``artists`` (x_t image, x̂0 image, title).
    """
    from matplotlib.animation import FuncAnimation

    tr = collect_trajectory(steps_or_tensors, every=every, max_images=max_images)
    if tr.samples.shape[2] != 1:
        raise ValueError(f"the animation shows grey images, (N, 1, H, W); got {tr.samples.shape[2]} channels.")
    fig, a_x, a_x0, title, xs, x0s = _trajectory_figure(tr, figsize, dpi)

    def draw(k: int):
        a_x.set_data(xs[k].numpy())
        a_x0.set_data(x0s[k].numpy())
        title.set_text(_frame_title(tr, k))
        return a_x, a_x0, title

    anim = FuncAnimation(fig, draw, frames=len(tr), interval=interval, blit=False, repeat=True)
    anim.trajectory = tr
    anim.artists = (a_x, a_x0, title)
    return anim


# ==============================================================================================
# Lesson 06: classifier-free guidance — class picker and guidance weight
# ==============================================================================================
__all__ += ["GuidanceExplorer", "guidance_explorer", "guidance_sweep"]


def guidance_sweep(model: torch.nn.Module, diffusion: GaussianDiffusion, ws: Sequence[float], per_class: int = 8,
                   num_steps: int = 20, seed: int = 0, num_classes: int | None = None,
                   image_size: int = 16) -> torch.Tensor:
    """Guided DDIM samples (η = 0) of every class at every guidance weight, all from the same noise.

    One x_T of shape (num_classes · per_class, C, H, W) is drawn on the CPU from ``seed`` and reused for
    every w, so the samples differ only through w: :meth:`GaussianDiffusion.ddim_sample_loop` with
    ``y = [0]*per_class + [1]*per_class + …`` and ``w``.

    Args:
        model: a class-conditional ε-model with ``config.num_classes`` (e.g. ``load_pretrained("cfg16")``).
        diffusion: its schedule, on the model's device.
        ws: guidance weights w (w = 0: conditional, w = −1: unconditional).
        per_class: samples per class; num_steps: DDIM steps; seed: seed of x_T.
        num_classes: classes to sample (default ``model.config.num_classes``).
        image_size: H = W of the samples (16 for the shipped checkpoints).
    Returns:
        (len(ws), num_classes, per_class, C, H, W) float32 samples on the CPU.
    """
    cfg = getattr(model, "config", None)
    K = num_classes if num_classes is not None else getattr(cfg, "num_classes", None)
    if not isinstance(K, int) or K < 1:
        raise ValueError("guidance needs a class-conditional model (UNet(num_classes=...)), or pass num_classes.")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be a positive int; got {per_class!r}.")
    ws = [float(w) for w in ws]
    if not ws:
        raise ValueError("ws must hold at least one guidance weight, e.g. (-1, 0, 1, 3, 5).")
    param = next(model.parameters())
    shape = (K * per_class, cfg.in_channels, image_size, image_size)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(param.device)
    y = torch.arange(K, device=param.device).repeat_interleave(per_class)
    out = []
    for w in ws:
        x = diffusion.ddim_sample_loop(model, x_T=x_T, num_steps=num_steps, y=y, w=w, progress=False)
        out.append(x.float().cpu().reshape(K, per_class, *shape[1:]))
    return torch.stack(out)


@dataclass
class GuidanceExplorer(_FigureWidget):
    """Lesson 06's widget: a class picker and a slider over the guidance weight w.

    Attributes:
        class_picker: ``ipywidgets.Dropdown`` whose value is the class index (labels: the class names).
        slider: ``ipywidgets.SelectionSlider`` over the precomputed weights ``ws``.
        image: ``ipywidgets.Image`` holding the rendered figure (PNG bytes); ``widget``: the ``VBox``.
        figure and its artists: ``image_artist`` (the chosen class's samples at the chosen w),
            ``agreement_line`` (the chosen class's agreement vs w), ``agreement_mean_line`` (all classes),
            ``frechet_line`` (Fréchet distance vs w, None without real images), ``w_lines`` (the vertical
            markers at the current w), ``title``.
        ws: the guidance weights; class_names: one name per class.
        samples: (len(ws), K, n, 1, H, W) the precomputed samples; grids: (len(ws), K, H', W') their tiles.
        agreement: (len(ws), K) the shipped classifier's agreement per class; agreement_mean: (len(ws),).
        diversity: (len(ws), K) mean per-pixel standard deviation across a class's samples.
        frechet: (len(ws),) Fréchet distance of all samples at w to the real images, or None.
    """

    class_picker: Any
    slider: Any
    image: Any
    widget: Any
    figure: Any
    image_artist: Any
    agreement_line: Any
    agreement_mean_line: Any
    frechet_line: Any
    w_lines: Any
    title: Any
    ws: tuple
    class_names: tuple
    samples: torch.Tensor
    grids: torch.Tensor
    agreement: torch.Tensor
    agreement_mean: torch.Tensor
    diversity: torch.Tensor
    frechet: torch.Tensor | None
    renders: int = field(default=0)

    @property
    def w(self) -> float:
        return float(self.slider.value)

    @property
    def label(self) -> int:
        return int(self.class_picker.value)

    def update(self, *_args) -> None:
        """Show the current class and w: set_data on the artists, re-render one PNG."""
        i, k = self.ws.index(self.w), self.label
        self.image_artist.set_data(self.grids[i, k].numpy())
        self.agreement_line.set_ydata(self.agreement[:, k].numpy())
        self.agreement_line.set_label(self.class_names[k])
        legend = self.agreement_line.axes.get_legend()
        if legend is not None:
            legend.get_texts()[0].set_text(self.class_names[k])
        for line in self.w_lines:
            line.set_xdata([self.w, self.w])
        fd = "" if self.frechet is None else f",  Fréchet distance (all classes) {float(self.frechet[i]):.1f}"
        self.title.set_text(f"{self.class_names[k]}, w = {self.w:g}:  classifier agrees on "
                            f"{float(self.agreement[i, k]):.0%},  pixel std across samples "
                            f"{float(self.diversity[i, k]):.2f}{fd}")
        self._show_figure()


def _tiles(x: torch.Tensor, ncol: int) -> torch.Tensor:
    """(n, 1, H, W) → (rows·(H+1) − 1, ncol·(W+1) − 1) tile of grey images, NaN gaps between them."""
    n, _, H, W = x.shape
    rows = -(-n // ncol)
    out = torch.full((rows * (H + 1) - 1, ncol * (W + 1) - 1), float("nan"))
    for j in range(n):
        r, c = divmod(j, ncol)
        out[r * (H + 1):r * (H + 1) + H, c * (W + 1):c * (W + 1) + W] = x[j, 0]
    return out


def guidance_explorer(model: torch.nn.Module, diffusion: GaussianDiffusion,
                      ws: Sequence[float] = (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0), per_class: int = 8,
                      num_steps: int = 20, seed: int = 0, real_images: torch.Tensor | None = None,
                      class_names: Sequence[str] | None = None, samples: torch.Tensor | None = None,
                      image_size: int = 16, ncol: int | None = None, figsize=(10.0, 3.2), dpi: int = 80) -> GuidanceExplorer:
    """A class picker and a guidance slider over precomputed guided samples, with fidelity and diversity per w.

    For every w in ``ws`` and every class, :func:`guidance_sweep` draws ``per_class`` DDIM samples from
    the **same** x_T, so moving the slider shows the effect of w alone. For each w the shipped classifier's
    agreement (:func:`course_utils.metrics.class_agreement_per_class`: fidelity) and, with
    ``real_images``, the Fréchet distance of all samples to them (:func:`course_utils.metrics.frechet_distance`:
    quality and diversity together) are computed once and plotted against w.

    Args:
        model, diffusion: a class-conditional ε-model and its schedule (``load_pretrained("cfg16")``).
        ws: guidance weights, e.g. from −1 (unconditional) to 5.
        per_class, num_steps, seed: samples per class, DDIM steps, seed of the shared noise.
        real_images: (N, 1, H, W) real images in [-1, 1] for the Fréchet distance (e.g. the test split).
        class_names: one name per class (default: FashionMNIST's).
        image_size: H = W of the samples (16 for the shipped checkpoints).
        samples: reuse a precomputed (len(ws), K, n, 1, H, W) :func:`guidance_sweep` result instead of sampling.
        ncol: images per row of the sample grid (default: half of per_class, at least 1).
        figsize, dpi: size of the rendered figure.
    Returns:
        a :class:`GuidanceExplorer`; display it (last line of a cell) to use it.
    """
    import ipywidgets as widgets
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .data import FASHION_MNIST_CLASSES
    from .metrics import class_agreement_per_class, frechet_distance

    ws = tuple(float(w) for w in ws)
    if len(set(ws)) != len(ws):
        raise ValueError(f"ws must not repeat a weight; got {ws}.")
    if samples is None:
        samples = guidance_sweep(model, diffusion, ws, per_class=per_class, num_steps=num_steps, seed=seed,
                                 image_size=image_size)
    if samples.ndim != 6 or samples.shape[0] != len(ws):
        raise ValueError(f"samples must have shape (len(ws) = {len(ws)}, K, n, 1, H, W); got {tuple(samples.shape)}.")
    samples = samples.detach().float().cpu()
    L, K, n = samples.shape[:3]
    names = tuple(class_names) if class_names is not None else tuple(FASHION_MNIST_CLASSES[:K])
    if len(names) != K:
        raise ValueError(f"class_names must hold {K} names, one per class; got {len(names)}.")
    y = torch.arange(K).repeat_interleave(n)
    agreement = torch.zeros(L, K)
    frechet = None if real_images is None else torch.zeros(L)
    for i in range(L):
        x = samples[i].reshape(K * n, *samples.shape[3:])
        per = class_agreement_per_class(x, y)
        agreement[i] = torch.tensor([per[k] for k in range(K)])
        if frechet is not None:
            frechet[i] = frechet_distance(real_images.detach().float().cpu(), x)
    agreement_mean = agreement.mean(1)
    diversity = samples.std(dim=2).flatten(2).mean(2) if n > 1 else torch.zeros(L, K)   # (L, K)
    ncol = ncol or max(1, -(-n // 2))
    grids = torch.stack([torch.stack([_tiles(samples[i, k], ncol) for k in range(K)]) for i in range(L)])

    start_w = 0.0 if 0.0 in ws else ws[0]
    i0 = ws.index(start_w)
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, 3, width_ratios=[1.3, 1, 1], wspace=0.35)
    ax_img, ax_agr, ax_fd = (fig.add_subplot(gs[0, j]) for j in range(3))
    gray = matplotlib.colormaps["gray"].with_extremes(bad="white")
    image_artist = ax_img.imshow(grids[i0, 0].numpy(), cmap=gray, vmin=-1, vmax=1, interpolation="nearest")
    ax_img.set_axis_off()
    ax_img.set_title(f"{n} samples, same noise for every w", fontsize=9)
    w_axis = list(ws)
    agreement_line, = ax_agr.plot(w_axis, agreement[:, 0].numpy(), "o-", color="C0", label=names[0])
    agreement_mean_line, = ax_agr.plot(w_axis, agreement_mean.numpy(), "s--", color="grey", ms=3,
                                       label="all classes")
    ax_agr.axhline(0.1, color="grey", lw=0.6, ls=":")
    ax_agr.set_ylim(-0.03, 1.03)
    ax_agr.set_xlabel("guidance weight w", fontsize=8)
    ax_agr.set_title("classifier agrees (fidelity)", fontsize=9)
    ax_agr.legend(fontsize=7, loc="lower right")
    lines = [ax_agr.axvline(start_w, color="C3", lw=1)]
    frechet_line = None
    if frechet is not None:
        frechet_line, = ax_fd.plot(w_axis, frechet.numpy(), "o-", color="C2")
        ax_fd.set_title("Fréchet distance to real (lower: better)", fontsize=9)
        lines.append(ax_fd.axvline(start_w, color="C3", lw=1))
    else:
        ax_fd.text(0.5, 0.5, "pass real_images=…\nfor the Fréchet distance", ha="center", va="center",
                   fontsize=8, transform=ax_fd.transAxes)
    ax_fd.set_xlabel("guidance weight w", fontsize=8)
    for ax in (ax_agr, ax_fd):
        ax.tick_params(labelsize=7)
    title = fig.suptitle("", fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.8, bottom=0.17)

    class_picker = widgets.Dropdown(options=[(name, k) for k, name in enumerate(names)], value=0,
                                    description="class")
    slider = widgets.SelectionSlider(options=[(f"{w:g}", w) for w in ws], value=start_w, description="w",
                                     continuous_update=True, layout=widgets.Layout(width="50%"))
    image = widgets.Image(value=b"", format="png")
    box = widgets.VBox([widgets.HBox([class_picker, slider]), image])
    explorer = GuidanceExplorer(
        class_picker=class_picker, slider=slider, image=image, widget=box, figure=fig,
        image_artist=image_artist, agreement_line=agreement_line, agreement_mean_line=agreement_mean_line,
        frechet_line=frechet_line, w_lines=lines, title=title, ws=ws, class_names=names, samples=samples,
        grids=grids, agreement=agreement, agreement_mean=agreement_mean, diversity=diversity, frechet=frechet)
    class_picker.observe(explorer.update, names="value")
    slider.observe(explorer.update, names="value")
    explorer.update()
    return explorer
