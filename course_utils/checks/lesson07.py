"""Checks for lesson 07 (the final assessment's pieces): the linear schedule, the CFG loss, the
class-conditional model, the guided DDIM sampler.

Each exercise's check is three steps (see :mod:`course_utils.checks._harness`): ``make_<name>`` builds
seeded inputs, ``run_<name>`` calls the learner's code on them (stand-in models are built there, from the
inputs) and keeps what it returned and what the models saw as plain data, ``judge_<name>`` recomputes the
package's answer and names the classic mistake; ``check_<name>`` runs all three.
"""
from __future__ import annotations

import copy
import math

import torch

from ..diffusion import GaussianDiffusion
from ..schedules import linear_betas
from . import _harness as h
from .lesson04 import LOSS_SIMPLE_ANSWERS

__all__ = ["check_linear_schedule", "check_cfg_loss", "check_conditional_model", "check_guided_sample",
           "check_assessment", "assessment_samples", "last_assessment", "ASSESSMENT_CHECKPOINT"]


# ----------------------------------------------------------------------------------------------
# Exercise: linear_schedule  (betas and ᾱ of Ho et al. 2020)
# ----------------------------------------------------------------------------------------------
def make_linear_schedule(T: int = 10) -> dict:
    return {"T": T}


def run_linear_schedule(inputs: dict, fn) -> dict:
    return {"out": h.call(fn, inputs["T"])}


def judge_linear_schedule(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    from . import check_alphas_cumprod, check_linear_betas   # the package's (lesson 02's) checks, at call time

    r = h.Report("linear_schedule")
    T = inputs["T"]
    out = h.value(r, outputs["out"])
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        r.fail(f"linear_schedule({T}) should return a pair (betas, alphas_cumprod); got "
               f"{h.type_name(out)}{f' of length {len(out)}' if isinstance(out, (tuple, list)) else ''}.")
    betas, alphas_cumprod = out
    check_linear_betas(lambda T_: betas, T=T)
    check_alphas_cumprod(lambda b: alphas_cumprod, T=T)


def _reference_linear_schedule(T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear schedule (float64) and its ᾱ_t = ∏_{s ≤ t} (1 − β_s)."""
    betas = linear_betas(T)
    return betas, torch.cumprod(1 - betas, 0)


check_linear_schedule = h.register(h.Check(
    "linear_schedule", make_linear_schedule, run_linear_schedule, judge_linear_schedule,
    reference=_reference_linear_schedule, blocks=("course_utils.schedules.linear_betas",),
    doc="""Check ``fn(T) -> (betas, alphas_cumprod)``: :func:`check_linear_betas` on the first,
    :func:`check_alphas_cumprod` on the second (both float64, shape (T,))."""))


# ----------------------------------------------------------------------------------------------
# Exercise: cfg_loss  (L_simple with classifier-free guidance's context mask)
# ----------------------------------------------------------------------------------------------
class _LossProbe(torch.nn.Module):
    """A stand-in ε-model that records every call: ε_θ(x_t, t, y) = scale·x_t + 0.001·t (one parameter)."""

    def __init__(self, null_class: int = 10, scale: float = 0.5):
        super().__init__()
        self.null_class = null_class
        self.scale = torch.nn.Parameter(torch.tensor(float(scale)))
        self.calls: list[tuple[torch.Tensor, object, object]] = []

    def forward(self, x, t=None, y=None):
        self.calls.append((x.detach().clone(), t if not isinstance(t, torch.Tensor) else t.detach().clone(),
                           y if not isinstance(y, torch.Tensor) else y.detach().clone()))
        tt = torch.as_tensor(t, dtype=torch.float32).reshape(-1, *([1] * (x.ndim - 1))) if t is not None else 0.0
        return self.scale * x + 0.001 * tt


def make_cfg_loss(p: float = 0.1, T: int = 1000, batch: int = 256, calls: int = 20, seed: int = 0) -> dict:
    return {"p": p, "T": T, "batch": batch, "calls": calls, "seed": seed, "null_class": 10, "scale": 0.5,
            "x0": [h.images((batch, 1, 8, 8), seed + 10 * i) for i in range(calls)],
            "y": [torch.randint(0, 10, (batch,), generator=h.gen(seed + 10 * i + 1)) for i in range(calls)],
            "x0_again": h.images((8, 1, 8, 8), seed + 8),
            "y_again": torch.randint(0, 10, (8,), generator=h.gen(seed + 9))}


def run_cfg_loss(inputs: dict, fn) -> dict:
    d = GaussianDiffusion(linear_betas(inputs["T"]))
    model = _LossProbe(inputs["null_class"], inputs["scale"])
    rounds = []
    for i in range(inputs["calls"]):
        model.calls.clear()
        out, loss = h.call_keep(fn, model, d, inputs["x0"][i].clone(), inputs["y"][i].clone(),
                                h.gen(inputs["seed"] + 10 * i + 2))
        rounds.append({"out": out, "requires_grad": bool(isinstance(loss, torch.Tensor) and loss.requires_grad),
                       "calls": h.plain(list(model.calls))})
        if out["error"] is not None:
            break
    again = [h.call(fn, model, d, inputs["x0_again"].clone(), inputs["y_again"].clone(),
                    h.gen(inputs["seed"] + 7)) for _ in range(2)]
    return {"rounds": rounds, "again": again}


def judge_cfg_loss(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("cfg_loss")
    p, T, batch, calls, null_class = inputs["p"], inputs["T"], inputs["batch"], inputs["calls"], inputs["null_class"]
    d = GaussianDiffusion(linear_betas(T))
    dropped, ts = 0, []
    shown = f"cfg_loss(model, diffusion (T={T}), x0 ({batch}, 1, 8, 8), y, generator)"
    for i, rnd in enumerate(outputs["rounds"]):
        x0, y = inputs["x0"][i], inputs["y"][i]
        loss = h.value(r, rnd["out"])
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            r.fail(f"{shown} should return a scalar tensor (a 0-d loss); got "
                   f"{h.type_name(loss)}{'' if not isinstance(loss, torch.Tensor) else ' of shape ' + str(tuple(loss.shape))}.")
        if i == 0 and not rnd["requires_grad"]:
            r.fail("the loss carries no gradient: compute it from the model's output with torch operations "
                   "(no .item(), no torch.no_grad()).")
        if len(rnd["calls"]) != 1:
            r.fail(f"{shown} called the model {len(rnd['calls'])} times; L_simple needs exactly one call, "
                   f"model(x_t, t, y_masked).")
        xt, t, ym = rnd["calls"][0]
        if ym is None:
            r.fail("the model was called without labels: pass the (context-masked) labels, model(x_t, t, y).")
        if not isinstance(t, torch.Tensor) or t.shape != (batch,) or t.is_floating_point():
            r.fail(f"t should be an int64 tensor of shape (B,) = ({batch},), one timestep per image; got "
                   f"{tuple(t.shape) if isinstance(t, torch.Tensor) else h.type_name(t)}.")
        if int(t.min()) < 0 or int(t.max()) > T - 1:
            r.fail(f"t must lie in [0, T-1] = [0, {T - 1}] (0-indexed); got values from {int(t.min())} to "
                   f"{int(t.max())}. torch.randint(0, T, (B,)) draws them.")
        ts.append(t)
        try:
            ym = torch.as_tensor(ym)
        except (TypeError, ValueError, RuntimeError):
            r.fail(f"the labels passed to the model should have shape ({batch},); got {h.type_name(ym)}.")
        if ym.shape != (batch,):
            r.fail(f"the labels passed to the model should have shape ({batch},); got {tuple(ym.shape)}.")
        is_null = ym == null_class
        if bool((~is_null & (ym != y)).any()):
            bad = ym[~is_null & (ym != y)]
            if bool(((bad == 0) | (bad == -1)).all()):
                r.fail("dropped labels became 0 or -1; the context mask replaces a label by the model's null "
                       "class, model.null_class (label 0 is a real class, a T-shirt).")
            r.fail("some labels the model received are neither the given label nor model.null_class: drop a "
                   "label to model.null_class and keep the others exactly as given.")
        dropped += int(is_null.sum())
        # recover the noise from x_t and x0 and recompute the loss
        a = d.alphas_cumprod[t.long()].double().reshape(-1, 1, 1, 1)
        eps = (xt.double() - a.sqrt() * x0.double()) / (1 - a).sqrt()
        if i == 0:
            if abs(float(eps.std()) - 1) > 0.1 or abs(float(torch.corrcoef(torch.stack(
                    [eps.flatten(), x0.double().flatten()]))[0, 1])) > 0.1:
                r.fail("x_t is not √ᾱ_t·x0 + √(1 − ᾱ_t)·ε with ε ~ N(0, I) and ᾱ_t = "
                       "diffusion.alphas_cumprod[t] (eq. 4): check q_sample's square roots and the index t.")
            pred = torch.tensor(inputs["scale"]).double() * xt.double() + 0.001 * t.double().reshape(-1, 1, 1, 1)
            want = ((pred - eps) ** 2).mean()
            got = float(loss)
            if not math.isclose(got, float(want), rel_tol=1e-3, abs_tol=1e-6):
                alt = {"the mean squared error against x0; L_simple compares the prediction with the noise ε":
                       ((pred - x0.double()) ** 2).mean(),
                       "a sum over pixels; L_simple is the mean over the batch and the pixels (F.mse_loss)":
                       ((pred - eps) ** 2).sum(),
                       "the mean absolute error; L_simple is the mean squared error": (pred - eps).abs().mean()}
                for msg, v in alt.items():
                    if math.isclose(got, float(v), rel_tol=1e-3):
                        r.fail(f"your loss is {msg}.")
                r.fail(f"the loss {got:.6g} is not mean((ε_θ(x_t, t, y) − ε)²) = {float(want):.6g} for the noise "
                       f"ε you used in x_t.")
    n = calls * batch
    sd = math.sqrt(n * p * (1 - p))
    if abs(dropped - n * p) > 4.5 * sd:
        hint = ""
        if dropped == 0:
            hint = " No label was dropped: apply the context mask (replace each label by model.null_class with probability p)."
        elif abs(dropped - n * (1 - p)) <= 4.5 * sd:
            hint = " You keep labels with probability p and drop the rest: drop where torch.rand(B) < p."
        r.fail(f"{dropped} of {n} labels ({dropped / n:.1%}) became the null class; the context mask drops "
               f"each label with probability p = {p} (expected {n * p:.0f} ± {4.5 * sd:.0f}).{hint}")
    t_all = torch.cat(ts)
    if int(t_all.min()) > T // 20 or int(t_all.max()) < T - 1 - T // 20:
        r.fail(f"the timesteps drawn over {n} images span only [{int(t_all.min())}, {int(t_all.max())}]; draw "
               f"t uniformly from all of {{0, …, {T - 1}}}: torch.randint(0, T, (B,)).")
    l1, l2 = (h.value(r, o) for o in outputs["again"])
    h.same_again(r, l1, l2, "two calls with identically seeded generators gave different losses: draw t, ε and the "
                 "mask with generator=generator (torch.randint(..., generator=generator), torch.randn(..., "
                 "generator=generator), torch.rand(..., generator=generator)).",
                 convert=lambda v: float(torch.as_tensor(v)))
    r.ok(f"{shown}: mean((ε_θ − ε)²) with x_t from eq. 4, t uniform in [0, {T - 1}], {dropped / n:.1%} of the "
         f"labels → the null class (p = {p}), reproducible with the generator")


def _reference_cfg_loss(model, diffusion, x0, y, generator=None) -> torch.Tensor:
    """L_simple with the context mask at p = 0.1: :func:`models.drop_labels`, then :meth:`loss_simple`."""
    from ..models import drop_labels

    return diffusion.loss_simple(model, x0, y=drop_labels(y, 0.1, model.null_class, generator),
                                 generator=generator)


check_cfg_loss = h.register(h.Check(
    "cfg_loss", make_cfg_loss, run_cfg_loss, judge_cfg_loss, reference=_reference_cfg_loss,
    blocks=LOSS_SIMPLE_ANSWERS,
    doc="""Check ``fn(model, diffusion, x0, y, generator) -> scalar``: L_simple (Ho et al. 2020, eq. 14) with
    classifier-free guidance's context mask (each label → ``model.null_class`` with probability ``p``).

    A recording stand-in model sees the learner's x_t, t and labels; from x_t and x0 the check recovers
    the noise ε the learner drew and compares the returned loss with mean((ε_θ − ε)²). Over
    ``calls × batch`` labels the share replaced by the null class must be p within 4.5 binomial
    standard deviations, and the kept labels must be the given ones.
    """))


# ----------------------------------------------------------------------------------------------
# Exercise: build_model  (the assessment's class-conditional U-Net)
# ----------------------------------------------------------------------------------------------
def _conditional_copy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy whose all-zero parameters (zero-initialised output layers) get small seeded random values."""
    m = copy.deepcopy(model).cpu().eval()
    g = h.gen(seed)
    with torch.no_grad():
        for prm in m.parameters():
            if prm.is_floating_point() and not bool(prm.abs().sum()):
                prm.copy_(0.05 * torch.randn(prm.shape, generator=g))
    return m


def make_conditional_model(max_parameters: int = 600_000, image_size: int = 16, num_classes: int = 10,
                           seed: int = 0) -> dict:
    B = 4
    return {"max_parameters": max_parameters, "image_size": image_size, "num_classes": num_classes, "seed": seed,
            "x": torch.randn(B, 1, image_size, image_size, generator=h.gen(seed + 1)),
            "t": torch.tensor([0, 250, 500, 999])[:B], "labels": torch.arange(B),
            "other_labels": (torch.arange(B) + 5) % num_classes}


def run_conditional_model(inputs: dict, subject) -> dict:
    """``subject`` is the model, or a zero-argument callable that builds it (``build_model``)."""
    from ..models import UNetConfig, count_parameters

    fresh = None
    if isinstance(subject, torch.nn.Module) or not callable(subject):
        built, model = {"value": None, "error": None, "notes": []}, subject
    else:
        built, model = h.call_keep(subject)
        if built["error"] is None:
            again, model2 = h.call_keep(subject)
            fresh = again["error"] is None and model2 is not model
    res: dict = {"built": built, "type": type(model).__name__, "fresh": fresh,
                 "is_module": built["error"] is None and isinstance(model, torch.nn.Module)}
    if not res["is_module"]:
        return res
    null = getattr(model, "null_class", None)
    res.update(null_class=h.plain(null), has_config=isinstance(getattr(model, "config", None), UNetConfig),
               parameters=count_parameters(model))
    if isinstance(null, bool) or not isinstance(null, int):
        return res
    m = _conditional_copy(model, inputs["seed"])
    x, t, B = inputs["x"], inputs["t"], inputs["x"].shape[0]
    with torch.no_grad():
        res["out"] = h.call(m, x.clone(), t.clone(), inputs["labels"].clone())
        res["other"] = h.call(m, x.clone(), t.clone(), inputs["other_labels"].clone())
        res["nulls"] = h.call(m, x.clone(), t.clone(), torch.full((B,), null))
    return res


def _same(a, b) -> bool:
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape \
        and torch.allclose(a, b)


def judge_conditional_model(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("build_model")
    h.value(r, outputs["built"])
    if not outputs["is_module"]:
        r.fail(f"build_model() should return a torch.nn.Module (a course_utils UNet); got {outputs['type']}.")
    if outputs.get("fresh") is False:
        r.fail("build_model() must return a new model on every call (build it inside the function; do not "
               "return one model made outside it).")
    null = outputs["null_class"]
    if isinstance(null, bool) or not isinstance(null, int):
        r.fail("the model is not class-conditional: it has no int null_class. Build "
               "UNet(UNetConfig(channels=(32, 64), num_classes=10)); its null_class is 10 (the label ∅).")
    num_classes, max_parameters = inputs["num_classes"], inputs["max_parameters"]
    if null < num_classes:
        r.fail(f"null_class = {null} is one of the {num_classes} real classes; it must be a label of its own "
               f"(num_classes={num_classes} gives null_class = {num_classes}).")
    if not outputs["has_config"]:
        r.fail("the model has no UNetConfig `config`, so save_checkpoint cannot store it: build it from "
               "course_utils.models.UNet(UNetConfig(...)).")
    n = outputs["parameters"]
    if n > max_parameters:
        r.fail(f"the model has {n:,} parameters, more than the budget of {max_parameters:,}: CPU training would "
               f"not fit the assessment's ≈ 15-minute CPU budget. Use narrower channels, e.g. (32, 64).")
    x = inputs["x"]
    out = h.value(r, outputs["out"])
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
        r.fail(f"model(x {h.fmt_shape(x.shape)}, t, y) should return ε with the input's shape; got "
               f"{tuple(out.shape) if isinstance(out, torch.Tensor) else h.type_name(out)}.")
    other, nulls = h.value(r, outputs["other"]), h.value(r, outputs["nulls"])
    if _same(out, other) or _same(out, nulls):
        r.fail("changing the label (or giving the null class) does not change the output: the model ignores y.")
    r.ok(f"the model is class-conditional (null_class = {null}), maps {h.fmt_shape(x.shape)} to "
         f"{h.fmt_shape(out.shape)}, its output depends on the label, {n:,} parameters ≤ {max_parameters:,}")


def _reference_build_model() -> torch.nn.Module:
    """The assessment's model: ``UNet(UNetConfig(channels=(32, 64), num_classes=10))`` (null_class 10)."""
    from ..models import UNet, UNetConfig

    return UNet(UNetConfig(channels=(32, 64), num_classes=10))


check_conditional_model = h.register(h.Check(
    "conditional_model", make_conditional_model, run_conditional_model, judge_conditional_model,
    reference=_reference_build_model,
    doc="""Check the assessment's model — given as the model itself or as ``build_model``, a zero-argument
    function that builds it (then an unanswered ``build_model`` gets the usual ✗ message): a course
    ``UNet`` with an int ``null_class`` (class-conditional), output shape = input shape, outputs that change
    with the label, and at most ``max_parameters`` parameters.

    Zero-initialised layers (the U-Net's ``conv_out``) make an untrained model output 0 for every label,
    so the label test runs on a copy whose all-zero parameters get small random values.
    """))


# ----------------------------------------------------------------------------------------------
# Exercise: guided_sample  (DDIM with classifier-free guidance)
# ----------------------------------------------------------------------------------------------
def _guided_model(seed: int) -> torch.nn.Module:
    from ..models import UNet, UNetConfig

    torch.manual_seed(seed)
    return _conditional_copy(UNet(UNetConfig(channels=(8, 16), num_classes=10)), seed)


def make_guided_sample(w: float = 2.0, num_steps: int = 8, batch: int = 6, T: int = 100, seed: int = 0) -> dict:
    return {"w": w, "num_steps": num_steps, "batch": batch, "T": T, "seed": seed,
            "labels": torch.randint(0, 10, (batch,), generator=h.gen(seed + 1))}


def run_guided_sample(inputs: dict, fn) -> dict:
    model = _guided_model(inputs["seed"])          # seeds the global RNG, as before the split
    d = GaussianDiffusion(linear_betas(inputs["T"]))
    return {"out": h.call(fn, model, d, inputs["labels"].clone(), inputs["w"], inputs["num_steps"],
                          h.gen(inputs["seed"] + 2))}


def _reference_cfg_ddim(model, diffusion, labels, w, num_steps, generator, image_size, combine, null_label=None):
    """DDIM (η = 0) with a custom guidance ``combine(eps_cond, eps_null, w)``, drawing x_T as the package does
    (only to *name* a wrong answer; the right one is ``diffusion.ddim_sample_loop``)."""
    null_label = model.null_class if null_label is None else null_label
    B = labels.shape[0]
    x = torch.randn((B, 1, image_size, image_size), generator=generator)
    ts = diffusion.ddim_timesteps(num_steps)
    with torch.no_grad():
        for t_int, t_prev in zip(ts, ts[1:] + [-1]):
            t = torch.full((B,), t_int, dtype=torch.long)
            ec = model(x, t, labels)
            en = model(x, t, torch.full_like(labels, null_label))
            x = diffusion.ddim_step(combine(ec, en, w), x, t, torch.full((B,), t_prev, dtype=torch.long)).sample
    return x


def judge_guided_sample(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("guided_sample")
    w, num_steps, batch, T, seed, labels = (inputs[k] for k in ("w", "num_steps", "batch", "T", "seed", "labels"))
    with torch.random.fork_rng(devices=[]):
        model = _guided_model(seed)
    d = GaussianDiffusion(linear_betas(T))
    shown = f"guided_sample(model, diffusion (T={T}), labels {labels.tolist()}, w={w}, num_steps={num_steps}, generator)"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    h.check_shape_dtype(r, out, (batch, 1, 16, 16), None, shown)
    ref = d.ddim_sample_loop(model, (batch, 1, 16, 16), num_steps=num_steps, y=labels, w=w,
                             generator=h.gen(seed + 2), progress=False)

    def run(combine, null_label=None):
        return _reference_cfg_ddim(model, d, labels, w, num_steps, h.gen(seed + 2), 16, combine, null_label)

    cfg = lambda c, u, w_: (1 + w_) * c - w_ * u                                  # noqa: E731

    mistakes = {}
    if not h.close(out, ref, 1e-4, 1e-4):                 # name the mistake (runs only on a wrong answer)
        mistakes.update({
            "the sign of w is swapped: ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅) moves away from the unconditional "
            "prediction, towards the class.": run(lambda c, u, w_: (1 - w_) * c + w_ * u),
            "you mixed ε̂ = w·ε(x, y) + (1 − w)·ε(x, ∅); the guided prediction is (1 + w)·ε(x, y) − w·ε(x, ∅), "
            "so that w = 0 is the plain conditional model.": run(lambda c, u, w_: w_ * c + (1 - w_) * u),
            "no guidance: you used ε(x, y) alone; combine it with the null-class prediction, "
            "(1 + w)·ε(x, y) − w·ε(x, ∅).": run(lambda c, u, w_: c),
        })
        if w != 0:
            mistakes["the unconditional prediction used label 0 (a real class, T-shirt/top); ∅ is the model's null "
                     "class: model(x, t, torch.full_like(labels, model.null_class))."] = run(cfg, null_label=0)
    h.diagnose(r, out, ref, mistakes, rtol=1e-4, atol=1e-4, what=shown)
    r.ok(f"{shown}: matches diffusion.ddim_sample_loop(..., y=labels, w={w}) (DDIM, η = 0, "
         f"ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅))")


def _reference_guided_sample(model, diffusion, labels, w=2.0, num_steps=20, generator=None) -> torch.Tensor:
    """Guided DDIM (η = 0) under the exercise's signature: :meth:`GaussianDiffusion.ddim_sample_loop`."""
    return diffusion.ddim_sample_loop(model, (labels.shape[0], 1, 16, 16), num_steps=num_steps, y=labels, w=w,
                                      generator=generator, progress=False)


check_guided_sample = h.register(h.Check(
    "guided_sample", make_guided_sample, run_guided_sample, judge_guided_sample,
    reference=_reference_guided_sample,
    blocks=("course_utils.diffusion.GaussianDiffusion.ddim_sample_loop",
            "course_utils.diffusion.GaussianDiffusion.ddim_sample_loop_progressive"),
    doc="""Check ``fn(model, diffusion, labels, w, num_steps, generator)`` (16 px images) against the package's
    ``diffusion.ddim_sample_loop(model, shape, num_steps=num_steps, y=labels, w=w, generator=…)`` — DDIM
    (η = 0) with ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅) — on a small random conditional U-Net, same seed.
    """))


# ----------------------------------------------------------------------------------------------
# The assessment: the shipped classifier must recognise the learner's samples as their classes
# ----------------------------------------------------------------------------------------------
ASSESSMENT_CHECKPOINT = "assessment_model.pt"
_LAST: dict = {}


def assessment_samples() -> torch.Tensor | None:
    """The images the last :func:`check_assessment` drew in this process, (100, 1, 16, 16) class by class."""
    return _LAST.get("samples")


def last_assessment():
    """The :class:`course_utils.assessment.AssessmentResult` the last :func:`check_assessment` judged here."""
    return _LAST.get("result")


def make_assessment(per_class: int = 10, num_steps: int = 20, seed: int = 2024, checkpoint: str | None = None,
                    threshold: float | None = None) -> dict:
    """The assessment's settings; the checkpoint and the pass mark default to the environment variables
    ``COURSE_ASSESSMENT_CHECKPOINT`` (else ``assessment_model.pt``) and ``COURSE_ASSESSMENT_THRESHOLD``
    (else 0.9), read here — on the grader's side when grading."""
    import math
    import os

    for name, v in (("per_class", per_class), ("num_steps", num_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int; got {v!r}.")
    if threshold is None:
        threshold = float(os.environ.get("COURSE_ASSESSMENT_THRESHOLD", "0.9"))
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1 \
            or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a fraction in [0, 1] (0.9 = 90 % recognised); got {threshold!r}.")
    checkpoint = checkpoint or os.environ.get("COURSE_ASSESSMENT_CHECKPOINT", ASSESSMENT_CHECKPOINT)
    return {"checkpoint": str(checkpoint), "per_class": per_class, "num_steps": num_steps, "seed": int(seed),
            "threshold": float(threshold), "labels": torch.arange(10).repeat_interleave(per_class)}


def run_assessment(inputs: dict, sampler, w) -> dict:
    """Load the checkpoint, then draw the samples with the learner's sampler and guidance weight ``w``."""
    from ..checkpoints import load_checkpoint
    from ..utils import get_device

    device = get_device("auto")
    loaded = h.call_keep(load_checkpoint, inputs["checkpoint"], device)
    res: dict = {"loaded": loaded[0], "w": h.plain(w)}
    if loaded[0]["error"] is not None:
        return res
    model, diffusion, meta = loaded[1]
    res["null_class"] = h.plain(getattr(model, "null_class", None))
    res["steps"] = h.plain(meta.get("steps", meta.get("train_config", {}).get("steps")) if isinstance(meta, dict)
                           else None)
    null = res["null_class"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or isinstance(null, bool) or not isinstance(null, int):
        return res
    labels = inputs["labels"].to(device)
    generator = torch.Generator(device=device).manual_seed(inputs["seed"])
    model.eval()
    res["samples"] = h.call(sampler, model, diffusion, labels, w=float(w), num_steps=inputs["num_steps"],
                            generator=generator)
    if isinstance(res["samples"]["value"], torch.Tensor):
        _LAST["samples"] = res["samples"]["value"]
    return res


def judge_assessment(inputs: dict, outputs: dict) -> None:
    import math
    import os

    from ..assessment import AssessmentResult
    from ..data import FASHION_MNIST_CLASSES
    from ..metrics import class_agreement_per_class

    r = h.Report("assessment")
    loaded = outputs["loaded"]
    if loaded["error"] is not None:
        e = loaded["error"]
        r.fail(f"the checkpoint {inputs['checkpoint']!r} could not be loaded ({e['type']}: {e['message'][:300]}). "
               "Run the training cell (section 6) first: it saves assessment_model.pt beside this notebook.")
    null = outputs.get("null_class")
    if isinstance(null, bool) or not isinstance(null, int):
        r.fail("the model is unconditional (it has no int null_class), so it cannot be asked for a class; the "
               "assessment needs a class-conditional model, e.g. UNet(UNetConfig(channels=(32, 64), num_classes=10)).")
    w = outputs["w"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not -1 <= w <= 20:
        r.fail(f"W should be a guidance weight, a float between -1 and 20; got {w!r}.")
    x = h.as_tensor(r, h.value(r, outputs["samples"], "guided_sample"), "guided_sample(...)")
    labels = inputs["labels"]
    n = labels.shape[0]
    if tuple(x.shape) != (n, 1, 16, 16):
        r.fail(f"guided_sample must return {n} grey 16×16 images, shape ({n}, 1, 16, 16); got {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        r.fail("the samples contain NaN or inf.")
    x = x.float().clamp(-1, 1)
    per = class_agreement_per_class(x, labels)
    agreement = sum(per.values()) / len(per)
    result = AssessmentResult(agreement=agreement, per_class=per, passed=agreement >= inputs["threshold"],
                              threshold=inputs["threshold"], seconds=0.0, samples=n, w=float(w),
                              seed=inputs["seed"], num_steps=inputs["num_steps"], images=x)
    _LAST["result"] = result
    print(f"checkpoint {os.path.basename(inputs['checkpoint'])}: {outputs.get('steps')} training steps; {n} samples, w = {w}, "
          f"DDIM {inputs['num_steps']} steps, seed {inputs['seed']}\n")
    print(result.table(FASHION_MNIST_CLASSES))
    if not result.passed:
        r.fail(f"the classifier recognised {agreement:.1%} of your samples as their class; the pass mark is "
               f"{inputs['threshold']:.0%}. Train longer (MODE = 'full'), or try another W.")
    r.ok(f"the shipped classifier recognised {agreement:.1%} of your {n} samples (pass mark "
         f"{inputs['threshold']:.0%})")


check_assessment = h.register(h.Check(
    "assessment", make_assessment, run_assessment, judge_assessment, reference=None, grading_seed=False,
    blocks=("course_utils.diffusion.GaussianDiffusion.ddim_sample_loop",
            "course_utils.diffusion.GaussianDiffusion.ddim_sample_loop_progressive"),
    doc="""The assessment: ``check_assessment(guided_sample, W)`` loads ``assessment_model.pt`` (or
    ``$COURSE_ASSESSMENT_CHECKPOINT``), draws ``per_class`` samples of each class with ``guided_sample`` and
    guidance weight ``W`` from a generator seeded with ``seed``, and passes when the shipped FashionMNIST
    classifier recognises at least the pass mark (``$COURSE_ASSESSMENT_THRESHOLD``, default 90 %) as the
    class asked for. The same checkpoint, sampler, W and seed give the same verdict.
    """))
