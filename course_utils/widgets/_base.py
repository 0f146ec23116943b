"""What every lesson widget shares: the figure/render mixin and the image helpers.

The figures are plain :class:`matplotlib.figure.Figure` objects rendered with the Agg canvas into an
``ipywidgets.Image`` — no pyplot, so the inline backend does not display a second, static copy, and no
ipympl, which Colab lacks. matplotlib and IPython are imported inside the functions, so importing
``course_utils.widgets`` never needs Jupyter.
"""
from __future__ import annotations

import io

import torch

from ..validation import check_image_batch

__all__: list[str] = []          # private helpers of the widget modules


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


def _figure(figsize, dpi: int, figure_class=None):
    """A new Figure (or ``figure_class``, a Figure subclass) on its own Agg canvas (no pyplot: nothing is
    displayed twice)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = (figure_class or Figure)(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _gray():
    """The grey colormap with NaN shown white (the gaps between images in a strip or tile)."""
    import matplotlib

    return matplotlib.colormaps["gray"].with_extremes(bad="white")


def _check_images(images) -> None:
    check_image_batch(images, "images")


def _strip(x: torch.Tensor) -> torch.Tensor:
    """(T, N, 1, H, W) → (T, H, N·(W+1) − 1): images side by side, NaN columns between them."""
    T, N, C, H, W = x.shape
    if C != 1:
        raise ValueError(f"the explorer shows grey images, (N, 1, H, W); got {C} channels.")
    pad = torch.full((T, N, H, 1), float("nan"))
    x = torch.cat([x[:, :, 0], pad], dim=3)                        # (T, N, H, W+1)
    return x.permute(0, 2, 1, 3).reshape(T, H, N * (W + 1))[:, :, :-1]


def _tiles(x: torch.Tensor, ncol: int) -> torch.Tensor:
    """(n, 1, H, W) → (rows·(H+1) − 1, ncol·(W+1) − 1) tile of grey images, NaN gaps between them."""
    n, _, H, W = x.shape
    rows = -(-n // ncol)
    out = torch.full((rows * (H + 1) - 1, ncol * (W + 1) - 1), float("nan"))
    for j in range(n):
        r, c = divmod(j, ncol)
        out[r * (H + 1):r * (H + 1) + H, c * (W + 1):c * (W + 1) + W] = x[j, 0]
    return out
