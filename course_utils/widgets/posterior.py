"""Lesson 03's widget: the posterior q(x_{t-1} | x_t, x_0) on a 1-D toy, Monte-Carlo against the formula."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..diffusion import GaussianDiffusion
from ._base import _figure, _FigureWidget

__all__ = ["GaussianMixture1D", "empirical_posterior", "PosteriorExplorer", "posterior_explorer"]


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

    fig = _figure(figsize, dpi)
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

