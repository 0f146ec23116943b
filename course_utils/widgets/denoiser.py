"""Lesson 01's widget: a one-level denoiser at other noise levels (input, output and target side by side)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ._base import _check_images, _figure, _FigureWidget, _gray, _strip

__all__ = ["DenoiserExplorer", "denoiser_explorer"]


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

    from ..diffusion import blend_noise

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
    fig = _figure(figsize, dpi)
    axes = fig.subplots(3, 1)
    gray = _gray()
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

