"""Checks for lesson 01 (U-Net recap): the down block, the up block, a small U-Net, the parameter count.

These exercises are *classes* (and one function of a model). Each check is three steps (see
:mod:`course_utils.checks._harness`): ``make_<name>`` builds seeded inputs (sizes, images, seeds);
``run_<name>`` instantiates the learner's class from them (seeded, inside run), calls it and records
plain data — output tensors, gradient sums, which layers it holds and in which order they run, whether its
``state_dict`` is laid out like the package's block and, if so, its output once the package's weights are
copied in; ``judge_<name>`` rebuilds the package's block (:mod:`course_utils.models`) from the inputs,
recomputes the expected outputs and names the classic mistake. ``check_<name>`` runs all three.

The package's block's *initial* weights (seeded random numbers, no answer: the expected outputs are computed
by the judge alone) travel in the inputs as ``package_weights``; run copies them into the learner's module
when its ``state_dict`` has the same names and shapes, so run never needs the package's block itself (a
grader blocks the exercise's reference, e.g. :func:`reference_small_unet`, while the learner's code runs).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..models import DownBlock, UpBlock, count_parameters
from . import _harness as h

__all__ = ["reference_small_unet", "check_down_block", "check_up_block", "check_small_unet",
           "check_count_parameters"]


# ----------------------------------------------------------------------------------------------
# The class checks take their first parameters positionally too: check_down_block(Down, 1, 8, …)
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _ClassCheck(h.Check):
    # A Check whose make-parameters named in ``positional`` may also follow the subject positionally,
    # as the old functions allowed (``check_up_block(Up, 8, 8, 8)``). (No docstring: see __doc__.)
    positional: tuple[str, ...] = ()

    def __call__(self, subject, *args, **params) -> None:
        __tracebackhide__ = True  # noqa: F841
        if len(args) > len(self.positional):
            raise TypeError(f"check_{self.name} takes the class and at most {len(self.positional)} positional "
                            f"parameters ({', '.join(self.positional)}); got {len(args)}. Pass the rest by name.")
        for name, v in zip(self.positional, args):
            if name in params:
                raise TypeError(f"check_{self.name} got two values for {name!r}; pass it once.")
            params[name] = v
        super().__call__(subject, **params)

    @property
    def __doc__(self) -> str:  # type: ignore[override]
        return self.doc


def reference_small_unet(in_channels: int = 1, channels: tuple[int, int] = (32, 64)) -> "torch.nn.Module":
    """Lesson 01's two-level U-Net, assembled from the package's :class:`~course_utils.models.DownBlock`
    and :class:`~course_utils.models.UpBlock` with the attribute names the exercise asks for.

    ``conv_in`` (B, c1, H, W) → ``down1`` (B, c1, H/2, W/2) → ``down2`` (B, c2, H/4, W/4) →
    ``up1`` (with the skip from ``down1``) (B, c1, H/2, W/2) → ``up2`` (with the skip from ``conv_in``)
    (B, c1, H, W) → ``conv_out`` 1x1 → (B, in_channels, H, W). H and W must be multiples of 4.
    """

    class SmallUNet(nn.Module):
        def __init__(self, in_channels: int = 1, channels: tuple[int, int] = (32, 64)):
            super().__init__()
            c1, c2 = channels
            self.conv_in = nn.Conv2d(in_channels, c1, 3, padding=1)
            self.down1 = DownBlock(c1, c1)
            self.down2 = DownBlock(c1, c2)
            self.up1 = UpBlock(c2, c1, c1)
            self.up2 = UpBlock(c1, c1, c1)
            self.conv_out = nn.Conv2d(c1, in_channels, 1)

        def forward(self, x):
            h0 = self.conv_in(x)                 # (B, c1, H, W)
            h1 = self.down1(h0)                  # (B, c1, H/2, W/2)
            h2 = self.down2(h1)                  # (B, c2, H/4, W/4)
            u1 = self.up1(h2, h1)                # (B, c1, H/2, W/2)
            u2 = self.up2(u1, h0)                # (B, c1, H, W)
            return self.conv_out(u2)             # (B, in_channels, H, W)

    return SmallUNet(in_channels, tuple(channels))


# ----------------------------------------------------------------------------------------------
# Shared pieces: validate sizes, build the learner's module, describe it as plain data
# ----------------------------------------------------------------------------------------------
def _sizes(sizes, what: str = "sizes") -> tuple[tuple[int, int, int], ...]:
    try:
        out = tuple(tuple(int(v) for v in s) for s in sizes)
    except (TypeError, ValueError):
        out = ()
    if not out or any(len(s) != 3 or min(s) < 1 for s in out):
        raise ValueError(f"{what} should be a non-empty sequence of (batch, height, width) triples of positive "
                         f"ints, e.g. ((2, 16, 16),); got {sizes!r}.")
    return out


def _build(cls, *args) -> tuple[dict, torch.nn.Module | None, dict]:
    """Construct the learner's module quietly: (outcome, the module or None, plain facts for the judge)."""
    outcome, m = h.call_keep(cls, *args)
    return outcome, (m if isinstance(m, nn.Module) else None), {"is_module": isinstance(m, nn.Module)}


def _built(r: h.Report, outputs: dict, what: str) -> None:
    """Judge the construction: an error, or something that is not a torch.nn.Module, fails."""
    __tracebackhide__ = True  # noqa: F841
    got = h.value(r, outputs["built"])
    if not outputs["is_module"]:
        r.fail(f"{what} should build a torch.nn.Module (class … (nn.Module) with super().__init__()); got "
               f"{h.type_name(got)}.")


def _layers(block: torch.nn.Module) -> dict:
    """Which of the layer kinds a conv → GroupNorm → GELU block needs it holds (as plain booleans)."""
    kinds = {type(m) for m in block.modules()}
    return {"conv": nn.Conv2d in kinds, "groupnorm": nn.GroupNorm in kinds,
            "other_norm": bool(kinds & {nn.BatchNorm2d, nn.InstanceNorm2d, nn.LayerNorm})}


def _structure(r: h.Report, layers: dict, what: str) -> None:
    """A conv → GroupNorm → GELU block contains those layers (GELU as a module or F.gelu)."""
    __tracebackhide__ = True  # noqa: F841
    if not layers["conv"]:
        r.fail(f"{what} has no nn.Conv2d: the block starts with a 3x3 convolution (padding=1).")
    if not layers["groupnorm"]:
        extra = " (BatchNorm depends on the batch; GroupNorm normalises each image on its own)" \
            if layers["other_norm"] else ""
        r.fail(f"{what} has no nn.GroupNorm: conv → GroupNorm → GELU{extra}.")


def _seeded(seed: int, build):
    """``build()`` under ``torch.manual_seed(seed)`` without touching the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _package_weights(seed: int, build) -> dict[str, torch.Tensor]:
    """The initial ``state_dict`` of the package's module ``build()`` under ``torch.manual_seed(seed)``, as
    plain tensors (make side: seeded random numbers, not an answer)."""
    return {k: v.detach().clone() for k, v in _seeded(seed, build).state_dict().items()}


def _same_layout(mine: torch.nn.Module, weights: dict[str, torch.Tensor]) -> bool:
    """True when the learner's module has exactly these parameter/buffer names and shapes (weights can be
    copied in)."""
    a = mine.state_dict()
    return a.keys() == weights.keys() and all(a[k].shape == weights[k].shape for k in a)


def _copy_weights(weights: dict[str, torch.Tensor], mine: torch.nn.Module) -> None:
    with torch.no_grad():
        mine.load_state_dict({k: v.clone() for k, v in weights.items()})


def _package_module(build, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The package's module ``build()`` with the inputs' weights (judge side; the global RNG is left alone)."""
    module = _seeded(0, build)
    module.load_state_dict(weights)
    return module


def _layer_order(block: torch.nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the Conv2d / GroupNorm / GELU modules in the order a forward pass calls them."""
    order, handles = [], []
    for m in block.modules():
        for kind, name in ((nn.Conv2d, "conv"), (nn.GroupNorm, "norm"), (nn.GELU, "gelu")):
            if type(m) is kind:
                handles.append(m.register_forward_hook(lambda *_a, n=name: order.append(n)))
    try:
        with torch.no_grad():
            block(x)
    finally:
        for hd in handles:
            hd.remove()
    return order


def _in_eval(block: torch.nn.Module, fn):
    """``fn()`` with ``block`` in eval mode, restoring its train/eval mode afterwards."""
    was = block.training
    try:
        block.eval()
        return fn()
    finally:
        block.train(was)


def _grad_sum(x: torch.Tensor) -> float | None:
    """Σ|grad| of a leaf (None when no gradient reached it): the judge's "is it used" probe."""
    return None if x.grad is None else float(x.grad.abs().sum())


def _no_grad(g: float | None) -> bool:
    return g is None or g == 0


# ----------------------------------------------------------------------------------------------
# Exercise: DownBlock  conv3x3 → GroupNorm → GELU, then halve the resolution
# ----------------------------------------------------------------------------------------------
def make_down_block(in_ch: int = 8, out_ch: int = 16, sizes=((2, 16, 16), (3, 8, 12)), seed: int = 0) -> dict:
    sizes = _sizes(sizes)
    return {"in_ch": int(in_ch), "out_ch": int(out_ch), "sizes": sizes, "seed": int(seed),
            "xs": [h.images((B, in_ch, H, W), seed + H + W) for B, H, W in sizes],
            "x_order": h.images((2, in_ch, 8, 8), seed),
            "x_compare": h.images((2, in_ch, 8, 8), seed + 99),
            "package_weights": _package_weights(seed + 1, lambda: DownBlock(in_ch, out_ch))}


def run_down_block(inputs: dict, cls) -> dict:
    in_ch, out_ch, seed = inputs["in_ch"], inputs["out_ch"], inputs["seed"]
    torch.manual_seed(seed)
    built, block, facts = _build(cls, in_ch, out_ch)
    outputs = {"built": built, **facts}
    if block is None:
        return outputs
    outputs["layers"] = _layers(block)
    outputs["outs"] = [h.call(lambda x=x: _in_eval(block, lambda: block(x.clone()))) for x in inputs["xs"]]
    outputs["order"] = h.call(_layer_order, block, inputs["x_order"].clone())
    same = _same_layout(block, inputs["package_weights"])
    outputs["same_layout"] = same
    if same:
        _copy_weights(inputs["package_weights"], block)
        x = inputs["x_compare"].clone()
        with torch.no_grad():
            outputs["mine"] = h.call(lambda: _in_eval(block, lambda: block(x)))
    return outputs


def judge_down_block(inputs: dict, outputs: dict) -> None:
    in_ch, out_ch, sizes = inputs["in_ch"], inputs["out_ch"], inputs["sizes"]
    r = h.Report("DownBlock")
    what = f"DownBlock({in_ch}, {out_ch})"
    _built(r, outputs, what)
    _structure(r, outputs["layers"], what)
    for (B, H, W), o in zip(sizes, outputs["outs"]):
        shape = (B, in_ch, H, W)
        out = h.as_tensor(r, h.value(r, o), f"{what}(x {h.fmt_shape(shape)})")
        want = (B, out_ch, H // 2, W // 2)
        got = tuple(out.shape)
        if got[2:] == (H, W):
            r.fail(f"{what} on {h.fmt_shape(shape)} kept the resolution {H}x{W}: after conv → GroupNorm → "
                   f"GELU, halve it (Downsample(out_ch), nn.MaxPool2d(2) or a stride-2 conv).")
        if len(got) == 4 and got[2:] == (H // 4, W // 4):
            r.fail(f"{what} on {h.fmt_shape(shape)} returned {H // 4}x{W // 4}: it halves twice; halve once.")
        if len(got) == 4 and got[1] != out_ch and got[2:] == want[2:]:
            r.fail(f"{what} returned {got[1]} channels; the block maps in_ch={in_ch} to out_ch={out_ch} "
                   f"channels.")
        if got != want:
            r.fail(f"{what}(x {h.fmt_shape(shape)}) should have shape {h.fmt_shape(want)}; got "
                   f"{h.fmt_shape(got)}. Derive every size from x (x.shape), never from a fixed image size.")
    order = h.value(r, outputs["order"])
    if "norm" in order and "gelu" in order and order.index("gelu") < order.index("norm"):
        r.fail(f"{what} calls GELU before GroupNorm; the order is conv → GroupNorm → GELU.")
    if "norm" in order and "conv" in order and order.index("norm") < order.index("conv"):
        r.fail(f"{what} normalises before the convolution; the order is conv → GroupNorm → GELU.")
    if outputs["same_layout"]:
        x = inputs["x_compare"]
        shown = f"{what} with the reference's weights"
        mine = h.as_tensor(r, h.value(r, outputs["mine"]), shown)
        ref = _package_module(lambda: DownBlock(in_ch, out_ch), inputs["package_weights"])
        with torch.no_grad():
            want = ref(x)
            conv, norm = ref.conv[0], ref.conv[1]
            act_first = ref.down(norm(torch.nn.functional.gelu(conv(x))))
            relu = ref.down(torch.relu(norm(conv(x))))
            no_act = ref.down(norm(conv(x)))
        h.diagnose(r, mine, want, {
            "GELU comes before GroupNorm in your block; the order is conv → GroupNorm → GELU.": act_first,
            "that is ReLU; the block uses GELU (nn.GELU()).": relu,
            "the activation is missing: conv → GroupNorm → GELU.": no_act,
        }, rtol=1e-4, atol=1e-5, what=shown)
        r.ok(f"{what}: with the package's weights copied in, the output matches course_utils.models.DownBlock")
    else:
        r.note("your block's parameters are named or shaped differently from course_utils.models.DownBlock "
               "(conv = Sequential(Conv2d, GroupNorm, GELU), down = Downsample(out_ch)), so its numbers are "
               "not compared; shapes and layers are.")
    sizes_txt = ", ".join(f"{H}x{W}" for _, H, W in sizes)
    r.ok(f"{what}: conv → GroupNorm → GELU, then half the resolution, at {sizes_txt} px")


check_down_block = h.register(_ClassCheck(
    "down_block", make_down_block, run_down_block, judge_down_block, reference=DownBlock,
    positional=("in_ch", "out_ch"),
    doc="Check a learner's ``DownBlock(in_ch, out_ch)``: (B, in_ch, H, W) → (B, out_ch, H/2, W/2), built from "
        "conv3x3 → GroupNorm → GELU and a halving; when its parameters are laid out like the package's "
        ":class:`~course_utils.models.DownBlock` (``conv`` = Sequential(conv, norm, GELU), ``down`` = "
        "``Downsample``), the reference's weights are copied in and the outputs must agree."))


# ----------------------------------------------------------------------------------------------
# Exercise: UpBlock  double the resolution, concatenate the skip, conv3x3 → GroupNorm → GELU
# ----------------------------------------------------------------------------------------------
def make_up_block(in_ch: int = 16, skip_ch: int = 8, out_ch: int = 8, sizes=((2, 4, 4), (3, 4, 6)),
                  seed: int = 0) -> dict:
    sizes = _sizes(sizes)
    return {"in_ch": int(in_ch), "skip_ch": int(skip_ch), "out_ch": int(out_ch), "sizes": sizes,
            "seed": int(seed),
            "xs": [h.images((B, in_ch, H, W), seed + H) for B, H, W in sizes],
            "skips": [h.images((B, skip_ch, 2 * H, 2 * W), seed + W + 7) for B, H, W in sizes],
            "x_compare": h.images((2, in_ch, 4, 4), seed + 98),
            "skip_compare": h.images((2, skip_ch, 8, 8), seed + 97),
            "package_weights": _package_weights(seed + 1, lambda: UpBlock(in_ch, skip_ch, out_ch))}


def run_up_block(inputs: dict, cls) -> dict:
    in_ch, skip_ch, out_ch, seed = inputs["in_ch"], inputs["skip_ch"], inputs["out_ch"], inputs["seed"]
    torch.manual_seed(seed)
    built, block, facts = _build(cls, in_ch, skip_ch, out_ch)
    outputs = {"built": built, **facts}
    if block is None:
        return outputs
    outputs["layers"] = _layers(block)
    outputs["sizes"] = []
    for x0, s0 in zip(inputs["xs"], inputs["skips"]):
        x, skip = x0.clone().requires_grad_(True), s0.clone().requires_grad_(True)
        o, out = h.call_keep(block, x, skip)
        rec = {"out": o}
        if isinstance(out, torch.Tensor):
            weights = torch.randn(out.shape, generator=h.gen(seed + 5))
            rec["backward"] = h.call(lambda: (out * weights).sum().backward())
            rec["x_grad"], rec["skip_grad"] = _grad_sum(x), _grad_sum(skip)
        outputs["sizes"].append(rec)
    same = _same_layout(block, inputs["package_weights"])
    outputs["same_layout"] = same
    if same:
        _copy_weights(inputs["package_weights"], block)
        x, skip = inputs["x_compare"].clone(), inputs["skip_compare"].clone()
        with torch.no_grad():
            outputs["mine"] = h.call(block, x, skip)
    return outputs


def judge_up_block(inputs: dict, outputs: dict) -> None:
    in_ch, skip_ch, out_ch = inputs["in_ch"], inputs["skip_ch"], inputs["out_ch"]
    r = h.Report("UpBlock")
    what = f"UpBlock({in_ch}, {skip_ch}, {out_ch})"
    _built(r, outputs, what)
    _structure(r, outputs["layers"], what)
    for (B, H, W), rec in zip(inputs["sizes"], outputs["sizes"]):
        shown = f"{what}(x {h.fmt_shape((B, in_ch, H, W))}, skip {h.fmt_shape((B, skip_ch, 2 * H, 2 * W))})"
        out = h.as_tensor(r, h.value(r, rec["out"]), shown)
        want = (B, out_ch, 2 * H, 2 * W)
        if tuple(out.shape) != want:
            hint = ""
            if out.ndim == 4 and tuple(out.shape[2:]) == (H, W):
                hint = (" The resolution did not double: upsample x first (Upsample(in_ch) or "
                        "nn.Upsample(scale_factor=2)).")
            r.fail(f"{shown} should have shape {h.fmt_shape(want)}; got {h.fmt_shape(out.shape)}.{hint}")
        h.value(r, rec["backward"], f"the backward pass through {shown}")
        if _no_grad(rec["skip_grad"]):
            r.fail(f"{shown}: no gradient reaches the skip connection, so the block ignores it. Concatenate "
                   f"it with the upsampled x on the channel axis, torch.cat([h, skip], dim=1), before the conv.")
        if _no_grad(rec["x_grad"]):
            r.fail(f"{shown}: no gradient reaches x, so the block ignores its main input.")
    r.ok(f"{what}: doubles the resolution and gradients reach both x and the skip")
    if outputs["same_layout"]:
        x, skip = inputs["x_compare"], inputs["skip_compare"]
        shown = f"{what} with the reference's weights"
        mine = h.as_tensor(r, h.value(r, outputs["mine"]), shown)
        ref = _package_module(lambda: UpBlock(in_ch, skip_ch, out_ch), inputs["package_weights"])
        with torch.no_grad():
            want = ref(x, skip)
            up = ref.up(x)
            swapped = ref.conv(torch.cat([skip, up], dim=1)) if in_ch == skip_ch else None
        h.diagnose(r, mine, want, {
            "you concatenated [skip, h]; the reference puts the upsampled input first: torch.cat([h, skip], "
            "dim=1), so the conv's first in_ch input channels see h.": swapped,
        }, rtol=1e-4, atol=1e-5, what=shown)
        r.ok(f"{what}: with the package's weights copied in, the output matches course_utils.models.UpBlock")
    else:
        r.note("your block's parameters are laid out differently from course_utils.models.UpBlock (up = "
               "Upsample(in_ch), conv = Sequential(Conv2d(in_ch + skip_ch, out_ch, 3, padding=1), GroupNorm, "
               "GELU)), so its numbers are not compared; shapes and gradients are.")


check_up_block = h.register(_ClassCheck(
    "up_block", make_up_block, run_up_block, judge_up_block, reference=UpBlock,
    positional=("in_ch", "skip_ch", "out_ch"),
    doc="Check a learner's ``UpBlock(in_ch, skip_ch, out_ch)`` called as ``block(x, skip)``: (B, in_ch, H, W) "
        "and (B, skip_ch, 2H, 2W) → (B, out_ch, 2H, 2W); gradients must reach both x and the skip; with the "
        "package's :class:`~course_utils.models.UpBlock` layout, the outputs must agree with copied weights."))


# ----------------------------------------------------------------------------------------------
# Exercise: SmallUNet  conv_in → down1 → down2 → up1 (skip h1) → up2 (skip h0) → conv_out
# ----------------------------------------------------------------------------------------------
def make_small_unet(in_channels: int = 1, channels=(16, 32), sizes=((2, 16, 16), (1, 8, 12), (3, 28, 28)),
                    seed: int = 0) -> dict:
    sizes = _sizes(sizes)
    channels = tuple(int(c) for c in channels)
    if len(channels) != 2:
        raise ValueError(f"channels should be two ints (c1, c2), e.g. (16, 32); got {channels!r}.")
    return {"in_channels": int(in_channels), "channels": channels, "sizes": sizes, "seed": int(seed),
            "xs": [h.images((B, in_channels, H, W), seed + H * W) for B, H, W in sizes],
            "x_compare": h.images((2, in_channels, 8, 8), seed + 96),
            "package_weights": _package_weights(seed + 1, lambda: reference_small_unet(in_channels, channels))}


def _skip_calls(model: torch.nn.Module, x: torch.Tensor) -> tuple[dict, torch.Tensor | None, list]:
    """Call ``model(x)``, recording the second tensor argument of every submodule call (the skips)."""
    calls = []

    def grab(module, args):
        if len(args) >= 2 and isinstance(args[1], torch.Tensor):
            args[1].retain_grad()
            calls.append(args[1])

    handles = [m.register_forward_pre_hook(grab) for m in model.modules() if m is not model]
    try:
        outcome, out = h.call_keep(model, x)
    finally:
        for hd in handles:
            hd.remove()
    return outcome, out, calls


def run_small_unet(inputs: dict, cls) -> dict:
    in_channels, channels, seed = inputs["in_channels"], inputs["channels"], inputs["seed"]
    torch.manual_seed(seed)
    built, model, facts = _build(lambda: cls(in_channels=in_channels, channels=channels))
    outputs = {"built": built, **facts}
    if model is None:
        return outputs
    outputs["sizes"] = []
    for x0 in inputs["xs"]:
        x = x0.clone().requires_grad_(True)
        o, out, calls = _skip_calls(model, x)
        rec = {"out": o}
        if isinstance(out, torch.Tensor):
            weights = torch.randn(out.shape, generator=h.gen(seed + 3))
            rec["backward"] = h.call(lambda: (out * weights).sum().backward())
            rec["x_grad"] = _grad_sum(x)
            rec["skips"] = [{"shape": tuple(s.shape), "grad": _grad_sum(s)} for s in calls]
        outputs["sizes"].append(rec)
    same = _same_layout(model, inputs["package_weights"])
    outputs["same_layout"] = same
    if same:
        _copy_weights(inputs["package_weights"], model)
        x = inputs["x_compare"].clone()
        with torch.no_grad():
            outputs["mine"] = h.call(model, x)
        outputs["parameters"] = count_parameters(model)
    return outputs


def judge_small_unet(inputs: dict, outputs: dict) -> None:
    in_channels, channels = inputs["in_channels"], inputs["channels"]
    r = h.Report("SmallUNet")
    what = f"SmallUNet(in_channels={in_channels}, channels={channels})"
    _built(r, outputs, what)
    for (B, H, W), rec in zip(inputs["sizes"], outputs["sizes"]):
        shape = (B, in_channels, H, W)
        out = h.as_tensor(r, h.value(r, rec["out"]), f"{what}(x {h.fmt_shape(shape)})")
        if tuple(out.shape) != shape:
            r.fail(f"{what}(x {h.fmt_shape(shape)}) should return the input's shape; got {h.fmt_shape(out.shape)}. "
                   f"Work out each size from x (never a fixed 16 or 28).")
        h.value(r, rec["backward"], f"the backward pass through {what}")
        if _no_grad(rec["x_grad"]):
            r.fail(f"{what}: the output does not depend on the input image.")
        calls = rec["skips"]
        if len(calls) < 2:
            r.fail(f"{what}: found {len(calls)} call(s) of a block with a skip argument; the U-Net has two, "
                   f"up1(h2, h1) and up2(u1, h0), each given the encoder features of its resolution.")
        for s in calls:
            if _no_grad(s["grad"]):
                r.fail(f"{what}: a skip connection {h.fmt_shape(s['shape'])} gets no gradient: it is not used.")
        if tuple(calls[-1]["shape"][2:]) != (H, W):
            r.fail(f"{what}: the last up block's skip has resolution {tuple(calls[-1]['shape'][2:])}; it should be "
                   f"the full-resolution features h0 = conv_in(x), {H}x{W}.")
    sizes_txt = ", ".join(f"{B}x{in_channels}x{H}x{W}" for B, H, W in inputs["sizes"])
    r.ok(f"{what}: output shape = input shape for {sizes_txt}; both skips receive gradients")
    if outputs["same_layout"]:
        x = inputs["x_compare"]
        shown = f"{what}(x {h.fmt_shape(x.shape)}) with the reference's weights"
        mine = h.as_tensor(r, h.value(r, outputs["mine"]), shown)
        h.check_shape_dtype(r, mine, x.shape, None, shown)
        ref = _package_module(lambda: reference_small_unet(in_channels, channels), inputs["package_weights"])
        with torch.no_grad():
            want = ref(x)
        if not h.close(mine, want, 1e-4, 1e-5):
            r.fail(f"{what}: with the reference's weights copied in, the output differs from the reference U-Net "
                   f"(largest difference {float((mine - want).abs().max()):.3g}). Check the wiring: h0 = conv_in(x), "
                   f"h1 = down1(h0), h2 = down2(h1), up1(h2, h1), up2(that, h0), conv_out.")
        r.ok(f"{what}: with the reference's weights copied in, the output matches; "
             f"{outputs['parameters']:,} parameters")
    else:
        r.note("your U-Net's parameters are laid out differently from the reference (conv_in, down1, down2, "
               "up1, up2, conv_out), so its numbers are not compared; shapes and skips are.")


check_small_unet = h.register(h.Check(
    "small_unet", make_small_unet, run_small_unet, judge_small_unet, reference=reference_small_unet,
    doc="Check a learner's ``SmallUNet(in_channels, channels)``: output shape = input shape at several "
        "resolutions and batch sizes, two up blocks that really use their skips (gradients), and, when its "
        "layout matches :func:`reference_small_unet`, the same outputs with copied weights."))


# ----------------------------------------------------------------------------------------------
# Exercise: count_parameters  (trainable entries, each shared tensor once)
# ----------------------------------------------------------------------------------------------
def _count_models() -> dict[str, torch.nn.Module]:
    """The models the count is tried on (their weights do not matter; their structure does)."""
    frozen = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    frozen[0].requires_grad_(False)
    tied = nn.Sequential(nn.Linear(5, 5), nn.GELU())
    tied.append(tied[0])                                   # the same Linear twice: counted once
    half_frozen = reference_small_unet(1, (16, 32))
    next(half_frozen.children()).requires_grad_(False)     # its first block frozen, as when fine-tuning
    return {
        "nn.Linear(3, 4)": nn.Linear(3, 4),
        "a conv block": nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.GELU()),
        "the reference SmallUNet(1, (16, 32))": reference_small_unet(1, (16, 32)),
        "a model whose first layer is frozen": frozen,
        "a model that uses one layer twice": tied,
        "the reference SmallUNet(1, (16, 32)) with its first block frozen": half_frozen,
    }


def make_count_parameters() -> dict:
    return {"models": list(_count_models())}


def run_count_parameters(inputs: dict, fn) -> dict:
    torch.manual_seed(0)
    models = _count_models()
    counts = []
    for name in inputs["models"]:
        outcome, got = h.call_keep(fn, models[name])
        counts.append({"out": outcome, "type": type(got).__name__, "repr": repr(got)[:200]})
    return {"counts": counts}


def judge_count_parameters(inputs: dict, outputs: dict) -> None:
    r = h.Report("count_parameters")
    models = _seeded(0, _count_models)
    for name, rec in zip(inputs["models"], outputs["counts"]):
        got = h.value(r, rec["out"])
        python_int = rec["type"] == "int"
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            got, python_int = int(got), True
        if isinstance(got, bool) or not isinstance(got, int) or not python_int:
            r.fail(f"count_parameters({name}) should return a Python int; got {rec['type']} {rec['repr']}.")
        model = models[name]
        want = count_parameters(model)
        if got == want:
            continue
        params = list(model.parameters())
        if got == len(params):
            r.fail(f"count_parameters({name}) = {got} is the number of parameter tensors; count their "
                   f"entries: sum(p.numel() for p in ...).")
        if got == sum(p.numel() for p in params):
            r.fail(f"count_parameters({name}) = {got} includes frozen parameters; count only those with "
                   f"p.requires_grad (expected {want}).")
        r.fail(f"count_parameters({name}) = {got}; expected {want}.")
    r.ok("count_parameters matches course_utils.models.count_parameters (trainable entries, each counted once)")


check_count_parameters = h.register(h.Check(
    "count_parameters", make_count_parameters, run_count_parameters, judge_count_parameters,
    reference=count_parameters,
    doc="Check ``fn(model) -> int`` against :func:`course_utils.models.count_parameters` on models with "
        "frozen and shared parameters."))
