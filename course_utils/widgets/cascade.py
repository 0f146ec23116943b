"""Lesson 09's widgets: noise-conditioning augmentation of a cascade, and three ways to 32 px side by side.

:func:`augmentation_explorer` shows, per image, the base model's 16 px sample, its bicubic upsampling (the
super-resolution model's condition before augmentation) and the super-resolved 32 px image at the slider's
augmentation level a (Ho et al. 2021, §3.2). Every level is precomputed by the notebook with
:func:`course_utils.cascade.super_resolve`, so moving the slider only swaps one picture.
:func:`side_by_side` is a static figure: one row of 32 px samples per method.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..cascade import LESSON_AUG, upsample
from ..validation import check_image_batch, is_number
from ._base import _figure, _FigureWidget, _gray, _strip

__all__ = ["AugmentationExplorer", "augmentation_explorer", "side_by_side"]


def _grey_batch(x, name: str) -> torch.Tensor:
    """(N, 1, H, W) float on the CPU, else a ValueError naming ``name``."""
    x = check_image_batch(x, name)
    if x.shape[1] != 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch of grey images (N, 1, H, W) in [-1, 1]; got shape "
                         f"{tuple(x.shape)}.")
    return x.detach().float().cpu()


def _row(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) → (H, N·(W+1) − 1): one strip of images, NaN gaps between them."""
    return _strip(x[None])[0]


def _level(a, name: str) -> float:
    """A level key: a number (or the record's numeric string, e.g. "0.2") in [0, 1)."""
    try:
        v = float(a) if isinstance(a, str) or is_number(a) else None
    except ValueError:
        v = None
    if v is None or not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be keyed by augmentation levels a in [0, 1) (e.g. cascade.AUG_SWEEP); "
                         f"got the key {a!r}.")
    return v


@dataclass(eq=False)
class AugmentationExplorer(_FigureWidget):
    """A slider over the augmentation level a of a cascade's super-resolution stage.

    Attributes:
        slider: ``ipywidgets.SelectionSlider`` over ``levels``.
        image: ``ipywidgets.Image`` holding the rendered figure (PNG bytes); ``widget``: the ``VBox``.
        figure and its artists: ``low_artist`` (the 16 px samples, nearest-neighbour), ``bicubic_artist``
            (``cascade.upsample(low)``), ``sr_artist`` (super-resolved at the current level), ``title``.
        levels: the sorted levels a; reference: level → the figure named in the title (e.g. the Fréchet
            distance), or None.
        low_strip, bicubic_strip: (H, W') the two fixed rows; sr_strips: (len(levels), H, W') one per level.
    """

    slider: Any
    image: Any
    widget: Any
    figure: Any
    low_artist: Any
    bicubic_artist: Any
    sr_artist: Any
    title: Any
    levels: tuple
    reference: dict | None
    low_strip: torch.Tensor
    bicubic_strip: torch.Tensor
    sr_strips: torch.Tensor
    renders: int = field(default=0)

    @property
    def level(self) -> float:
        return float(self.slider.value)

    def update(self, *_args) -> None:
        """Show the current level: set_data on the super-resolved row, re-render one PNG."""
        i = self.levels.index(self.level)
        self.sr_artist.set_data(self.sr_strips[i].numpy())
        fd = "" if self.reference is None else f",  FD {self.reference[self.level]:.2f}"
        self.title.set_text(f"augmentation level a = {self.level:g}{fd}")
        self._show_figure()

    def render(self, level: float | None = None):
        """The matplotlib Figure at ``level`` (default: the current one; the slider moves there), e.g. for a
        static copy: ``explorer.render(0.2).savefig("a02.png")``."""
        if level is not None:
            a = _level(level, "level")
            if a not in self.levels:
                raise ValueError(f"level must be one of the precomputed levels {self.levels}; got {level!r}.")
            if a != self.level:
                self.slider.value = a                    # observe() calls update()
                return self.figure
        self.update()
        return self.figure


def augmentation_explorer(low: torch.Tensor, super_resolved_by_level: dict, reference: dict | None = None,
                          figsize=(9.0, 4.2), dpi: int = 80) -> AugmentationExplorer:
    """Base sample, bicubic upsampling and super-resolution at a slider's augmentation level, per image.

    Args:
        low: (B, 1, h, w) the base model's samples in [-1, 1] (16 px in the course).
        super_resolved_by_level: {level a: (B, 1, H, W) in [-1, 1]}, H = k·h (32 px), precomputed with
            ``cascade.super_resolve(model, diffusion, low, a)`` at each a of ``cascade.AUG_SWEEP``.
        reference: optional {level a: number} shown in the title as "FD x.xx" (e.g. each level's Fréchet
            distance from ``load_sr32()[2]["evaluation"]["per_level"]``); one entry per level.
        figsize, dpi: size of the rendered figure.
    Returns:
        an :class:`AugmentationExplorer`; display it (last line of a cell) to use it.
    """
    import ipywidgets as widgets

    low = _grey_batch(low, "low")
    B, _, h, w = low.shape
    if not isinstance(super_resolved_by_level, dict) or not super_resolved_by_level:
        raise ValueError("super_resolved_by_level must be a non-empty dict {level a: (B, 1, H, W) images}, e.g. "
                         "{a: cascade.super_resolve(model, diffusion, low, a) for a in cascade.AUG_SWEEP}; got "
                         f"{super_resolved_by_level!r:.60}.")
    by_level = {}
    for key, x in super_resolved_by_level.items():
        a = _level(key, "super_resolved_by_level")
        x = _grey_batch(x, f"super_resolved_by_level[{key!r}]")
        if x.shape[0] != B or x.shape[2] % h or x.shape[3] % w or x.shape[2] // h != x.shape[3] // w \
                or x.shape[2] <= h:
            raise ValueError(f"super_resolved_by_level[{key!r}] must hold low's {B} images super-resolved, shape "
                             f"(B, 1, k·h, k·w) = ({B}, 1, {2 * h}, {2 * w}) for k = 2; got {tuple(x.shape)}.")
        if by_level and x.shape != next(iter(by_level.values())).shape:
            raise ValueError(f"every entry of super_resolved_by_level must have the same shape; got "
                             f"{tuple(x.shape)} at {key!r} and {tuple(next(iter(by_level.values())).shape)} before.")
        if a in by_level:
            raise ValueError(f"super_resolved_by_level names the level {a:g} twice (as {key!r}).")
        by_level[a] = x
    levels = tuple(sorted(by_level))
    H, k = by_level[levels[0]].shape[2], by_level[levels[0]].shape[2] // h
    if reference is not None:
        if not isinstance(reference, dict):
            raise ValueError(f"reference must be None or a dict {{level a: number}}; got {type(reference).__name__}.")
        ref = {_level(a, "reference"): v for a, v in reference.items()}
        missing = [a for a in levels if a not in ref or not is_number(ref[a])]
        if missing:
            raise ValueError(f"reference must give a number for every level {levels}; missing or not a number at "
                             f"{missing}.")
        reference = {a: float(ref[a]) for a in levels}

    nearest = low.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)      # (B, 1, H, W), pixel blocks
    low_strip, bicubic_strip = _row(nearest), _row(upsample(low, H))
    sr_strips = torch.stack([_row(by_level[a]) for a in levels])                # (L, H, W')

    start = LESSON_AUG if LESSON_AUG in levels else levels[0]
    fig = _figure(figsize, dpi)
    axes = fig.subplots(3, 1)
    gray = _gray()
    artists = []
    for ax, strip, name in zip(axes, (low_strip, bicubic_strip, sr_strips[levels.index(start)]),
                               (f"base sample, {h} px (nearest-neighbour)", f"bicubic upsample, {H} px",
                                f"super-resolved, {H} px")):
        artists.append(ax.imshow(strip.numpy(), cmap=gray, vmin=-1, vmax=1, interpolation="nearest"))
        ax.set_axis_off()
        ax.set_title(name, fontsize=9)
    title = fig.suptitle("", fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.86, bottom=0.02, hspace=0.3)

    slider = widgets.SelectionSlider(options=[(f"{a:g}", a) for a in levels], value=start, description="a",
                                     continuous_update=True, layout=widgets.Layout(width="50%"))
    image = widgets.Image(value=b"", format="png")
    box = widgets.VBox([slider, image])
    explorer = AugmentationExplorer(
        slider=slider, image=image, widget=box, figure=fig, low_artist=artists[0], bicubic_artist=artists[1],
        sr_artist=artists[2], title=title, levels=levels, reference=reference, low_strip=low_strip,
        bicubic_strip=bicubic_strip, sr_strips=sr_strips)
    slider.observe(explorer.update, names="value")
    explorer.update()
    return explorer


def side_by_side(rows: dict, title: str | None = None, dpi: int = 80):
    """A static figure, one row of images per method, e.g. {"pixel 32 px": …, "cascade 16 → 32": …,
    "latent 4×8×8": …}.

    Args:
        rows: {method name: (N, 1, H, W) images in [-1, 1]}, every row of the same H × W (32 px in lesson 09).
        title: optional title above the rows.
        dpi: resolution.
    Returns:
        the :class:`matplotlib.figure.Figure` (the last line of a cell displays it).
    """
    if not isinstance(rows, dict) or not rows:
        raise ValueError("rows must be a non-empty dict {method name: (N, 1, H, W) images}, e.g. "
                         "{'cascade 16 → 32': cascade.sample(labels)}; got "
                         f"{type(rows).__name__ if not isinstance(rows, dict) else 'an empty dict'}.")
    batches = {}
    for name, x in rows.items():
        if not isinstance(name, str):
            raise ValueError(f"rows must be keyed by method names (str); got the key {name!r}.")
        batches[name] = _grey_batch(x, f"rows[{name!r}]")
    sizes = {tuple(x.shape[2:]) for x in batches.values()}
    if len(sizes) != 1:
        raise ValueError(f"every row of rows must hold images of one size to compare them; got sizes "
                         f"{sorted(sizes)} (upsample the smaller ones with cascade.upsample).")
    if title is not None and not isinstance(title, str):
        raise ValueError(f"title must be None or a str; got {type(title).__name__}.")
    n_max = max(x.shape[0] for x in batches.values())
    fig = _figure((min(12.0, 1.6 + 0.75 * n_max), 0.9 * len(batches) + (0.4 if title else 0.1)), dpi)
    axes = fig.subplots(len(batches), 1, squeeze=False)[:, 0]
    gray = _gray()
    for ax, (name, x) in zip(axes, batches.items()):
        ax.imshow(_row(x).numpy(), cmap=gray, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_anchor("W")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.2, right=0.99, top=0.85 if title else 0.97, bottom=0.03, hspace=0.15)
    return fig
