"""Checks for lesson 09 (cascades and latent diffusion): noise-conditioning augmentation, the super-resolution
sampler, the latent scale factor, and sampling then decoding in latent space.

Each check is three steps (see :mod:`course_utils.checks._harness`): ``make_<name>`` builds seeded inputs,
``run_<name>`` calls the learner's function on them (building the recording stand-ins from their seeds:
:class:`StandInSR`, :class:`StandInLatentEps`, :class:`StandInDecoder`) and keeps what they saw as plain data,
``judge_<name>`` compares with :mod:`course_utils.cascade` / :mod:`course_utils.latent` and names the classic
mistake; ``check_<name>`` runs all three.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import cascade, latent
from ..diffusion import GaussianDiffusion
from ..schedules import linear_betas
from . import _harness as h

__all__ = ["check_augment_condition", "check_super_resolve", "check_scale_factor", "check_latent_sample",
           "StandInSR", "StandInLatentEps", "StandInDecoder", "reference_augment_condition",
           "reference_super_resolve", "reference_scale_factor", "reference_latent_sample"]

_RTOL, _ATOL = 1e-4, 1e-4          # a sampler's result: several network calls in float32


def _shape(v) -> str:
    return h.fmt_shape(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__


def _per_image(v, B: int, what: str, dtype, device) -> torch.Tensor:
    """A float or a (B,) tensor (one entry broadcasts) as a (B,) tensor; a ValueError naming ``what`` otherwise."""
    v = torch.as_tensor(v, device=device).reshape(-1).to(dtype)
    if v.numel() == 1:
        v = v.expand(B)
    if v.shape != (B,):
        raise ValueError(f"{what} must be a number or a (B,) = ({B},) tensor, one entry per image; got "
                         f"{v.numel()} values.")
    return v


class StandInSR(torch.nn.Module):
    """A seeded stand-in for the super-resolution U-Net that records every call ``(x, t, cond, aug_level)``.

    ε(x_t, t, cond, a) = conv(cat[x_t, cond])·(1 + t/T) + c·a: a fixed random 3×3 convolution that weighs the
    two slots differently (so they cannot be swapped unseen), scaled by the timestep, plus a term in the level
    it is told. Nothing is trained; every input changes the prediction. ``sr_config.residual_scale`` says, as on
    the real :class:`~course_utils.cascade.SRUNet`, whether it denoises the image (None) or the scaled residual.
    """

    def __init__(self, seed: int = 0, T: int = 50, residual_scale: float | None = None):
        super().__init__()
        g = h.gen(seed)
        self.T = T
        self.sr_config = cascade.SRUNetConfig(residual_scale=residual_scale)
        self.conv = torch.nn.Conv2d(2, 1, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(1, 2, 3, 3, generator=g) * 0.3)
            self.conv.bias.copy_(torch.randn(1, generator=g) * 0.1)
        self.c = torch.nn.Parameter(torch.tensor(1.5))
        self.calls: list[dict] = []

    def forward(self, x, t, cond=None, aug_level=None):
        if cond is None or aug_level is None:
            raise ValueError("the super-resolution model needs its condition and the level it was augmented to: "
                             "model(x_t, t, cond, aug_level) with cond = z_a, the augmented upsampled image, and "
                             "aug_level = a.")
        if not isinstance(cond, torch.Tensor) or cond.shape != x.shape:
            raise ValueError(f"cond must have x_t's shape {h.fmt_shape(x.shape)}; got {_shape(cond)}. Upsample the "
                             f"low-resolution image to twice its side first: cascade.upsample(low, 2 * low.shape[-1]).")
        B = x.shape[0]
        a = _per_image(aug_level, B, "aug_level", x.dtype, x.device)
        tt = _per_image(t, B, "t", x.dtype, x.device)
        self.calls.append({"x": x.detach().clone(), "t": torch.as_tensor(t).detach().reshape(-1).clone(),
                           "cond": cond.detach().clone(), "a": a.detach().clone()})
        eps = self.conv(torch.cat([x, cond.to(x.dtype)], dim=1)) * (1 + tt.view(-1, 1, 1, 1) / self.T)
        return eps + self.c * a.view(-1, 1, 1, 1)

    def record(self) -> list[dict]:
        """The calls, as plain tensors (for the outputs of a run step)."""
        return [{k: v.clone() for k, v in c.items()} for c in self.calls]


class StandInLatentEps(torch.nn.Module):
    """A seeded class-conditional latent ε-model that records every ``(x, t, y)``: a fixed random 3×3
    convolution of the latent, scaled by the timestep, plus a fixed vector per label. ``null_class`` (an int,
    = ``num_classes``) is the label ∅, so the package's guidance batches both predictions in one call; ``y=None``
    means ∅ too, as for :class:`course_utils.models.UNet`."""

    def __init__(self, seed: int = 0, T: int = 50, channels: int = 4, num_classes: int = 10):
        super().__init__()
        g = h.gen(seed)
        self.T, self.null_class = T, num_classes
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(channels, channels, 3, 3, generator=g) * 0.15)
            self.conv.bias.zero_()
        self.label = torch.nn.Parameter(torch.randn(num_classes + 1, channels, generator=g) * 0.5)
        self.calls: list[dict] = []

    def forward(self, x, t, y=None):
        B = x.shape[0]
        yy = torch.full((B,), self.null_class, dtype=torch.long, device=x.device) if y is None else \
            _per_image(y, B, "y (the labels)", torch.long, x.device)
        if bool(((yy < 0) | (yy > self.null_class)).any()):
            raise ValueError(f"labels must be classes 0–{self.null_class - 1} or model.null_class = "
                             f"{self.null_class}; got {yy.tolist()}.")
        tt = _per_image(t, B, "t", x.dtype, x.device)
        self.calls.append({"x": x.detach().clone(), "t": torch.as_tensor(t).detach().reshape(-1).clone(),
                           "y": None if y is None else yy.detach().clone()})
        return self.conv(x) * (1 + tt.view(-1, 1, 1, 1) / self.T) + self.label[yy][:, :, None, None]

    def record(self) -> list[dict]:
        return [{k: (None if v is None else v.clone()) for k, v in c.items()} for c in self.calls]


class StandInDecoder:
    """A stand-in autoencoder with only ``decode``: a fixed map from (B, C, h, w) latents to (B, 1, 2h, 2w) images
    in (-1, 1), tanh of a fixed mix of the channels, upsampled ×2. It records every latent it is given."""

    def __init__(self, seed: int = 0, channels: int = 4):
        g = h.gen(seed)
        self.latent_channels = channels
        self.weight = torch.randn(channels, generator=g) * 0.4
        self.bias = torch.randn((), generator=g) * 0.1
        self.seen: list[torch.Tensor] = []

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(f"ae.decode takes (B, {self.latent_channels}, h, w) latents; got {_shape(z)}.")
        self.seen.append(z.detach().cpu().clone())
        mix = (z * self.weight.to(z).view(1, -1, 1, 1)).sum(dim=1, keepdim=True) + self.bias.to(z)
        return F.interpolate(torch.tanh(mix), scale_factor=2, mode="nearest")


def _steps_seen(calls: list[dict]) -> list:
    """The timesteps the model was called at, in order, a repeat at the same t counted once (unbatched guidance
    calls the model twice per step)."""
    ts: list = []
    for c in calls:
        v = int(c["t"][0]) if c["t"].numel() else None
        if not ts or ts[-1] != v:
            ts.append(v)
    return ts


def _steps_report(r: h.Report, calls: list[dict], diffusion: GaussianDiffusion, n: int) -> None:
    __tracebackhide__ = True  # noqa: F841
    seen, want = _steps_seen(calls), diffusion.ddim_timesteps(n)
    if seen != want:
        r.fail(f"the model was called at t = {seen}; a {n}-step DDIM visits diffusion.ddim_timesteps({n}) = {want} "
               f"(evenly spread from T-1 = {diffusion.num_timesteps - 1} down to 0). Loop over those, or let "
               f"diffusion.ddim_sample_loop(..., num_steps={n}) do it.")


def _first_match(r: h.Report, got: torch.Tensor, mistakes: dict, rtol: float = _RTOL, atol: float = _ATOL) -> None:
    __tracebackhide__ = True  # noqa: F841
    for msg, cand in mistakes.items():
        if cand is not None and h.close(got, cand, rtol, atol):
            r.fail(msg)


def _largest(got: torch.Tensor, ref: torch.Tensor) -> str:
    return f"largest difference {float((got.double() - ref.double()).abs().max()):.3g}"


# ----------------------------------------------------------------------------------------------
# Exercise: noise-conditioning augmentation  (Ho et al. 2021, §3.2)
# ----------------------------------------------------------------------------------------------
def reference_augment_condition(z, level, noise):
    """The exercise's answer: :func:`course_utils.cascade.augment_condition`, z_a = √(1 − a²)·z + a·ε."""
    return cascade.augment_condition(z, level, noise)


def make_augment_condition(batch: int = 4, size: int | None = None, levels=None, float_level: float = 0.3,
                           seed: int = 0) -> dict:
    """A different level per image (0 included); the side equals the batch by default, so that a (B,) level left
    unshaped broadcasts silently over the image width and can be named."""
    size = batch if size is None else size
    levels = torch.linspace(0.0, 0.8, batch) if levels is None else torch.as_tensor(levels, dtype=torch.float32)
    return {"z": h.images((batch, 1, size, size), seed), "levels": levels.reshape(-1).clone(),
            "noise": torch.randn((batch, 1, size, size), generator=h.gen(seed + 1)), "float_level": float(float_level)}


def run_augment_condition(inputs: dict, fn) -> dict:
    z, noise = inputs["z"], inputs["noise"]
    return {"out": h.call(fn, z.clone(), inputs["levels"].clone(), noise.clone()),
            "out_float": h.call(fn, z.clone(), inputs["float_level"], noise.clone())}


def _value_or_hint(r: h.Report, outcome: dict, shown: str, hint: str):
    """:func:`h.value`, except that an error is reported with ``hint`` (how to handle this kind of level)."""
    __tracebackhide__ = True  # noqa: F841
    e = outcome.get("error")
    if e is None or not hint or e["type"] in ("NotImplementedError", "not callable"):
        return h.value(r, outcome)
    for n in outcome.get("notes", ()):
        r.note(n)
    where = f" (at {e['where']})" if e.get("where") else ""
    r.fail(f"{shown} raised {e['type']}{where}: {e['message']}. {hint}")


def _augment_mistakes(z, a, noise, one_level: bool) -> dict:
    """The classic wrong augmentations, as they come out for z, the level ``a`` (a number or (B,)) and ε."""
    a4 = torch.as_tensor(a, dtype=z.dtype).reshape(-1, 1, 1, 1)
    m = {
        "you added the noise on top, z + a·ε: that is not variance-preserving (a unit-variance z ends with variance "
        "1 + a²). Shrink the condition as the forward process does: √(1 − a²)·z + a·ε.": z + a4 * noise,
        "a was treated as a variance, √(1 − a)·z + √a·ε; here a is the noise's standard deviation: "
        "√(1 − a²)·z + a·ε.": (1 - a4).sqrt() * z + a4.sqrt() * noise,
        "that is lesson 01's blend (1 − a)·z + a·ε, which loses variance in between; the augmentation is the "
        "forward process at ᾱ = 1 − a²: √(1 − a²)·z + a·ε.": (1 - a4) * z + a4 * noise,
        "the roles are swapped, a·z + √(1 − a²)·ε: a is the amount of noise, so it multiplies ε "
        "(a = 0 leaves z unchanged): √(1 − a²)·z + a·ε.": a4 * z + (1 - a4 ** 2).sqrt() * noise,
        "the square root is missing: (1 − a²)·z + a·ε. The signal's coefficient is √(1 − a²), so that "
        "(1 − a²) + a² = 1.": (1 - a4 ** 2) * z + a4 * noise,
    }
    if one_level:
        a0 = a4[:1]
        m["every image got the first image's level, level[0]: each image has its own level, so reshape the (B,) "
          "levels to (B, 1, 1, 1) (level.view(-1, 1, 1, 1)) and use them all."] = (1 - a0 ** 2).sqrt() * z + a0 * noise
        if a4.numel() == z.shape[-1]:
            aw = a4.reshape(-1)
            m["the (B,) levels were not reshaped: they broadcast along the image width (the last axis) instead of "
              "one per image. Reshape them to (B, 1, 1, 1) first: level.view(-1, 1, 1, 1)."] = \
                (1 - aw ** 2).sqrt() * z + aw * noise
    return m


def judge_augment_condition(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("augment_condition")
    z, levels, noise, fl = inputs["z"], inputs["levels"], inputs["noise"], inputs["float_level"]
    B = z.shape[0]
    cases = ((f"augment_condition(z {h.fmt_shape(z.shape)}, level {[round(v, 3) for v in levels.tolist()]}, noise)",
              outputs["out"], levels, True),
             (f"augment_condition(z {h.fmt_shape(z.shape)}, level={fl:g}, noise)", outputs["out_float"], fl, False))
    for shown, outcome, a, per_image in cases:
        e = outcome.get("error") or {}
        if per_image and e.get("type") == "RuntimeError" and "must match the size" in e.get("message", ""):
            r.fail(f"{shown} raised RuntimeError: {e['message']}. A (B,) level meets a (B, 1, H, W) batch: "
                   f"reshape it to (B, 1, 1, 1) first, level.view(-1, 1, 1, 1), one level per image.")
        out = h.as_tensor(r, _value_or_hint(
            r, outcome, shown, "The level may be a Python float (the same for every image) as well as a (B,) tensor: "
            "convert it first, a = torch.as_tensor(level, dtype=z.dtype, device=z.device).reshape(-1, 1, 1, 1) "
            "(a float becomes (1, 1, 1, 1), which broadcasts)." if not per_image else ""), shown)
        if per_image and tuple(out.shape) == (B, B, *z.shape[2:]):
            r.fail(f"{shown} has shape {tuple(out.shape)}: the levels were reshaped to (1, B, 1, 1), along the "
                   f"channels. One level per image is (B, 1, 1, 1): level.view(-1, 1, 1, 1).")
        h.check_shape_dtype(r, out, z.shape, None, shown)
        ref = reference_augment_condition(z, a, noise)
        h.diagnose(r, out, ref, _augment_mistakes(z, a, noise, per_image), rtol=1e-5, atol=1e-6, what=shown)
    r.ok(f"augment_condition matches √(1 − a²)·z + a·ε for a level per image ({B} levels, 0 leaving z as it is) "
         f"and for one float level")


check_augment_condition = h.register(h.Check(
    "augment_condition", make_augment_condition, run_augment_condition, judge_augment_condition,
    reference=reference_augment_condition, blocks=("course_utils.cascade.augment_condition",),
    doc="Check ``fn(z, level, noise) -> z_a``: noise-conditioning augmentation, z_a = √(1 − a²)·z + a·ε.\n\n"
        "Called with a (B,) tensor of different levels (one per image) and with one float level; the answer "
        "must equal :func:`course_utils.cascade.augment_condition` (the forward process at ᾱ = 1 − a², a the "
        "noise's standard deviation)."))


# ----------------------------------------------------------------------------------------------
# Exercise: super_resolve  (stage 2 of the cascade: upsample → augment once → DDIM of the SR model)
# ----------------------------------------------------------------------------------------------
def reference_super_resolve(model, diffusion, low, aug_level, cond_noise, x_T, num_steps):
    """The exercise's answer under its signature: :func:`course_utils.cascade.super_resolve`."""
    return cascade.super_resolve(model, diffusion, low, aug_level, num_steps, cond_noise=cond_noise, x_T=x_T)


def make_super_resolve(batch: int = 3, side: int = 8, aug_level: float = 0.3, num_steps: int = 4, T: int = 50,
                       seed: int = 0, residual_scale: float | None = 0.5) -> dict:
    """``residual_scale``: the stand-in model's ``sr_config.residual_scale`` (0.5: it denoises the residual, as
    the shipped ``sr32`` does; None: the image itself)."""
    if not cascade.is_residual_scale(residual_scale):
        raise ValueError(f"residual_scale should be None or a positive float; got {residual_scale!r}.")
    big = (batch, 1, 2 * side, 2 * side)
    return {"low": h.images((batch, 1, side, side), seed), "aug_level": float(aug_level), "num_steps": num_steps,
            "T": T, "model_seed": seed, "cond_noise": torch.randn(big, generator=h.gen(seed + 1)),
            "x_T": torch.randn(big, generator=h.gen(seed + 2)),
            "residual_scale": None if residual_scale is None else float(residual_scale)}


def run_super_resolve(inputs: dict, fn) -> dict:
    with h.one_thread():
        model = StandInSR(inputs["model_seed"], inputs["T"], inputs.get("residual_scale"))
        d = GaussianDiffusion(linear_betas(inputs["T"]))
        out = h.call(fn, model, d, inputs["low"].clone(), inputs["aug_level"], inputs["cond_noise"].clone(),
                     inputs["x_T"].clone(), inputs["num_steps"])
    return {"out": out, "calls": model.record()}


def judge_super_resolve(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("super_resolve")
    low, a, eps_c, x_T, n, T = (inputs[k] for k in ("low", "aug_level", "cond_noise", "x_T", "num_steps", "T"))
    rs = inputs.get("residual_scale")
    B, _, s, _ = low.shape
    S = 2 * s
    shown = (f"super_resolve(model (residual_scale={rs}), diffusion (T={T}), low {h.fmt_shape(low.shape)}, "
             f"aug_level={a:g}, cond_noise, x_T, num_steps={n})")
    e = outputs["out"].get("error") or {}
    if e.get("type") == "RuntimeError" and "must match the size" in e.get("message", ""):
        where = f" (at {e['where']})" if e.get("where") else ""
        r.fail(f"{shown} raised RuntimeError{where}: {e['message']}. cond_noise and x_T are {S} px, twice low's side: "
               f"upsample low to twice its side first, z = cascade.upsample(low, {S}), then augment z.")
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if tuple(out.shape) == tuple(low.shape):
        r.fail(f"{shown} returned images of the input's size, {s} px; super-resolution doubles it: sample at {S} px, "
               f"from x_T {h.fmt_shape(x_T.shape)}.")
    h.check_shape_dtype(r, out, (B, 1, S, S), None, shown)
    d = GaussianDiffusion(linear_betas(T))
    with h.one_thread():
        ref = cascade.super_resolve(StandInSR(inputs["model_seed"], T, rs), d, low, a, n, cond_noise=eps_c, x_T=x_T)
        if h.close(out, ref, _RTOL, _ATOL):
            how = ("with x̂0 clipped" if rs is None else
                   f"on the residual, x̂0 not clipped, then upsample(low) + {rs:g}·r")
            r.ok(f"{shown}: matches cascade.super_resolve (condition upsampled bicubic to {S} px and augmented once "
                 f"to a = {a:g}, the model told a, DDIM over t = {d.ddim_timesteps(n)} {how})")
            return
        calls = outputs["calls"]
        if not calls:
            r.fail("the model was never called: each DDIM step asks model(x_t, t, z_a, a) for the noise.")
        z = cascade.upsample(low, S)
        za = cascade.augment_condition(z, a, eps_c)
        first = calls[0]
        if h.close(first["x"], za, 1e-5, 1e-5) or h.close(first["cond"], x_T, 1e-5, 1e-5):
            r.fail("the condition went into the x slot (and x_t into the condition's): the model is called "
                   "model(x_t, t, cond, aug_level), the noisy image first; Conditioned(model, z_a, a) binds them in "
                   "that order.")
        if not h.close(first["x"], x_T, 1e-5, 1e-5):
            r.fail("the first step did not start from the given x_T: start the sampler from it (x_T=x_T) instead of "
                   "drawing new noise, so the same inputs give the same images.")
        _steps_report(r, calls, d, n)
        conds = [c["cond"] for c in calls]
        if any(not h.close(c, conds[0], 1e-6, 1e-6) for c in conds[1:]):
            r.fail("the condition changed between denoising steps: the augmentation was redone at every step. Build "
                   "z_a = augment_condition(upsample(low), a, cond_noise) once, before the loop, and give the model "
                   "that same z_a at every step.")
        if not h.close(conds[0], za, 1e-5, 1e-5):
            def aug(up):
                return cascade.augment_condition(up, a, eps_c)
            nearest = F.interpolate(low, size=(S, S), mode="nearest")
            bilinear = F.interpolate(low, size=(S, S), mode="bilinear", align_corners=False)
            _first_match(r, conds[0], {
                f"the condition is not augmented: the model saw upsample(low) itself. Augment it once, to the level "
                f"a = {a:g} it is told: z_a = augment_condition(upsample(low, {S}), aug_level, cond_noise) (the "
                f"model was trained on noisy conditions).": z if a > 0 else None,
                "the condition was upsampled nearest-neighbour (F.interpolate's default mode); the model was trained "
                f"on bicubic upsamples: use cascade.upsample(low, {S}) (bicubic, clamped to [-1, 1]).": aug(nearest),
                "the condition was upsampled nearest-neighbour and not augmented: use z = cascade.upsample(low, "
                f"{S}) (bicubic), then z_a = augment_condition(z, aug_level, cond_noise).": nearest,
                f"the condition was upsampled bilinearly; the model was trained on bicubic upsamples: use "
                f"cascade.upsample(low, {S}).": aug(bilinear),
                "the bicubic upsample was not clamped to [-1, 1]: bicubic overshoots next to edges. "
                f"cascade.upsample(low, {S}) clamps, as the training conditions were.":
                    aug(F.interpolate(low, size=(S, S), mode="bicubic", align_corners=False)),
            }, 1e-5, 1e-5)
            r.fail(f"the condition the model saw is not augment_condition(upsample(low, {S}), {a:g}, cond_noise) "
                   f"({_largest(conds[0], za)}): upsample with cascade.upsample, then augment with the given "
                   f"cond_noise (not fresh noise).")
        want_a = torch.full((B,), a)
        for c in calls:
            if not h.close(c["a"], want_a, 1e-5, 1e-6):
                told = c["a"]
                if a > 0 and bool((told == 0).all()):
                    r.fail(f"the model was told level 0 (a clean condition) but its condition was augmented to a = "
                           f"{a:g}: tell it the level you applied, model(x_t, t, z_a, a), e.g. through "
                           f"Conditioned(model, z_a, aug_level); it uses a to know how far to trust the condition.")
                if h.close(told, want_a ** 2, 1e-5, 1e-6):
                    r.fail(f"the model was told a² = {a * a:g}, a variance; the level is a = {a:g} itself, the noise's "
                           f"standard deviation (what augment_condition takes).")
                r.fail(f"the model was told aug_level = {[round(v, 4) for v in told.tolist()]}; tell it the level "
                       f"the condition was augmented to, a = {a:g}, at every step.")
        cm = cascade.Conditioned(StandInSR(inputs["model_seed"], T, rs), za, want_a)
        no_clip = d.ddim_sample_loop(cm, x_T=x_T, num_steps=n, clip_x0=False, progress=False)
        if h.close(out, za, _RTOL, _ATOL):
            r.fail("you returned the condition z_a, not the sample the DDIM loop ends on.")
        if rs is None:
            if h.close(out, no_clip, _RTOL, _ATOL) or h.close(out, no_clip.clamp(-1, 1), _RTOL, _ATOL):
                r.fail("x̂0 was not clipped to [-1, 1] at each step: images live in [-1, 1], so the sampler clips its "
                       "estimate of the clean image. Pass clip_x0=True to diffusion.ddim_sample_loop (this schedule's "
                       "default is False).")
            r.fail(f"the model saw the right inputs at the right timesteps, but the result differs from DDIM (η = 0) "
                   f"with x̂0 clipped ({_largest(out, ref)}): use diffusion.ddim_sample_loop(Conditioned(model, z_a, "
                   f"a), x_T=x_T, num_steps=num_steps, clip_x0=True), then clamp to [-1, 1].")
        clipped = d.ddim_sample_loop(cm, x_T=x_T, num_steps=n, clip_x0=True, progress=False)
        _first_match(r, out, {
            f"you returned the residual r that DDIM ends on, not the image: this model (sr_config.residual_scale = "
            f"{rs:g}) denoises r = (x − upsample(low)) / {rs:g}; return (z + {rs:g}·r).clamp(-1, 1).":
                no_clip.clamp(-1, 1),
            f"you sampled as if the model denoised the image (x̂0 clipped, the result returned as it is), but this "
            f"model has sr_config.residual_scale = {rs:g}: it denoises the residual r = (x − upsample(low)) / {rs:g}. "
            f"Sample r with clip_x0=False and return (z + {rs:g}·r).clamp(-1, 1).": clipped.clamp(-1, 1),
            f"you returned {rs:g}·r, the residual without the upsampled image under it: add z = upsample(low) back, "
            f"(z + {rs:g}·r).clamp(-1, 1).": (rs * no_clip).clamp(-1, 1),
            f"the residual was added unscaled, z + r: the model's r is the residual divided by its standard deviation "
            f"s = sr_config.residual_scale = {rs:g}; multiply back: z + s·r.": (z + no_clip).clamp(-1, 1),
            f"the residual was divided by s: the model's r is (x − z) / s, so x = z + s·r (s = {rs:g}), not z + r / s.":
                (z + no_clip / rs).clamp(-1, 1),
            "the residual was added to the augmented condition z_a; the residual is measured from the clean upsample "
            "z = upsample(low) (the augmentation noise is only the model's input): z + s·r.":
                (za + rs * no_clip).clamp(-1, 1),
            "x̂0 was clipped to [-1, 1] at each step, but here x̂0 is the scaled residual, which is not bounded by "
            "[-1, 1]: sample the residual with clip_x0=False and clamp only the final image z + s·r.":
                (z + rs * clipped).clamp(-1, 1),
        })
    r.fail(f"the model saw the right inputs at the right timesteps, but the result differs from DDIM (η = 0) on the "
           f"residual ({_largest(out, ref)}): r = diffusion.ddim_sample_loop(Conditioned(model, z_a, a), x_T=x_T, "
           f"num_steps=num_steps, clip_x0=False), then (z + s·r).clamp(-1, 1) with s = model.sr_config.residual_scale.")


check_super_resolve = h.register(h.Check(
    "super_resolve", make_super_resolve, run_super_resolve, judge_super_resolve, reference=reference_super_resolve,
    blocks=("course_utils.cascade.super_resolve",),
    doc="Check ``fn(model, diffusion, low, aug_level, cond_noise, x_T, num_steps) -> (B, 1, 2h, 2w)``: stage 2.\n\n"
        "A recording stand-in SR model (:class:`StandInSR`) sees every (x_t, t, cond, aug_level). The answer must "
        "upsample ``low`` bicubic to twice its side (``cascade.upsample``), augment it ONCE with ``cond_noise`` to "
        "``aug_level``, tell the model that level, and run DDIM (η = 0) over ``diffusion.ddim_timesteps(num_steps)`` "
        "from ``x_T``: for a model with ``sr_config.residual_scale = s`` (the default stand-in, s = 0.5, as the "
        "shipped sr32) DDIM of the residual, x̂0 not clipped, then ``(z + s·r).clamp(-1, 1)``; for s = None (pass "
        "``residual_scale=None``) DDIM of the image with x̂0 clipped: :func:`course_utils.cascade.super_resolve`.\n\n"
        "``cascade.upsample``, ``augment_condition`` and ``Conditioned`` may be used (Conditioned only binds the "
        "condition so that ``diffusion.ddim_sample_loop`` can call ``model(x_t, t)``)."))


# ----------------------------------------------------------------------------------------------
# Exercise: the latent scale factor  (Rombach et al. 2022, §4.3.2, Appendix G)
# ----------------------------------------------------------------------------------------------
def reference_scale_factor(latents):
    """The exercise's answer: :func:`course_utils.latent.scale_factor`, 1 / std over every entry."""
    return latent.scale_factor(latents)


def make_scale_factor(batch: int = 16, channels: int = 4, side: int = 4, seed: int = 0) -> dict:
    """Latents with a nonzero mean and a different mean and spread per channel, as an autoencoder's are."""
    g = h.gen(seed)
    means = torch.linspace(-0.6, 1.2, channels).view(1, -1, 1, 1)
    spreads = torch.linspace(0.4, 2.5, channels).view(1, -1, 1, 1)
    return {"latents": torch.randn((batch, channels, side, side), generator=g) * spreads + means + 0.3}


def run_scale_factor(inputs: dict, fn) -> dict:
    return {"out": h.call(fn, inputs["latents"].clone())}


def judge_scale_factor(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("scale_factor")
    z = inputs["latents"].double()
    B, C = z.shape[:2]
    shown = f"scale_factor(latents {h.fmt_shape(z.shape)})"
    out = h.value(r, outputs["out"])
    per_channel = 1 / z.transpose(0, 1).reshape(C, -1).std(dim=1)
    if isinstance(out, torch.Tensor) and out.numel() != 1:
        if out.numel() == C and h.close(out.reshape(-1), per_channel, 1e-3, 1e-6):
            r.fail(f"{shown} returned {C} factors, one per channel: the scale factor is ONE number, 1 / std over every "
                   f"entry of the latents (all channels together), so the diffusion model sees unit variance overall.")
        r.fail(f"{shown} should return one number (a float), 1 / latents.std(); got a tensor of shape "
               f"{tuple(out.shape)}. Take the std over every entry, not along a dimension.")
    if isinstance(out, torch.Tensor):
        out = float(out)
    if isinstance(out, bool) or not isinstance(out, (int, float)):
        r.fail(f"{shown} should return a float (or a 0-d tensor); got {h.type_name(out)}.")
    got = torch.tensor(float(out), dtype=torch.float64)
    ref = torch.tensor(float(reference_scale_factor(inputs["latents"])), dtype=torch.float64)
    mistakes = {
        "you returned the standard deviation itself; the scale factor is its inverse, 1 / std, the number that "
        "multiplies the latents to give them unit variance.": z.std(),
        "you returned 1 / variance; the scale factor is 1 / std (the square root of the variance): multiplying by it "
        "gives unit variance.": 1 / z.var(),
        "you returned 1 / max|z|, which squeezes the latents into [-1, 1]; the scale factor is 1 / std over every "
        "entry, which gives unit variance (latents are not bounded).": 1 / z.abs().max(),
        "you returned 1 / mean|z|; the scale factor is 1 / std over every entry.": 1 / z.abs().mean(),
        "you returned 1 / √mean(z²), the root mean square, which counts the latents' mean as spread; the scale "
        "factor is 1 / std (latents.std() subtracts the mean).": 1 / z.pow(2).mean().sqrt(),
        "you returned 1 / the std of the channel means; the scale factor is 1 / std over every entry of the "
        "latents.": 1 / z.mean(dim=(0, 2, 3)).std(),
        "you averaged the per-channel factors 1 / std_c; the scale factor is one std over every entry, all channels "
        "together: 1 / latents.std().": per_channel.mean(),
        "0.18215 is Stable Diffusion's factor for ITS autoencoder; compute this autoencoder's from its latents: "
        "1 / latents.std().": torch.tensor(0.18215, dtype=torch.float64),
    }
    h.diagnose(r, got, ref, mistakes, rtol=1e-3, atol=1e-8, what=shown)     # ddof 0 or 1 both pass
    r.ok(f"{shown} = {float(out):.5f} = 1 / std over every entry (the latents' std is {1 / float(ref):.4f})")


check_scale_factor = h.register(h.Check(
    "scale_factor", make_scale_factor, run_scale_factor, judge_scale_factor, reference=reference_scale_factor,
    blocks=("course_utils.latent.scale_factor",),
    doc="Check ``fn(latents) -> float``: the latent scale factor, 1 / std over every entry of the latents.\n\n"
        "The latents have a nonzero mean and a different spread per channel; the answer (a float or a 0-d tensor) "
        "must equal :func:`course_utils.latent.scale_factor` to 0.1% (the unbiased and the plain std both pass)."))


# ----------------------------------------------------------------------------------------------
# Exercise: latent sampling  (guided DDIM in latent space, then decode(z / scale))
# ----------------------------------------------------------------------------------------------
def reference_latent_sample(model, diffusion, ae, scale, labels, w, x_T, num_steps):
    """The exercise's answer: :func:`course_utils.latent.sample_latents` from x_T, then ``decode_latents``."""
    z = latent.sample_latents(model, diffusion, labels, w, num_steps, x_T=x_T, latent_shape=tuple(x_T.shape[1:]))
    return latent.decode_latents(ae, z, scale)


def make_latent_sample(batch: int = 4, channels: int = 4, side: int = 4, w: float = 2.0, scale: float = 1.8,
                       num_steps: int = 4, T: int = 50, seed: int = 0) -> dict:
    return {"labels": torch.randperm(10, generator=h.gen(seed + 1))[:batch].clone(), "w": float(w),
            "scale": float(scale), "num_steps": num_steps, "T": T, "model_seed": seed,
            "x_T": torch.randn((batch, channels, side, side), generator=h.gen(seed + 2))}


def run_latent_sample(inputs: dict, fn) -> dict:
    x_T = inputs["x_T"]
    with h.one_thread():
        model = StandInLatentEps(inputs["model_seed"], inputs["T"], x_T.shape[1])
        ae = StandInDecoder(inputs["model_seed"] + 1, x_T.shape[1])
        d = GaussianDiffusion(linear_betas(inputs["T"]))
        out = h.call(fn, model, d, ae, inputs["scale"], inputs["labels"].clone(), inputs["w"], x_T.clone(),
                     inputs["num_steps"])
    return {"out": out, "calls": model.record(), "decoded": [z.clone() for z in ae.seen]}


def judge_latent_sample(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("latent_sample")
    labels, w, scale, n, T, x_T = (inputs[k] for k in ("labels", "w", "scale", "num_steps", "T", "x_T"))
    B, C, s, _ = x_T.shape
    shown = (f"latent_sample(model, diffusion (T={T}), ae, scale={scale:g}, labels {labels.tolist()}, w={w:g}, "
             f"x_T {h.fmt_shape(x_T.shape)}, num_steps={n})")
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if tuple(out.shape) == tuple(x_T.shape):
        r.fail(f"{shown} returned latents {h.fmt_shape(out.shape)}, not images: decode them at the end, "
               f"ae.decode(z / scale).")
    h.check_shape_dtype(r, out, (B, 1, 2 * s, 2 * s), None, shown)
    d = GaussianDiffusion(linear_betas(T))
    with h.one_thread():
        model = StandInLatentEps(inputs["model_seed"], T, C)
        ae = StandInDecoder(inputs["model_seed"] + 1, C)

        def ddim(**kw):
            return d.ddim_sample_loop(model, x_T=x_T, num_steps=n, progress=False, **{"y": labels, "w": w,
                                                                                        "clip_x0": False, **kw})
        z_ref = ddim()
        ref = ae.decode(z_ref / scale)
        if h.close(out, ref, _RTOL, _ATOL):
            r.ok(f"{shown}: matches latent.sample_latents then latent.decode_latents (guided DDIM over t = "
                 f"{d.ddim_timesteps(n)} in latent space, x̂0 not clipped, decoded from z / scale)")
            return
        calls = outputs["calls"]
        if not calls:
            r.fail("the model was never called: sample the latents with DDIM, diffusion.ddim_sample_loop(model, "
                   "x_T=x_T, num_steps=num_steps, y=labels, w=w, clip_x0=False).")
        ys = [c["y"] for c in calls]
        if not any(y is not None and y.numel() % B == 0 and any(torch.equal(c, labels) for c in y.split(B))
                   for y in ys):
            r.fail("the labels never reached the model: pass y=labels to the sampler (diffusion.ddim_sample_loop(..., "
                   "y=labels, w=w)), or every image is drawn from the unconditional model.")
        if w != 0 and not any(y is None or bool((y == model.null_class).any()) for y in ys):
            r.fail(f"no guidance: the model never made the null-class prediction ε(x, ∅), so w = {w:g} was ignored. "
                   f"Pass w=w to diffusion.ddim_sample_loop (it batches label and ∅), as in lesson 07.")
        if not h.close(calls[0]["x"][:B], x_T, 1e-5, 1e-5):
            r.fail("the first step did not start from the given x_T: start the sampler from it (x_T=x_T) instead of "
                   "drawing new noise.")
        _steps_report(r, calls, d, n)
        decoded = outputs["decoded"]
        if not decoded:
            r.fail("ae.decode was never called: the images are the decoded latents, ae.decode(z / scale).")
        zd = decoded[-1]
        _first_match(r, zd, {
            "the latents were multiplied by the scale factor before decoding; the diffusion model works on "
            "latents × scale, so undo it: ae.decode(z / scale).": z_ref * scale,
            "the latents were decoded without undoing the scale factor: the diffusion model works on latents × scale "
            "(unit variance), the autoencoder on the latents themselves: ae.decode(z / scale).": z_ref,
            "you decoded x_T, the starting noise: decode the latents the DDIM loop ends on.": x_T / scale,
            "you decoded x_T, the starting noise, and did not unscale it: decode the final latents, "
            "ae.decode(z / scale).": x_T,
        }, 1e-5, 1e-5)
        steps = list(d.ddim_sample_loop_progressive(model, x_T=x_T, num_steps=n, y=labels, w=w, clip_x0=False,
                                                    progress=False))
        for k, st in enumerate(steps[:-1]):
            for v in (st.sample, st.pred_x0):
                if h.close(zd, v / scale, 1e-5, 1e-5) or h.close(zd, v, 1e-5, 1e-5):
                    r.fail(f"you decoded an intermediate latent (after step {k + 1} of {n}): decode the latents the "
                           f"loop ends on, after its last step (t = 0).")
        z_clip = ddim(clip_x0=True)
        _first_match(r, zd, {
            "x̂0 was clipped to [-1, 1] in latent space: latents have no [-1, 1] range (scaled to unit variance, "
            "most of them lie outside it). Sample them with clip_x0=False; only the decoded images are in [-1, 1].":
                z_clip / scale,
            f"no guidance: these are the latents of w = 0; pass w = {w:g} to the sampler.": ddim(w=0.0) / scale,
        }, 1e-5, 1e-5)
        if h.close(zd, z_ref / scale, 1e-5, 1e-5):
            r.fail(f"the last latents you decoded are right (z / scale), but the images returned are not ae.decode of "
                   f"them ({_largest(out, ref)}): return ae.decode(z / scale) as it is.")
    r.fail(f"the model saw the right labels and timesteps, but the decoded latents differ from guided DDIM (η = 0) "
           f"with x̂0 not clipped ({_largest(zd, z_ref / scale)}): use diffusion.ddim_sample_loop(model, x_T=x_T, "
           f"num_steps=num_steps, y=labels, w=w, clip_x0=False), then ae.decode(z / scale).")


check_latent_sample = h.register(h.Check(
    "latent_sample", make_latent_sample, run_latent_sample, judge_latent_sample, reference=reference_latent_sample,
    blocks=("course_utils.latent.sample", "course_utils.latent.sample_latents",
                   "course_utils.latent.decode_latents"),
    doc="Check ``fn(model, diffusion, ae, scale, labels, w, x_T, num_steps) -> (B, 1, H, W)`` images.\n\n"
        "A recording class-conditional latent ε-model (:class:`StandInLatentEps`, with ``null_class``) and a "
        "stand-in autoencoder (:class:`StandInDecoder`, recording what it decodes). The answer must run guided "
        "DDIM (η = 0, x̂0 NOT clipped: latents have no [-1, 1] range) from ``x_T`` with the labels and w, then "
        "decode ``z / scale``: :func:`course_utils.latent.sample_latents` then :func:`~course_utils.latent."
        "decode_latents`."))
