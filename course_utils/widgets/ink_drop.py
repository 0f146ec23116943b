"""Lesson 02's ink drop: particles diffusing in 2-D, with their x- and y-marginals beside the cloud.

The trajectories come from :func:`course_utils.origins.ink_drop`; this module only draws them. Every
frame's histograms are computed once up front, and a frame only moves existing artists.
"""
from __future__ import annotations

import torch

from ..validation import is_int, is_number
from ._base import _figure

__all__ = ["ink_drop_animation", "ink_drop_frame_steps"]

_INK = "#1f3b73"            # the ink: dark blue particles
_GAUSS = "#c0392b"          # the N(0, 1) density the marginals should approach


def ink_drop_frame_steps(T: int, n_frames: int) -> list[int]:
    """``n_frames`` steps from 0 to ``T``, evenly spaced and rounded, the first 0 and the last ``T``.

    Args:
        T: the number of diffusion steps (a trajectory has T + 1 rows).
        n_frames: how many frames, ≥ 2 (fewer distinct steps when T + 1 < n_frames).
    Returns:
        a sorted list of distinct ints in [0, T].
    """
    if not is_int(T) or T < 1:
        raise ValueError(f"T must be a positive int, the number of steps; got {T!r}.")
    if not is_int(n_frames) or n_frames < 2:
        raise ValueError(f"n_frames must be an int ≥ 2 (the first and the last step at least); got {n_frames!r}.")
    steps = torch.linspace(0, T, n_frames, dtype=torch.float64).round().long().unique()
    return [int(k) for k in steps]


def _check_trajectories(trajectories) -> dict[str, torch.Tensor]:
    if isinstance(trajectories, torch.Tensor):
        trajectories = {"x_t": trajectories}
    if not isinstance(trajectories, dict) or not 1 <= len(trajectories) <= 3:
        raise ValueError("trajectories must be a (T + 1, N, 2) tensor or a dict of 1 to 3 of them, "
                         f"{{panel title: trajectory}}; got {type(trajectories).__name__}"
                         f"{' of ' + str(len(trajectories)) if isinstance(trajectories, dict) else ''}.")
    out = {}
    for label, tr in trajectories.items():
        if not isinstance(tr, torch.Tensor) or tr.ndim != 3 or tr.shape[2] != 2 or not tr.is_floating_point() \
                or tr.shape[0] < 2 or tr.shape[1] < 1:
            got = tuple(tr.shape) if isinstance(tr, torch.Tensor) else type(tr).__name__
            raise ValueError(f"trajectory {label!r} must be a float tensor of shape (T + 1, N, 2) with T ≥ 1 and "
                             f"N ≥ 1 (what origins.ink_drop returns); got {got}.")
        out[str(label)] = tr.detach().to("cpu", torch.float32)
    lengths = {tr.shape[0] for tr in out.values()}
    if len(lengths) != 1:
        raise ValueError(f"every trajectory must have the same number of steps; got lengths {sorted(lengths)}.")
    return out


def ink_drop_animation(trajectories, n_frames: int = 21, lim: float = 3.5, bins: int = 36,
                       interval: int = 150, figsize=(7.6, 3.8), dpi: int = 55):
    """An animation of particle clouds diffusing, each with its x-marginal above and its y-marginal beside.

    The histograms are densities over the box [-lim, lim] (particles outside it are not counted, so a cloud
    spreading past the box shows as histograms sinking), drawn over the N(0, 1) density. Show it in a notebook
    with ``IPython.display.HTML(anim.to_jshtml())``; no pyplot figure is created, so nothing is shown twice.

    Args:
        trajectories: a (T + 1, N, 2) tensor, or a dict ``{panel title: (T + 1, N, 2) tensor}`` of 1 to 3
            trajectories with the same T (e.g. the DDPM step and Brownian spreading), from
            :func:`course_utils.origins.ink_drop`; row k is the cloud after k steps.
        n_frames: how many steps to show, evenly spaced from 0 to T (:func:`ink_drop_frame_steps`).
        lim: half the width of the box shown, > 0.
        bins: histogram bins per axis, ≥ 2.
        interval: milliseconds between frames.
        figsize, dpi: the size of each frame; the default fits two panels.
    Returns:
        a ``matplotlib.animation.FuncAnimation``; it also carries ``steps`` (the step shown in each frame),
        ``figure`` and ``artists``: ``(title, panels)``, each panel a dict of its "scatter", "hist_x",
        "hist_y" and "text" artists.
    """
    from matplotlib.animation import FuncAnimation

    trs = _check_trajectories(trajectories)
    if not is_number(lim) or lim <= 0:
        raise ValueError(f"lim must be a positive number, half the width of the box shown; got {lim!r}.")
    if not is_int(bins) or bins < 2:
        raise ValueError(f"bins must be an int ≥ 2; got {bins!r}.")
    if not is_int(interval) or interval < 1:
        raise ValueError(f"interval must be a positive int (milliseconds between frames); got {interval!r}.")
    lim = float(lim)
    T = next(iter(trs.values())).shape[0] - 1
    steps = ink_drop_frame_steps(T, n_frames)

    edges = torch.linspace(-lim, lim, bins + 1)
    width = 2 * lim / bins
    grid = torch.linspace(-lim, lim, 200)
    gauss = torch.exp(-0.5 * grid ** 2) / (2 * torch.pi) ** 0.5                       # the N(0, 1) density

    def density(v: torch.Tensor) -> torch.Tensor:                                     # (N,) → (bins,)
        return torch.histc(v, bins=bins, min=-lim, max=lim) / (v.numel() * width)

    hists = {label: [(density(tr[k, :, 0]), density(tr[k, :, 1])) for k in steps] for label, tr in trs.items()}
    peak = max(float(h.max()) for hs in hists.values() for pair in hs for h in pair)
    top = min(max(peak, 0.5), 1.0) * 1.08           # the early, peaked marginals may be cut off: N(0, 1) stays big

    P = len(trs)
    fig = _figure(figsize, dpi)
    ratios = [4, 1]
    for _ in range(P - 1):
        ratios += [0.55, 4, 1]
    gs = fig.add_gridspec(2, len(ratios), width_ratios=ratios, height_ratios=[1.3, 4], wspace=0.05, hspace=0.05,
                          left=0.06, right=0.99, bottom=0.08, top=0.84)
    panels = []
    for p, label in enumerate(trs):
        c = 3 * p
        ax = fig.add_subplot(gs[1, c])
        ax_x = fig.add_subplot(gs[0, c], sharex=ax)
        ax_y = fig.add_subplot(gs[1, c + 1], sharey=ax)
        first = trs[label][steps[0]]
        scatter = ax.scatter(first[:, 0].numpy(), first[:, 1].numpy(), s=3, color=_INK, linewidths=0, antialiased=False)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="auto")
        ax.tick_params(labelsize=8)
        hx, hy = hists[label][0]
        hist_x = ax_x.stairs(hx.numpy(), edges.numpy(), fill=True, color=_INK, alpha=0.5)
        hist_y = ax_y.stairs(hy.numpy(), edges.numpy(), fill=True, color=_INK, alpha=0.5, orientation="horizontal")
        ax_x.plot(grid.numpy(), gauss.numpy(), color=_GAUSS, lw=1.2, ls="--")
        ax_y.plot(gauss.numpy(), grid.numpy(), color=_GAUSS, lw=1.2, ls="--")
        ax_x.set_ylim(0, top)
        ax_y.set_xlim(0, top)
        for a in (ax_x, ax_y):
            a.set_axis_off()
        ax_x.set_title(label, fontsize=9)
        text = ax.text(0.03, 0.97, "", transform=ax.transAxes, va="top", fontsize=8,
                       bbox=dict(facecolor="white", alpha=0.8, edgecolor="none", pad=1.5))
        panels.append({"scatter": scatter, "hist_x": hist_x, "hist_y": hist_y, "text": text})
    title = fig.suptitle("", fontsize=10)

    def draw(f: int):
        k = steps[f]
        title.set_text(f"after {k} of T = {T} steps   (dashed: the N(0, 1) density)")
        arts = [title]
        for panel, (label, tr) in zip(panels, trs.items()):
            cloud = tr[k]
            hx, hy = hists[label][f]
            panel["scatter"].set_offsets(cloud.numpy())
            panel["hist_x"].set_data(hx.numpy())
            panel["hist_y"].set_data(hy.numpy())
            std = cloud.std(dim=0, unbiased=False)
            panel["text"].set_text(f"std x {float(std[0]):.2f}, y {float(std[1]):.2f}")
            arts += list(panel.values())
        return arts

    draw(0)
    anim = FuncAnimation(fig, draw, frames=len(steps), interval=interval, blit=False, repeat=True)
    anim.steps = steps
    anim.figure = fig
    anim.artists = (title, panels)
    return anim
