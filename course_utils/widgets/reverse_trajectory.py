"""Lesson 04's widgets: the reverse process, x_t and the predicted x0 at every step (scrubber and animation)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..validation import is_int
from ._base import _figure, _FigureWidget, _gray, _strip

__all__ = ["Trajectory", "collect_trajectory", "ReverseTrajectoryExplorer", "reverse_trajectory_explorer",
           "reverse_process_animation"]


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
    if not is_int(every) or every < 1:
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

    xs, x0s = _trajectory_strips(tr)
    fig = _figure(figsize, dpi)
    axes = fig.subplots(2, 1)
    gray = _gray()
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

