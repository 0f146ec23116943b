"""Lesson 06's widget: classifier-free guidance — a class picker and a guidance-weight slider, fidelity and
diversity per w."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..diffusion import GaussianDiffusion
from ..validation import is_int
from ._base import _figure, _FigureWidget, _gray, _tiles

__all__ = ["GuidanceExplorer", "guidance_explorer", "guidance_sweep"]


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
    if not is_int(per_class) or per_class < 1:
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

    from ..data import FASHION_MNIST_CLASSES
    from ..metrics import class_agreement_per_class, frechet_distances

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
    sets = [samples[i].reshape(K * n, *samples.shape[3:]) for i in range(L)]
    for i, x in enumerate(sets):
        per = class_agreement_per_class(x, y)
        agreement[i] = torch.tensor([per[k] for k in range(K)])
    # one pass of the classifier over the real images for all L weights
    frechet = None if real_images is None else torch.tensor(frechet_distances(real_images.detach().float().cpu(), sets))
    agreement_mean = agreement.mean(1)
    diversity = samples.std(dim=2).flatten(2).mean(2) if n > 1 else torch.zeros(L, K)   # (L, K)
    ncol = ncol or max(1, -(-n // 2))
    grids = torch.stack([torch.stack([_tiles(samples[i, k], ncol) for k in range(K)]) for i in range(L)])

    start_w = 0.0 if 0.0 in ws else ws[0]
    i0 = ws.index(start_w)
    fig = _figure(figsize, dpi)
    gs = fig.add_gridspec(1, 3, width_ratios=[1.3, 1, 1], wspace=0.35)
    ax_img, ax_agr, ax_fd = (fig.add_subplot(gs[0, j]) for j in range(3))
    gray = _gray()
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
