"""Diagrams of the course's pictures, drawn with matplotlib: the U-Nets, the diffusion chain, classifier-free
guidance and CLIP's two towers.

Each function returns a :class:`matplotlib.figure.Figure` on its own Agg canvas, with no pyplot (as the
widgets' figures in :mod:`course_utils.widgets._base`), whose ``_repr_png_`` renders it: the last line of a
notebook cell, ``unet_diagram()``, shows it once, in JupyterLab and in Colab alike, even before pyplot has
drawn anything in that kernel (the inline backend registers its Figure formatter only then). Pass ``ax`` to
draw into an axes of your own figure instead. matplotlib is imported inside the functions: importing
``course_utils`` never needs it.

The numbers in a diagram are not typed in: :func:`unet_diagram` and :func:`small_unet_diagram` build the
real model (:class:`course_utils.models.UNet`, lesson 01's U-Net of :mod:`course_utils.models` blocks) and
label every box with the shape a forward pass produces there; :func:`guidance_diagram` takes its
coefficients from :func:`course_utils.diffusion.classifier_free_guidance`; :func:`clip_diagram` reads a
:class:`course_utils.clip.CLIPConfig`.

=============================  =======  ==================================================================
function                       lesson   what it shows
=============================  =======  ==================================================================
:func:`small_unet_diagram`     01       lesson 01's two-level U-Net (down blocks, up blocks, skips)
:func:`unet_diagram`           01, 04   the course's ε-model: ResBlocks, skips, where t (and y) enter
:func:`diffusion_chain_diagram` 03      x_0 → … → x_T with q on the arrows, p_θ back, optional images
:func:`guidance_diagram`       06       one x_t, two calls of the network, ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅)
:func:`clip_diagram`           08       two towers, two projections, one B × B similarity matrix
=============================  =======  ==================================================================
"""
from __future__ import annotations

import functools
import io
import math

import torch

from .validation import is_int
from .widgets._base import _figure

__all__ = ["unet_diagram", "small_unet_diagram", "diffusion_chain_diagram", "guidance_diagram", "clip_diagram"]

# colours: blue = image side / the down path, red = text side, orange = takes the embedding
_BLUE = dict(fc="#e8f0fb", ec="#3b6fb6")
_RED = dict(fc="#fbeee8", ec="#b6573b")
_ORANGE = dict(fc="#fff4e0", ec="#d98a1c")
_GREY = dict(fc="#f2f2f2", ec="#777777")
_GREEN = dict(fc="#e9f6ea", ec="#3f8f4a")


# ----------------------------------------------------------------------------------------------
# Drawing helpers
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _diagram_figure_class():
    """The Figure subclass of the diagrams (built on first use: matplotlib is imported only then)."""
    from matplotlib.figure import Figure

    class DiagramFigure(Figure):
        """A Figure that IPython shows as a PNG by itself, with or without the inline backend's formatter."""

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", bbox_inches="tight")
            return buf.getvalue()

    return DiagramFigure


def _axes(ax, figsize, xlim, ylim):
    """``ax`` (validated) or a new axes on a new Agg figure; limits set, axis off. Returns (fig, ax)."""
    from matplotlib.axes import Axes

    if ax is None:
        fig = _figure(figsize, 100, _diagram_figure_class())     # its own canvas: pyplot never sees it
        ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - 0.35 / figsize[1]))   # room for the title
    elif not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes to draw into, or None for a new figure; got "
                         f"{type(ax).__name__}.")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_axis_off()
    return ax.figure, ax


def _box(ax, cx, cy, w, h, text, colours, fontsize=9, lw=1.2):
    """A rounded box of size w × h centred at (cx, cy) with centred text; returns its geometry."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.12",
                                lw=lw, **colours))
    ax.text(cx, cy, text, ha="center", va="center", fontsize=fontsize)
    return cx, cy, w, h


def _arrow(ax, start, end, color="#222222", ls="-", lw=1.3, rad=0.0):
    """An arrow from ``start`` to ``end`` (data coordinates); ``rad`` bends it (arc3)."""
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color=color, lw=lw, ls=ls, shrinkA=0, shrinkB=0,
                                mutation_scale=13, connectionstyle=f"arc3,rad={rad}"))


def _gray_image(ax, img, cx, cy, half):
    """A (1, H, W) image, shown on the [-1, 1] grey scale (values beyond clip), in a square of side 2·half."""
    ax.imshow(img[0].detach().float().cpu().clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1,
              extent=(cx - half, cx + half, cy - half, cy + half), interpolation="nearest", zorder=2)
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((cx - half, cy - half), 2 * half, 2 * half, fill=False, ec="#555555", lw=1, zorder=3))


def _check_size(image_size, factor: int, channels) -> None:
    if not is_int(image_size) or image_size < 1 or image_size % factor:
        raise ValueError(f"image_size must be a positive int divisible by {factor} (channels={channels} halves "
                         f"the image {int(math.log2(factor))} time(s)), e.g. 16; got {image_size!r}.")


def _check_channels(channels, exactly: int | None = None) -> tuple[int, ...]:
    if isinstance(channels, list):
        channels = tuple(channels)
    ok = (isinstance(channels, tuple) and len(channels) > 0 and all(is_int(c) and c > 0 and c % 8 == 0
                                                                     for c in channels))
    if exactly is not None and ok and len(channels) != exactly:
        ok = False
    if not ok:
        count = "a pair (c1, c2)" if exactly == 2 else "a non-empty tuple, one width per resolution,"
        raise ValueError(f"channels must be {count} of positive ints divisible by 8 (GroupNorm's 8 groups), "
                         f"e.g. (32, 64); got {channels!r}.")
    return channels


def _shape(t: torch.Tensor) -> str:
    """(1, C, H, W) → "C × H × W"."""
    return " × ".join(str(int(s)) for s in t.shape[1:])


def _trace(model: torch.nn.Module, modules: dict, *inputs) -> dict:
    """Run ``model(*inputs)`` once and return {name: (input shape str, output shape str)} of ``modules``."""
    seen, hooks = {}, []
    for name, m in modules.items():
        hooks.append(m.register_forward_hook(
            lambda mod, args, out, name=name: seen.__setitem__(name, (args[0], out))))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _u_shape(ax, *, rows, bottom, down_labels, up_labels, in_box, out_box, in_label, out_label,
             skip_labels, orange, emb_text=None, x_down=3.3, x_up=10.7, dy=1.75, bw=3.5, bh=0.85):
    """Draw a U: input and output on top, one row per resolution (down box left, up box right, a skip arrow
    across), the lowest block at the bottom centre. ``down_labels[i]`` labels the arrow leaving down row i
    (the last one reaches the bottom box), ``up_labels[i]`` the arrow entering up row i."""
    n = len(rows)
    down_style = _ORANGE if orange else _BLUE
    up_style = _ORANGE if orange else _GREEN
    y_in = 0.0
    ys = [-(i + 1) * dy for i in range(n)]
    y_bot = -(n + 1) * dy
    _box(ax, x_down, y_in, bw, bh, in_box, _GREY)
    _box(ax, x_up, y_in, bw, bh, out_box, _GREY)
    for i, (down_text, up_text) in enumerate(rows):
        _box(ax, x_down, ys[i], bw, bh, down_text, down_style)
        _box(ax, x_up, ys[i], bw, bh, up_text, up_style)
        _arrow(ax, (x_down + bw / 2, ys[i]), (x_up - bw / 2, ys[i]), color="#3b6fb6")
        ax.text((x_down + x_up) / 2, ys[i] + 0.12, skip_labels[i], ha="center", va="bottom", fontsize=8.5,
                color="#3b6fb6")
    x_bot, bbw = (x_down + x_up) / 2, 4.2
    _box(ax, x_bot, y_bot, bbw, bh, bottom, _ORANGE if orange else _BLUE)
    # vertical arrows: input → row 0, row i → row i+1 (down), row i+1 → row i (up), row 0 → output
    _arrow(ax, (x_down, y_in - bh / 2), (x_down, ys[0] + bh / 2))
    ax.text(x_down - 0.12, (y_in + ys[0]) / 2, in_label, ha="right", va="center", fontsize=8.5)
    _arrow(ax, (x_up, ys[0] + bh / 2), (x_up, y_in - bh / 2))
    ax.text(x_up + 0.12, (y_in + ys[0]) / 2, out_label, ha="left", va="center", fontsize=8.5)
    for i in range(n - 1):
        _arrow(ax, (x_down, ys[i] - bh / 2), (x_down, ys[i + 1] + bh / 2))
        ax.text(x_down - 0.12, (ys[i] + ys[i + 1]) / 2, down_labels[i], ha="right", va="center", fontsize=8.5)
        _arrow(ax, (x_up, ys[i + 1] + bh / 2), (x_up, ys[i] - bh / 2))
        ax.text(x_up + 0.12, (ys[i] + ys[i + 1]) / 2, up_labels[i], ha="left", va="center", fontsize=8.5)
    # to and from the bottom box
    _arrow(ax, (x_down, ys[-1] - bh / 2), (x_bot - bbw / 2 + 0.5, y_bot + bh / 2))
    _arrow(ax, (x_bot + bbw / 2 - 0.5, y_bot + bh / 2), (x_up, ys[-1] - bh / 2))
    if down_labels[n - 1]:
        ax.text(x_down + 0.55, (ys[-1] + y_bot) / 2 - 0.22, down_labels[n - 1], ha="right", va="center",
                fontsize=8.5)
    if up_labels[n - 1]:
        ax.text(x_up - 0.55, (ys[-1] + y_bot) / 2 - 0.22, up_labels[n - 1], ha="left", va="center",
                fontsize=8.5)
    if emb_text is not None:
        ex, ew = 1.75, 3.1
        _box(ax, ex, y_bot, ew, 0.2 * (emb_text.count("\n") + 1) + 0.25, emb_text, _ORANGE, fontsize=8.5)
        _arrow(ax, (ex + ew / 2, y_bot), (x_bot - bbw / 2, y_bot), color="#d98a1c", ls="--")
    return y_bot


# ----------------------------------------------------------------------------------------------
# U-Nets
# ----------------------------------------------------------------------------------------------
def unet_diagram(channels=(32, 64), image_size: int = 16, *, time_embedding: bool = True,
                 num_classes: int | None = None, in_channels: int = 1, ax=None):
    """The course's ε-model, :class:`course_utils.models.UNet`, as a U: down path, middle, up path and skips.

    The model is built from these arguments (every other :class:`~course_utils.models.UNetConfig` field at
    its default) and run once on a zero image; each box is labelled with the shape found there
    (channels × H × W), the title with its parameter count. Orange boxes are the ResBlocks that add the
    embedding: the sinusoidal time embedding (Vaswani et al. 2017, as in Ho et al. 2020) through an MLP,
    plus the class embedding when ``num_classes`` is given (Ho & Salimans 2021).

    Args:
        channels: one width per resolution, each divisible by 8, e.g. (32, 64) (the shipped ddpm16/cfg16).
        image_size: H = W of the input, divisible by ``2 ** (len(channels) - 1)``.
        time_embedding: False draws lesson 01's time-less variant (it ignores t).
        num_classes: None (unconditional) or the number of classes (10 for FashionMNIST with guidance).
        in_channels: image channels (1 for FashionMNIST).
        ax: a matplotlib Axes to draw into; None makes a new figure.
    Returns:
        the :class:`matplotlib.figure.Figure` drawn on.
    Raises:
        ValueError: naming the argument, for channels, sizes or options the model cannot take.
    """
    from .models import UNet, count_parameters

    channels = _check_channels(channels)
    _check_size(image_size, 2 ** (len(channels) - 1), channels)
    if not isinstance(time_embedding, bool):
        raise ValueError(f"time_embedding must be True or False; got {time_embedding!r}.")
    if num_classes is not None and (not is_int(num_classes) or num_classes < 1):
        raise ValueError(f"num_classes must be None (unconditional) or an int >= 1; got {num_classes!r}.")
    if not is_int(in_channels) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int (1 for grey-scale); got {in_channels!r}.")
    model = UNet(channels=channels, time_embedding=time_embedding, num_classes=num_classes,
                 in_channels=in_channels).eval()
    n = len(channels)
    watch = {"conv_in": model.conv_in, "mid": model.mid_res2, "conv_out": model.conv_out}
    for i in range(n):
        watch[f"down{i}"] = model.down[i]["res"][-1]
        watch[f"up{i}"] = model.up[n - 1 - i]["res"][0]              # up[k] works at resolution n-1-k
        watch[f"upout{i}"] = model.up[n - 1 - i]["res"][-1]
    x = torch.zeros(1, in_channels, image_size, image_size)
    t = torch.zeros(1, dtype=torch.long)
    y = torch.zeros(1, dtype=torch.long) if num_classes is not None else None
    seen = _trace(model, watch, x, t, y)

    def px(name):
        return seen[name][1].shape[-1]

    blocks = "ResBlock" if model.config.num_res_blocks == 1 else f"{model.config.num_res_blocks} ResBlocks"
    rows, skips = [], []
    for i in range(n):
        cin = seen[f"up{i}"][0].shape[1]
        rows.append((f"{blocks}\n{_shape(seen[f'down{i}'][1])}",
                     f"concat → {blocks}\n({cin - channels[i]} + {channels[i]}) → {_shape(seen[f'upout{i}'][1])}"))
        skips.append(f"skip: {channels[i]} channels")
    down_labels = [f"Downsample\n{px(f'down{i}')} → {px(f'down{i + 1}')} px" for i in range(n - 1)] + [None]
    up_labels = [f"Upsample\n{px(f'upout{i + 1}')} → {px(f'upout{i}')} px" for i in range(n - 1)] + [None]
    mid = "ResBlock → attention → ResBlock" if model.config.attention else "ResBlock → ResBlock"
    cond = "t" + (", y" if num_classes is not None else "")
    emb_text = None
    if time_embedding or num_classes is not None:
        E = model.time_emb_dim
        parts = []
        if time_embedding:
            parts.append(f"t → sin/cos ({channels[0]}-d) →\nLinear, GELU, Linear")
        if num_classes is not None:
            parts.append(f"+ row y of a class table\n({num_classes + 1} rows; row {num_classes} = ∅)")
        emb_text = f"emb, {E}-d:\n" + "\n".join(parts)
    out_name = f"$\\epsilon_\\theta(x_t, {cond})$" if time_embedding or num_classes is not None else "output"
    in_name = "$x_t$" if time_embedding or num_classes is not None else "$x$"

    fig, ax = _axes(ax, (10.5, 1.25 * (n + 2) + 1.3), (-0.2, 13.0), (-(n + 1) * 1.75 - 1.2, 0.6))
    y_bot = _u_shape(
        ax, rows=rows, bottom=f"middle: {mid}\n{_shape(seen['mid'][1])}", down_labels=down_labels,
        up_labels=up_labels, in_box=f"{in_name}\n{_shape(x)}", out_box=f"{out_name}\n{_shape(seen['conv_out'][1])}",
        in_label=f"conv_in 3×3\n→ {channels[0]} channels", out_label="GroupNorm, GELU,\nconv_out 3×3",
        skip_labels=skips,
        orange=emb_text is not None, emb_text=emb_text)
    if emb_text is not None:
        ax.text(6.6, y_bot - 0.8, "orange: every ResBlock adds Linear(emb), one shift per channel", ha="center",
                va="center", fontsize=8.5, color="#b06a00")
    else:
        ax.text(6.6, y_bot - 0.8, "no time input: the same network for every noise level", ha="center",
                va="center", fontsize=8.5, color="#555555")
    args = f"channels={channels}" + ("" if time_embedding else ", time_embedding=False") + \
        (f", num_classes={num_classes}" if num_classes is not None else "")
    ax.set_title(f"UNet({args}) at {image_size} × {image_size} px: {count_parameters(model):,} parameters",
                 fontsize=10)
    return fig


def small_unet_diagram(channels=(32, 64), image_size: int = 16, *, in_channels: int = 1, ax=None):
    """Lesson 01's two-level U-Net (``SmallUNet``): conv_in, two down blocks, two up blocks with skips, conv_out.

    Built from the package's :class:`~course_utils.models.DownBlock` and :class:`~course_utils.models.UpBlock`
    (:func:`course_utils.checks.lesson01.reference_small_unet`) and run once on a zero image; each box
    carries the line of the lesson's table (``h1 = down1(h0)``, …) and the shape found there.

    Args:
        channels: (c1, c2), the widths at full and at quarter resolution, each divisible by 8.
        image_size: H = W of the input, a multiple of 4.
        in_channels: image channels (1 for FashionMNIST).
        ax: a matplotlib Axes to draw into; None makes a new figure.
    Returns:
        the :class:`matplotlib.figure.Figure` drawn on.
    Raises:
        ValueError: naming the argument.
    """
    from .checks.lesson01 import reference_small_unet
    from .models import count_parameters

    channels = _check_channels(channels, exactly=2)
    _check_size(image_size, 4, channels)
    if not is_int(in_channels) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int (1 for grey-scale); got {in_channels!r}.")
    model = reference_small_unet(in_channels, channels).eval()
    names = ("conv_in", "down1", "down2", "up1", "up2", "conv_out")
    x = torch.zeros(1, in_channels, image_size, image_size)
    seen = _trace(model, {k: getattr(model, k) for k in names}, x)

    def out(k):
        return seen[k][1]

    def px(k):
        return out(k).shape[-1]

    c1, c2 = channels
    rows = [(f"h0 = conv_in(x)\n{_shape(out('conv_in'))}",
             f"u2 = up2(u1, h0)\n({out('up1').shape[1]} + {out('conv_in').shape[1]}) → {_shape(out('up2'))}"),
            (f"h1 = down1(h0)\n{_shape(out('down1'))}",
             f"u1 = up1(h2, h1)\n({out('down2').shape[1]} + {out('down1').shape[1]}) → {_shape(out('up1'))}")]
    fig, ax = _axes(ax, (10.5, 6.3), (-0.2, 13.0), (-3 * 1.75 - 1.2, 0.6))
    y_bot = _u_shape(
        ax, rows=rows, bottom=f"h2 = down2(h1)\n{_shape(out('down2'))}",
        down_labels=[f"DownBlock\n{px('conv_in')} → {px('down1')} px", f"DownBlock\n{px('down1')} → {px('down2')} px"],
        up_labels=[f"UpBlock\n{px('up1')} → {px('up2')} px", f"UpBlock\n{px('down2')} → {px('up1')} px"],
        in_box=f"x\n{_shape(x)}", out_box=f"output\n{_shape(out('conv_out'))}",
        in_label=f"conv_in 3×3\n→ {c1} channels", out_label="conv_out 1×1", orange=False,
        skip_labels=[f"skip h0: {out('conv_in').shape[1]} channels", f"skip h1: {out('down1').shape[1]} channels"])
    ax.text(6.6, y_bot - 0.8, "DownBlock: conv 3×3, GroupNorm, GELU, halve      "
            "UpBlock: double, concatenate the skip, conv 3×3, GroupNorm, GELU", ha="center", va="center",
            fontsize=8.5, color="#555555")
    ax.set_title(f"SmallUNet({in_channels}, ({c1}, {c2})) at {image_size} × {image_size} px: "
                 f"{count_parameters(model):,} parameters", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------
# The chain
# ----------------------------------------------------------------------------------------------
def diffusion_chain_diagram(T_label="T", images=None, captions=None, *, ax=None):
    """The forward chain x_0 → x_1 → … → x_{t-1} → x_t → … → x_T with q(x_t | x_{t-1}) on its arrows, and the
    reverse chain p_θ(x_{t-1} | x_t) below it, pointing the other way (Ho et al. 2020, Figure 2).

    Five nodes: x_0, x_1, x_{t-1}, x_t and x_T, with "…" between x_1 and x_{t-1} and between x_t and x_T.

    Args:
        T_label: how the last step is written, e.g. "T" or 1000 (a str or an int).
        images: None (symbolic nodes) or five (1, H, W) tensors, one per node, shown on the [-1, 1] grey
            scale (noisy values beyond it clip) — e.g. one trajectory of ``GaussianDiffusion.q_step``.
        captions: None or five short strings written under the nodes (default: "data" under x_0 and
            "≈ N(0, I)" under x_T).
        ax: a matplotlib Axes to draw into; None makes a new figure.
    Returns:
        the :class:`matplotlib.figure.Figure` drawn on.
    Raises:
        ValueError: naming the argument.
    """
    if is_int(T_label):
        T_label = str(T_label)
    if not isinstance(T_label, str) or not T_label.strip() or "$" in T_label:
        raise ValueError(f"T_label must be a non-empty str or an int naming the last step, e.g. 'T' or 1000 "
                         f"(no '$'); got {T_label!r}.")
    if images is not None:
        got = ([tuple(getattr(im, "shape", ())) for im in images] if isinstance(images, (list, tuple))
               else type(images).__name__)
        if (not isinstance(images, (list, tuple)) or len(images) != 5
                or not all(isinstance(im, torch.Tensor) and im.ndim == 3 and im.shape[0] == 1
                           and im.is_floating_point() for im in images)):
            raise ValueError("images must be None or a list of five float (1, H, W) tensors, one per node "
                             f"(x_0, x_1, x_{{t-1}}, x_t, x_{T_label}); got "
                             f"{got}.")
    if captions is not None and (not isinstance(captions, (list, tuple)) or len(captions) != 5
                                 or not all(isinstance(c, str) for c in captions)):
        raise ValueError(f"captions must be None or a list of five str, one per node; got {captions!r}.")
    if captions is None:
        captions = ["data", "", "", "", "≈ N(0, I)"]

    names = ["x_0", "x_1", "x_{t-1}", "x_t", f"x_{{{T_label}}}"]
    xs = [0.9, 3.3, 6.3, 8.7, 11.7]
    dots = [4.8, 10.2]
    half = 0.62
    fig, ax = _axes(ax, (12, 3.9), (-0.1, 12.7), (-2.05, 1.85))
    for k, (cx, name) in enumerate(zip(xs, names)):
        if images is not None:
            _gray_image(ax, images[k], cx, 0.0, half)
            ax.text(cx, half + 0.08, f"${name}$", ha="center", va="bottom", fontsize=11)
        else:
            from matplotlib.patches import Circle

            ax.add_patch(Circle((cx, 0.0), half, fc="#e8f0fb", ec="#3b6fb6", lw=1.3))
            ax.text(cx, 0.0, f"${name}$", ha="center", va="center", fontsize=12)
        if captions[k]:
            ax.text(cx, -half - 0.08, captions[k], ha="center", va="top", fontsize=8.5, color="#444444")
    for d in dots:
        ax.text(d, 0.0, "…", ha="center", va="center", fontsize=16)
    # anchors: (left, right) x of each element of the row, nodes and dots in order
    row = [(xs[0], "n"), (xs[1], "n"), (dots[0], "d"), (xs[2], "n"), (xs[3], "n"), (dots[1], "d"), (xs[4], "n")]
    fwd_labels = {0: f"$q(x_1 \\mid x_0)$", 3: "$q(x_t \\mid x_{t-1})$"}
    rev_labels = {0: "$p_\\theta(x_0 \\mid x_1)$", 3: "$p_\\theta(x_{t-1} \\mid x_t)$"}
    hi, lo = 0.35, -0.35
    for i in range(len(row) - 1):
        (xa, ka), (xb, kb) = row[i], row[i + 1]
        ra = xa + (half + 0.05 if ka == "n" else 0.3)
        lb = xb - (half + 0.05 if kb == "n" else 0.3)
        _arrow(ax, (ra, hi), (lb, hi), color="#3b6fb6", rad=-0.35)
        _arrow(ax, (lb, lo), (ra, lo), color="#b6573b", rad=-0.35)
        if i in fwd_labels:
            ax.text((ra + lb) / 2, hi + 0.42, fwd_labels[i], ha="center", va="bottom", fontsize=11, color="#3b6fb6")
            ax.text((ra + lb) / 2, lo - 0.42, rev_labels[i], ha="center", va="top", fontsize=11, color="#b6573b")
    ax.text((xs[2] + xs[3]) / 2, lo - 0.95, "trained to match\n$q(x_{t-1} \\mid x_t, x_0)$", ha="center",
            va="top", fontsize=8.5, color="#777777")
    ax.text(0.0, 1.7, "forward process q: fixed, adds a little Gaussian noise at every step  →", ha="left",
            va="center", fontsize=9.5, color="#3b6fb6")
    ax.text(12.6, -1.9, "←  reverse process $p_\\theta$: learned, removes it one step at a time", ha="right",
            va="center", fontsize=9.5, color="#b6573b")
    return fig


# ----------------------------------------------------------------------------------------------
# Classifier-free guidance
# ----------------------------------------------------------------------------------------------
def _coef(c: float) -> str:
    return f"{c:g}".replace("-", "−")


def guidance_diagram(w: float = 2.0, *, ax=None):
    """Classifier-free guidance (Ho & Salimans 2021, eq. 6): one noisy x_t, two calls of the same network — with
    the label y and with the null label ∅ — and the guided prediction ε̂ = (1 + w)·ε_θ(x_t, y) − w·ε_θ(x_t, ∅).

    The coefficients written for this ``w`` are computed by :func:`course_utils.diffusion.classifier_free_guidance`
    itself (on one-element tensors), so the picture follows the package's convention: w = 0 is the plain
    conditional model, w = −1 the unconditional one.

    Args:
        w: the guidance weight, a finite float.
        ax: a matplotlib Axes to draw into; None makes a new figure.
    Returns:
        the :class:`matplotlib.figure.Figure` drawn on.
    Raises:
        ValueError: for a w that is not a finite number (the package's own message).
    """
    from .diffusion import classifier_free_guidance

    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    c_cond = float(classifier_free_guidance(one, zero, w))        # the weight of ε_θ(x_t, y): 1 + w
    c_null = float(classifier_free_guidance(zero, one, w))        # the weight of ε_θ(x_t, ∅): −w
    w = float(w)

    fig, ax = _axes(ax, (12, 4.8), (0, 13), (-0.55, 5.1))
    _box(ax, 1.2, 2.6, 1.7, 0.9, "noisy image\n$x_t$, step $t$", _GREY, fontsize=9.5)
    _box(ax, 4.6, 4.0, 2.8, 0.95, "network $\\epsilon_\\theta$\nlabel $y$ (e.g. Sneaker)", _BLUE, fontsize=9.5)
    _box(ax, 4.6, 1.2, 2.8, 0.95, "network $\\epsilon_\\theta$ (the same)\nnull label $\\varnothing$", _BLUE,
         fontsize=9.5)
    _box(ax, 8.0, 4.0, 2.0, 0.8, "$\\epsilon_\\theta(x_t, y)$", _GREEN, fontsize=11)
    _box(ax, 8.0, 1.2, 2.0, 0.8, "$\\epsilon_\\theta(x_t, \\varnothing)$", _RED, fontsize=11)
    from matplotlib.patches import Circle

    ax.add_patch(Circle((10.3, 2.6), 0.32, fc="white", ec="#222222", lw=1.3))
    ax.text(10.3, 2.6, "+", ha="center", va="center", fontsize=15)
    _box(ax, 12.0, 2.6, 1.5, 0.8, "$\\hat\\epsilon$", _ORANGE, fontsize=13)
    _arrow(ax, (2.05, 2.8), (3.2, 4.0))
    _arrow(ax, (2.05, 2.4), (3.2, 1.2))
    _arrow(ax, (6.0, 4.0), (7.0, 4.0))
    _arrow(ax, (6.0, 1.2), (7.0, 1.2))
    _arrow(ax, (9.0, 3.85), (10.1, 2.85))
    _arrow(ax, (9.0, 1.35), (10.1, 2.35))
    _arrow(ax, (10.62, 2.6), (11.25, 2.6))
    ax.text(9.75, 3.55, f"× (1 + w) = × {_coef(c_cond)}", ha="left", va="bottom", fontsize=9.5, color="#3f8f4a")
    ax.text(9.75, 1.65, f"× (−w) = × {_coef(c_null)}", ha="left", va="top", fontsize=9.5, color="#b6573b")
    ax.text(4.6, 2.6, "one network, called twice\n(one batch of 2B images)", ha="center", va="center",
            fontsize=8.5, color="#555555")
    sign = "−" if c_null < 0 else "+"
    ax.text(6.5, 0.12, "$\\hat\\epsilon = (1 + w)\\,\\epsilon_\\theta(x_t, y) "
            "- w\\,\\epsilon_\\theta(x_t, \\varnothing)$"
            f"   at w = {_coef(w)}:   " + f"$\\hat\\epsilon = {_coef(c_cond)}\\,\\epsilon_\\theta(x_t, y) {sign} "
            f"{_coef(abs(c_null))}\\,\\epsilon_\\theta(x_t, \\varnothing)$", ha="center", va="center", fontsize=11)
    ax.text(6.5, -0.38, "w = 0: the conditional model (no guidance);  w = −1: the unconditional one;  "
            "w > 0: pushed away from ∅, towards what makes $x_t$ look like class $y$", ha="center", va="center",
            fontsize=8.5, color="#555555")
    ax.set_title(f"classifier-free guidance, w = {_coef(w)} (Ho & Salimans 2021, eq. 6)", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------
# CLIP
# ----------------------------------------------------------------------------------------------
def clip_diagram(config=None, batch: int = 5, *, ax=None):
    """CLIP's two towers (Radford et al. 2021): an image encoder and a text encoder that never see each other's
    input, a projection + L2 normalisation on each side into one shared space, and the B × B matrix of
    cosine similarities whose diagonal holds the matched pairs (the targets of the symmetric loss).

    Args:
        config: a :class:`course_utils.clip.CLIPConfig` (None = the defaults, those of the shipped clip16);
            the sizes written come from it.
        batch: B, the side of the similarity matrix drawn, an int in [2, 8].
        ax: a matplotlib Axes to draw into; None makes a new figure.
    Returns:
        the :class:`matplotlib.figure.Figure` drawn on.
    Raises:
        ValueError: naming the argument.
    """
    from matplotlib.patches import Rectangle

    from .clip import CLIPConfig

    if config is None:
        config = CLIPConfig()
    elif not isinstance(config, CLIPConfig):
        raise ValueError(f"config must be a course_utils.clip.CLIPConfig or None (the defaults); got "
                         f"{type(config).__name__}.")
    if not is_int(batch) or not 2 <= batch <= 8:
        raise ValueError(f"batch must be an int in [2, 8] (the side of the similarity matrix drawn); got {batch!r}.")
    S = config.image_size
    sizes = "→".join(str(S // 2 ** k) for k in range(len(config.image_channels) + 1))
    D = config.embed_dim

    fig, ax = _axes(ax, (11, 3.9), (0, 12.4), (0.1, 4.25))
    ax.text(0.8, 3.2, f"images\n(B, 1, {S}, {S})", ha="center", va="center", fontsize=9)
    _box(ax, 2.85, 3.2, 2.1, 0.75, f"image tower\nCNN {sizes} px, pool", _BLUE, fontsize=9)
    _box(ax, 4.95, 3.2, 1.6, 0.75, f"projection\n+ L2 norm, {D}-d", _BLUE, fontsize=9)
    ax.text(0.8, 0.8, 'captions\n"a dark bag", …', ha="center", va="center", fontsize=9)
    layers = f"{config.text_layers} layer" + ("s" if config.text_layers != 1 else "")
    _box(ax, 2.85, 0.8, 2.1, 0.9, f"text tower\ntransformer, {layers},\nat <eos>", _RED, fontsize=9)
    _box(ax, 4.95, 0.8, 1.6, 0.75, f"projection\n+ L2 norm, {D}-d", _RED, fontsize=9)
    for y in (3.2, 0.8):
        _arrow(ax, (1.5, y), (1.8, y))
        _arrow(ax, (3.9, y), (4.15, y))
    # the matrix: rows are the images (entered from the left), columns the texts (entered from below)
    side, x0, y_top = 2.3 / batch, 7.0, 3.55
    for i in range(batch):
        for j in range(batch):
            ax.add_patch(Rectangle((x0 + j * side, y_top - (i + 1) * side), side * 0.93, side * 0.93,
                                   fc="#3b6fb6" if i == j else "#dde3ea", ec="white"))
    _arrow(ax, (5.75, 3.2), (x0 - 0.08, 3.2), color="#3b6fb6")
    ax.annotate("", xy=(x0 + 2.3 * 0.3, y_top - 2.3 - 0.08), xytext=(5.75, 0.8),
                arrowprops=dict(arrowstyle="-|>", color="#b6573b", lw=1.3, shrinkA=0, shrinkB=0,
                                mutation_scale=13, connectionstyle="angle,angleA=0,angleB=90,rad=0"))
    ax.text(x0 - 0.18, y_top - 1.55, "rows: images i", rotation=90, ha="center", va="center", fontsize=8)
    ax.text(x0 + 1.15, y_top + 0.12, "columns: texts j", ha="center", va="bottom", fontsize=8)
    ax.text(9.6, 2.4, "logits = exp(s) · cos(image i, text j)\nrow i: which text is image i's?\n"
            "column j: which image is text j's?\ntargets: the diagonal", fontsize=8.5, va="center")
    ax.set_title(f"CLIP's two towers meet in one {batch} × {batch} similarity matrix (B = {batch})", fontsize=10)
    return fig
