"""Checks for lesson 06 (classifier-free guidance): the context mask, the guided ε, a guided sampler.

Each exercise's check is three steps (see :mod:`course_utils.checks._harness`): ``make_<name>`` builds
seeded inputs, ``run_<name>`` builds the stand-in model from them and calls the learner's function,
``judge_<name>`` rebuilds the same model, compares with the package and names the classic mistake;
``check_<name>`` runs all three. :func:`tiny_conditional_unet` is the stand-in model (widgets and tests use
it too).
"""
from __future__ import annotations

import torch

from ..diffusion import GaussianDiffusion, guided_eps
from ..models import UNet, drop_labels
from ..schedules import linear_betas
from . import _harness as h

__all__ = ["check_drop_labels", "check_guided_eps", "check_guided_sampler", "tiny_conditional_unet"]


def tiny_conditional_unet(num_classes: int = 10, seed: int = 0) -> "torch.nn.Module":
    """A seeded, untrained class-conditional :class:`course_utils.models.UNet` (channels (8, 16)) for checks.

    Its zero-initialised output conv is re-drawn so the predictions are not all zero, and the class
    embedding (rows 0 … num_classes − 1 the classes, row num_classes the null class ∅) makes every label
    give a different ε. The global random state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNet(channels=(8, 16), num_classes=num_classes)
        torch.nn.init.normal_(model.conv_out.weight, std=0.2)
        torch.nn.init.normal_(model.conv_out.bias, std=0.1)
    return model.eval()


# ----------------------------------------------------------------------------------------------
# Exercise: drop_labels  (the context mask, Ho & Salimans 2021, Algorithm 1)
# ----------------------------------------------------------------------------------------------
def make_drop_labels(p: float = 0.1, null_class: int = 10, batch: int = 20000, seed: int = 0) -> dict:
    return {"p": p, "null_class": null_class, "batch": batch,
            "y": torch.randint(0, null_class, (batch,), generator=h.gen(seed)),
            "generator_seed": seed + 1, "other_seed": seed + 2}


def run_drop_labels(inputs: dict, fn) -> dict:
    """Three calls: with a generator, with one seeded alike, and (for 0 < p < 1) with one seeded otherwise."""
    p, null = inputs["p"], inputs["null_class"]
    y_in = inputs["y"].clone()
    out = h.call(fn, y_in, p, null, h.gen(inputs["generator_seed"]))
    again = h.call(fn, inputs["y"].clone(), p, null, h.gen(inputs["generator_seed"]))
    other = h.call(fn, inputs["y"].clone(), p, null, h.gen(inputs["other_seed"])) if 0 < p < 1 else None
    return {"out": out, "y_after": y_in, "again": again, "other": other}


def judge_drop_labels(inputs: dict, outputs: dict) -> None:
    r = h.Report("drop_labels")
    p, null_class, batch, y = inputs["p"], inputs["null_class"], inputs["batch"], inputs["y"]
    shown = f"drop_labels(y with {batch} labels, p={p}, null_class={null_class}, generator)"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if not torch.equal(outputs["y_after"], y):
        r.fail("your function changed y in place; drop the labels of a copy (y.clone()) and return it.")
    h.check_shape_dtype(r, out, (batch,), None, shown)
    if out.is_floating_point() or out.is_complex() or out.dtype == torch.bool:
        r.fail(f"{shown} has dtype {out.dtype}; labels are integers: return an int64 tensor "
               f"(torch.where(drop, null_class, y) keeps y's dtype).")
    out = out.long()
    changed = out != y
    stray = changed & (out != null_class)
    if bool(stray.any()):
        vals = out[stray].unique().tolist()
        if vals == [0]:
            r.fail(f"dropped labels were set to 0, but 0 is a real class (T-shirt/top): the model would learn "
                   f"that 'no label' means T-shirt. Use the null class ∅ = null_class (here {null_class}, "
                   f"model.null_class), the extra row of the class embedding.")
        if vals == [-1]:
            r.fail(f"dropped labels were set to -1; the class embedding has no row -1 (nn.Embedding would "
                   f"fail or wrap around). Use the null class ∅ = null_class (here {null_class}).")
        r.fail(f"some labels were changed to {vals[:5]} instead of the null class {null_class}: a label is "
               f"either kept as it is or replaced by null_class.")
    n_drop = int((out == null_class).sum())
    rate = n_drop / batch
    tol = h.drop_rate_tolerance(p, batch)
    if abs(rate - p) > tol:
        if 0 < p < 1 and abs(rate - (1 - p)) <= h.drop_rate_tolerance(1 - p, batch):
            r.fail(f"{rate:.3f} of the labels were dropped, about 1 − p = {1 - p:g}: you keep a label with "
                   f"probability p and drop it otherwise. Drop it when its uniform draw is below p: "
                   f"torch.rand(B, generator=generator) < p.")
        if n_drop == 0:
            r.fail(f"no label was dropped with p = {p}; each label should become {null_class} with "
                   f"probability p.")
        if n_drop == batch:
            r.fail(f"every label was dropped with p = {p}; each label should be dropped with probability p, "
                   f"independently of the others.")
        r.fail(f"{rate:.4f} of the labels were dropped; with p = {p} expect {p:g} ± {tol:.4f} (5 binomial "
               f"standard deviations for {batch} labels). Draw one uniform number per label and drop it "
               f"when the number is below p.")
    h.same_again(r, out, outputs["again"], "two calls with generators seeded alike gave different masks: draw the "
                 "random numbers with the generator argument (torch.rand(..., generator=generator)).",
                 convert=lambda v: v.long())
    if 0 < p < 1:
        other = h.value(r, outputs["other"])
        if isinstance(other, torch.Tensor) and torch.equal(other.long(), out):
            r.fail("a differently seeded generator gave exactly the same mask: the mask must be random, "
                   "drawn with the generator argument, not fixed.")
    r.ok(f"{shown}: {n_drop} labels ({rate:.3f}) became ∅ = {null_class} (expected p = {p:g} ± {tol:.3f}), "
         f"the others unchanged, reproducible with the generator")


check_drop_labels = h.register(h.Check(
    "drop_labels", make_drop_labels, run_drop_labels, judge_drop_labels, reference=drop_labels,
    doc="Check ``fn(y, p, null_class, generator)``: each label becomes ``null_class`` with probability p.\n\n"
        "The labels are ``batch`` seeded classes in {0, …, null_class − 1}; the fraction dropped must be p "
        "within five binomial standard deviations (p = 0 and p = 1 exactly), every other label unchanged, "
        "``y`` not changed in place, and the draws must come from ``generator`` (same seed, same mask; new "
        "seed, new mask). :func:`course_utils.models.drop_labels` is the reference."))


# ----------------------------------------------------------------------------------------------
# Exercise: guided_eps  (ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅), Ho & Salimans 2021, eq. 6)
# ----------------------------------------------------------------------------------------------
_GUIDED_WS = ("w", 0.0, -1.0)       # the exercise's w, then the two ends that must give ε(x, y) and ε(x, ∅)


def make_guided_eps(w: float = 2.0, num_classes: int = 10, batch: int = 4, size: int = 8, seed: int = 0) -> dict:
    y = torch.randint(0, num_classes, (batch,), generator=h.gen(seed + 3))
    if num_classes > 1:
        y[0] = 0
        y[-1] = num_classes - 1
    return {"w": float(w), "num_classes": num_classes, "model_seed": seed,
            "x": torch.randn(batch, 1, size, size, generator=h.gen(seed + 1)),
            "t": torch.randint(0, 1000, (batch,), generator=h.gen(seed + 2)), "y": y}


def run_guided_eps(inputs: dict, fn) -> dict:
    """The learner's ``fn(model, x, t, y, w)`` at the exercise's w, at w = 0 and at w = −1."""
    calls = []
    with h.one_thread():
        model = tiny_conditional_unet(inputs["num_classes"], inputs["model_seed"])
        for w_ in _GUIDED_WS:
            x, t, y = inputs["x"].clone(), inputs["t"].clone(), inputs["y"].clone()
            with torch.no_grad():
                out = h.call(fn, model, x, t, y, inputs["w"] if w_ == "w" else w_)
            calls.append({"out": out, "x_after": x, "t_after": t, "y_after": y})
    return {"calls": calls}


def judge_guided_eps(inputs: dict, outputs: dict) -> None:
    r = h.Report("guided_eps")
    w, x, t, y = inputs["w"], inputs["x"], inputs["t"], inputs["y"]
    with h.one_thread(), torch.no_grad():
        model = tiny_conditional_unet(inputs["num_classes"], inputs["model_seed"])
        null = model.null_class
        eps_c = model(x, t, y)
        eps_u = model(x, t, torch.full_like(y, null))
        eps_0 = model(x, t, torch.zeros_like(y))
        ref = guided_eps(model, x, t, y, w)

    def read(k: int, w_: float) -> tuple[torch.Tensor, str]:
        __tracebackhide__ = True  # noqa: F841
        shown = f"guided_eps(model, x {h.fmt_shape(x.shape)}, t, y, w={w_:g})"
        c = outputs["calls"][k]
        out = h.as_tensor(r, h.value(r, c["out"]), shown)
        if not (torch.equal(c["x_after"], x) and torch.equal(c["t_after"], t) and torch.equal(c["y_after"], y)):
            r.fail("your function changed x, t or y in place; build new tensors instead.")
        h.check_shape_dtype(r, out, x.shape, None, shown)
        return out, shown

    mistakes = {
        f"w = {w:g} gave w·ε(x, y) + (1 − w)·ε(x, ∅): that mixes the two with weights w and 1 − w, so w = 0 "
        f"would be the unconditional model. Ho & Salimans' eq. 6 is ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅): w = 0 "
        f"is the plain conditional prediction.": w * eps_c + (1 - w) * eps_u,
        "the sign of w is swapped: (1 − w)·ε(x, y) + w·ε(x, ∅) pushes the sample *towards* the unconditional "
        "prediction. Use ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅).": (1 - w) * eps_c + w * eps_u,
        "the conditional and unconditional predictions are swapped: ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅), the "
        "label y in the first term and the null class ∅ in the second.": (1 + w) * eps_u - w * eps_c,
        f"the unconditional prediction used label 0 (T-shirt/top, a real class) or a zero vector: 'no label' "
        f"is the null class ∅ = model.null_class (here {null}), the learned extra row of the class "
        f"embedding: model(x, t, torch.full_like(y, model.null_class)).": (1 + w) * eps_c - w * eps_0,
        "this is the conditional prediction ε(x, y) alone: the guidance term −w·(ε(x, ∅) − ε(x, y)) is "
        "missing.": eps_c,
        "this is the unconditional prediction ε(x, ∅) alone: the label is never used.": eps_u,
    } if w not in (0, -1) else {}
    out, shown_w = read(0, w)
    h.diagnose(r, out, ref, mistakes, rtol=1e-4, atol=1e-5, what=shown_w)
    out0, shown0 = read(1, 0.0)
    h.diagnose(r, out0, eps_c, {"with w = 0 the guided prediction must be the conditional one, ε(x, y); yours "
                                "is the unconditional ε(x, ∅). Check the weights: (1 + w) on ε(x, y), −w on "
                                "ε(x, ∅).": eps_u}, rtol=1e-4, atol=1e-5, what=shown0)
    out_m1, shown_m1 = read(2, -1.0)
    h.diagnose(r, out_m1, eps_u, {"with w = −1 the guided prediction must be the unconditional one, ε(x, ∅); "
                                  "yours is ε(x, y). Check the weights: (1 + w) on ε(x, y), −w on ε(x, ∅).": eps_c},
               rtol=1e-4, atol=1e-5, what=shown_m1)
    r.ok(f"{shown_w}: (1 + w)·ε(x, y) − w·ε(x, ∅) with ∅ = model.null_class = {null}; "
         f"w = 0 gives ε(x, y) and w = −1 gives ε(x, ∅); matches course_utils.diffusion.guided_eps")


check_guided_eps = h.register(h.Check(
    "guided_eps", make_guided_eps, run_guided_eps, judge_guided_eps, reference=guided_eps,
    doc="Check ``fn(model, x, t, y, w)`` = (1 + w)·ε(x, y) − w·ε(x, ∅) (Ho & Salimans 2021, eq. 6).\n\n"
        "The model is :func:`tiny_conditional_unet` with ``num_classes`` classes (∅ = ``model.null_class``); "
        ":func:`course_utils.diffusion.guided_eps` is the reference. Also checks that w = 0 gives the "
        "conditional prediction ε(x, y) and w = −1 the unconditional one ε(x, ∅)."))


# ----------------------------------------------------------------------------------------------
# Exercise: a guided sampler  (DDIM, η = 0, with guided_eps at every step)
# ----------------------------------------------------------------------------------------------
def _reference_guided_sampler(model, diffusion: GaussianDiffusion, x_T: torch.Tensor, y, w: float,
                              num_steps: int) -> torch.Tensor:
    """The exercise's sampler: ``diffusion.ddim_sample_loop(model, x_T=x_T, num_steps=num_steps, y=y, w=w)``."""
    return diffusion.ddim_sample_loop(model, x_T=x_T, num_steps=num_steps, y=y, w=w, progress=False)


def make_guided_sampler(w: float = 2.0, y=3, num_steps: int = 10, T: int = 100, num_classes: int = 10,
                        batch: int = 3, size: int = 8, seed: int = 0) -> dict:
    y = torch.full((batch,), y, dtype=torch.long) if isinstance(y, int) else torch.as_tensor(y).long()
    return {"w": w, "y": y, "num_steps": num_steps, "T": T, "num_classes": num_classes, "model_seed": seed,
            "x_T": torch.randn(batch, 1, size, size, generator=h.gen(seed + 1))}


def _sampler_setup(inputs: dict):
    """The stand-in model and the linear schedule of T steps, rebuilt from the inputs."""
    return tiny_conditional_unet(inputs["num_classes"], inputs["model_seed"]), \
        GaussianDiffusion(linear_betas(inputs["T"]))


def run_guided_sampler(inputs: dict, fn) -> dict:
    """Two calls of ``fn(model, diffusion, x_T, y, w, num_steps)`` on the same x_T (DDIM adds no noise)."""
    with h.one_thread():
        model, diffusion = _sampler_setup(inputs)
        x_T, y = inputs["x_T"].clone(), inputs["y"].clone()
        args = (inputs["w"], inputs["num_steps"])
        with torch.no_grad():
            out = h.call(fn, model, diffusion, x_T, y, *args)
            again = h.call(fn, model, diffusion, inputs["x_T"].clone(), inputs["y"].clone(), *args)
    return {"out": out, "x_T_after": x_T, "y_after": y, "again": again}


def judge_guided_sampler(inputs: dict, outputs: dict) -> None:
    r = h.Report("guided sampler")
    w, y, num_steps, T, x_T = inputs["w"], inputs["y"], inputs["num_steps"], inputs["T"], inputs["x_T"]
    batch = x_T.shape[0]
    label = f"y={y.tolist()}" if y.unique().numel() > 1 else f"y={int(y[0])} for all {batch}"
    shown = f"sampler(model, diffusion (T={T}), x_T {h.fmt_shape(x_T.shape)}, {label}, w={w:g}, num_steps={num_steps})"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if not (torch.equal(outputs["x_T_after"], x_T) and torch.equal(outputs["y_after"], y)):
        r.fail("your sampler changed x_T or y in place; start with x = x_T.clone().")
    h.check_shape_dtype(r, out, x_T.shape, None, shown)
    with h.one_thread():
        model, diffusion = _sampler_setup(inputs)

        def ddim(**kw):
            return diffusion.ddim_sample_loop(model, x_T=x_T, progress=False, **{"num_steps": num_steps, "y": y,
                                                                                 "w": w, **kw})

        ref = ddim()
        steps = list(diffusion.ddim_sample_loop_progressive(model, x_T=x_T, num_steps=num_steps, y=y, w=w,
                                                            progress=False))
        mistakes = {
            "your samples are the unguided ones (w = 0): pass w on to guided_eps at every step.": ddim(w=0.0),
            "your samples ignore the label: they match the unconditional sampler (y = ∅). Pass y on to "
            "guided_eps at every step.": ddim(y=None, w=0.0),
            "you stopped one step early: the last DDIM step goes from t = 0 to the clean sample (t_prev = −1, "
            "where ᾱ = 1).": steps[-2].sample if len(steps) > 1 else None,
            f"your loop took every step of the schedule (T = {T}) instead of the {num_steps} steps of "
            f"diffusion.ddim_timesteps(num_steps).": ddim(num_steps=T) if num_steps != T else None,
            "your samples match the guided sampler with w of the opposite sign: check guided_eps's weights.":
                ddim(w=-w) if w != 0 else None,
        }
    h.same_again(r, out, outputs["again"], "two calls with the same x_T gave different samples: start from x = x_T "
                 "and use DDIM with η = 0 (diffusion.ddim_step(eps, x, t, t_prev), which adds no noise).",
                 rtol=1e-5, atol=1e-5)
    h.diagnose(r, out, ref, mistakes, rtol=1e-3, atol=1e-4, what=shown)
    r.ok(f"{shown}: matches diffusion.ddim_sample_loop(model, x_T=x_T, num_steps={num_steps}, y=y, w={w:g}) "
         f"after {len(steps)} DDIM steps")


check_guided_sampler = h.register(h.Check(
    "guided_sampler", make_guided_sampler, run_guided_sampler, judge_guided_sampler,
    reference=_reference_guided_sampler,
    doc="Check ``fn(model, diffusion, x_T, y, w, num_steps)`` → x_0 against the package's guided DDIM (η = 0).\n\n"
        "``y`` is an int (one class for the whole batch, passed on as a (B,) int64 tensor) or a (B,) tensor. "
        "The reference is ``diffusion.ddim_sample_loop(model, x_T=x_T, num_steps=num_steps, y=y, w=w)`` on "
        ":func:`tiny_conditional_unet` with a linear schedule of T steps."))
