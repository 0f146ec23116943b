"""Checks for lesson 02 (forward diffusion): schedules, the noising step, q(x_t | x_0), the SNR, Monte-Carlo.

Each exercise's check is three steps (see :mod:`course_utils.checks._harness`): ``make_<name>`` builds
seeded inputs, ``run_<name>`` calls the learner's function on them, ``judge_<name>`` compares with the
package and names the classic mistake; ``check_<name>`` runs all three.
"""
from __future__ import annotations

import math

import torch

from ..data import to_model_range
from ..diffusion import GaussianDiffusion, extract
from ..schedules import linear_betas as _linear_betas, make_betas
from . import _harness as h

__all__ = [
    "check_linear_betas",
    "check_to_model_range",
    "check_data_range",
    "check_forward_step",
    "check_alphas_cumprod",
    "check_q_sample",
    "check_first_t_snr_below_one",
    "check_snr_answers",
    "check_monte_carlo",
    "reference_forward_step",
    "reference_to_model_range",
    "reference_first_t_snr_below_one",
    "reference_monte_carlo_moments",
    "MC_KEYS",
]


# ----------------------------------------------------------------------------------------------
# References: the package's functions, under the exercise's signature
# ----------------------------------------------------------------------------------------------
def reference_forward_step(x_prev: torch.Tensor, t: int, betas: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One forward step x_{t-1} → x_t (eq. 2), t 0-indexed: :meth:`GaussianDiffusion.q_step`."""
    return GaussianDiffusion(betas).to(x_prev.device).q_step(x_prev, t, noise=noise)


def reference_to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels {0, …, 255} → float32 in [-1, 1]: :func:`course_utils.data.to_model_range`."""
    return to_model_range(images)


def reference_first_t_snr_below_one(betas: torch.Tensor) -> int | None:
    """First 0-indexed t with SNR(t) = ᾱ_t / (1 − ᾱ_t) < 1, or None, from :meth:`GaussianDiffusion.snr`."""
    d = GaussianDiffusion(betas)
    below = (d.snr(torch.arange(d.num_timesteps)) < 1).nonzero()
    return int(below[0]) if len(below) else None


def _reference_alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ (float64, shape (T,)) under the exercise's signature: ``GaussianDiffusion(betas).alphas_cumprod``."""
    return GaussianDiffusion(betas).alphas_cumprod.double()


def _need(ok: bool, msg: str) -> None:
    """Validate a check's own parameter (not the learner's answer): ``ValueError`` naming the fix."""
    if not ok:
        raise ValueError(msg)


def _timestep_in(t, T: int, name: str = "t") -> None:
    _need(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < T,
          f"{name} must be an int timestep in [0, T-1] = [0, {T - 1}] (0-indexed); got {t!r}.")


# ----------------------------------------------------------------------------------------------
# Exercise: linear_betas
# ----------------------------------------------------------------------------------------------
def make_linear_betas(T: int = 10, beta_start: float | None = None, beta_end: float | None = None) -> dict:
    _need(isinstance(T, int) and not isinstance(T, bool) and T >= 1,
          f"T (the number of diffusion steps) must be a positive int; got {T!r}.")
    kwargs = {} if beta_start is None else {"beta_start": beta_start, "beta_end": beta_end}
    return {"T": T, "kwargs": kwargs}


def run_linear_betas(inputs: dict, fn) -> dict:
    return {"out": h.call(fn, inputs["T"], **inputs["kwargs"])}


def judge_linear_betas(inputs: dict, outputs: dict) -> None:
    r = h.Report("linear_betas")
    T, kwargs = inputs["T"], inputs["kwargs"]
    ref = _linear_betas(T, **kwargs)
    shown = f"linear_betas({T}{''.join(f', {k}={v}' for k, v in kwargs.items())})"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if out.ndim == 1 and out.shape[0] == T + 1:
        r.fail(f"{shown} has {T + 1} values; a schedule has exactly T = {T} (β_0 … β_{T - 1}).")
    if out.ndim == 1 and out.shape[0] == T - 1:
        r.fail(f"{shown} has {T - 1} values; a schedule has exactly T = {T}: both ends are included.")
    h.check_shape_dtype(r, out, (T,), torch.float64, shown,
                        " Compute the schedule in float64 (dtype=torch.float64): ᾱ multiplies T factors "
                        "and float32 loses their small differences.")
    start = ref[0].item()
    end = ref[-1].item()
    mistakes = {
        f"the last β should be beta_end = {end}, but yours stops one step short: torch.linspace(start, "
        f"end, T) includes both ends (torch.arange does not).":
            torch.linspace(start, end, T + 1, dtype=torch.float64)[:-1],
        "your schedule runs backwards: β grows from beta_start (the paper's β_1) to beta_end (β_T).":
            ref.flip(0),
    }
    if kwargs:
        mistakes["you ignored the beta_start / beta_end arguments and used the defaults 1e-4 and 0.02."] = \
            _linear_betas(T)
    h.diagnose(r, out, ref, mistakes, rtol=1e-9, atol=1e-12, what=shown)
    r.ok(f"{shown}: shape ({T},), float64, β_0 = {start:.4g} … β_{T - 1} = {end:.4g}, "
         f"matches course_utils.schedules.linear_betas")


check_linear_betas = h.register(h.Check(
    "linear_betas", make_linear_betas, run_linear_betas, judge_linear_betas, reference=_linear_betas,
    blocks=("course_utils.schedules.linear_betas",),
    doc="Check ``fn(T[, beta_start, beta_end])`` against :func:`course_utils.schedules.linear_betas`."))


# ----------------------------------------------------------------------------------------------
# A range check for any batch (a check of data: the subject is the tensor itself)
# ----------------------------------------------------------------------------------------------
def make_data_range(name: str = "x0") -> dict:
    _need(isinstance(name, str), f"name (how the report calls the batch) must be a string; got {name!r}.")
    return {"name": name}


def run_data_range(inputs: dict, x, name: str | None = None) -> dict:
    # check_data_range(x, "x0") passes the name positionally: it arrives here, after the batch.
    return {"x": h.plain(x), "name": name}


def judge_data_range(inputs: dict, outputs: dict) -> None:
    name = outputs.get("name") or inputs["name"]
    r = h.Report(name)
    x = h.as_tensor(r, outputs["x"], name)
    if not x.is_floating_point():
        r.fail(f"{name} has dtype {x.dtype}: convert to float and scale to [-1, 1] (x / 127.5 - 1).")
    lo, hi = float(x.min()), float(x.max())
    if lo >= -1e-6 and hi <= 1 + 1e-6 and hi - lo > 0.25:
        r.fail(f"data looks like [0, 1]: scale to [-1, 1] with 2 * x - 1 (min {lo:.3f}, max {hi:.3f}). "
               f"The forward process mixes x0 with N(0, 1) noise, which is centred on 0.")
    if hi > 1.5 and lo >= 0:
        r.fail(f"data looks like raw pixels in [0, 255] (max {hi:.1f}): scale to [-1, 1] with x / 127.5 - 1.")
    if lo < -1 - 1e-5 or hi > 1 + 1e-5:
        r.fail(f"data should lie in [-1, 1]; got min {lo:.3f}, max {hi:.3f}.")
    r.ok(f"{name} is in [-1, 1] (min {lo:.3f}, max {hi:.3f})")


check_data_range = h.register(h.Check(
    "data_range", make_data_range, run_data_range, judge_data_range, reference=None,
    doc="Check that a batch of images ``x`` is in [-1, 1] (the range the model and the forward process "
        "assume): ``check_data_range(x, name='x0')``."))


# ----------------------------------------------------------------------------------------------
# Exercise: to_model_range
# ----------------------------------------------------------------------------------------------
_UINT8_WRAP = ("uint8 overflow: your arithmetic ran on the uint8 pixels before converting them, and uint8 "
               "wraps around outside 0 … 255 (2 · 200 gives 144, not 400; 100 − 128 gives 228, not −28). "
               "Convert with .float() first, then scale: x.float() / 127.5 - 1.")


def _wraps_around(x: torch.Tensor, out: torch.Tensor) -> bool:
    """True when ``out`` is a function of the pixel value that is not monotone: uint8 arithmetic wrapped.

    The right scaling and every named mistake (÷255, unscaled, centred, flipped) are monotone in the pixel
    value; ``x * 2`` or ``x - 128`` computed in uint8 jumps back where it passes 255 or 0.
    """
    if out.shape != x.shape or not torch.isfinite(out).all():
        return False
    xs, o = x.reshape(-1).long(), out.detach().reshape(-1).double()
    values = torch.unique(xs)
    if len(values) < 3:
        return False
    lo = torch.full((256,), math.inf, dtype=torch.float64).scatter_reduce(0, xs, o, "amin")
    hi = torch.full((256,), -math.inf, dtype=torch.float64).scatter_reduce(0, xs, o, "amax")
    if float((hi[values] - lo[values]).max()) > 1e-5:      # not a function of the pixel value
        return False
    steps = lo[values].diff()
    tol = 1e-6
    return bool((steps > tol).any() and (steps < -tol).any())


def make_to_model_range(shape=(4, 1, 16, 16), seed: int = 0) -> dict:
    x = torch.randint(0, 256, tuple(shape), generator=h.gen(seed), dtype=torch.uint8)
    x.view(-1)[0], x.view(-1)[-1] = 0, 255          # make sure both ends are present
    return {"shape": tuple(shape), "x": x}


def run_to_model_range(inputs: dict, fn) -> dict:
    x_in = inputs["x"].clone()
    out = h.call(fn, x_in)
    return {"out": out, "x_after": h.plain(x_in)}


def judge_to_model_range(inputs: dict, outputs: dict) -> None:
    r = h.Report("to_model_range")
    shape, x = inputs["shape"], inputs["x"]
    shown = f"to_model_range(uint8 {h.fmt_shape(shape)})"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if not torch.equal(outputs["x_after"], x):
        r.fail("your function changed its input in place; build a new tensor (x.float() / 127.5 - 1).")
    h.check_shape_dtype(r, out, shape, None, shown)
    if not out.is_floating_point():
        r.fail(f"{shown} has dtype {out.dtype}: convert with .float() before scaling (uint8 cannot hold "
               f"negative numbers).")
    h.check_shape_dtype(r, out, shape, torch.float32, shown, " Use x.float() (float32).")
    ref = reference_to_model_range(x)
    xf = x.float()
    mistakes = {
        "data looks like [0, 1]: you divided by 255. Scale to [-1, 1] instead: x / 127.5 - 1 "
        "(that is 2 · x/255 − 1).": xf / 255,
        "values are still in [0, 255]: scale them to [-1, 1] with x / 127.5 - 1.": xf,
        "data looks like [-0.5, 0.5]: you centred the pixels but forgot to double them: 2 · x/255 − 1.":
            xf / 255 - 0.5,
        "data looks like [-1, 1] flipped: 0 (black) should map to -1 and 255 (white) to +1.": -ref,
    }
    if not h.close(out, ref, rtol=1e-6, atol=1e-6) and _wraps_around(x, out):
        r.fail(_UINT8_WRAP)
    h.diagnose(r, out, ref, mistakes, rtol=1e-6, atol=1e-6, what=shown)
    r.ok(f"{shown}: float32 in [-1, 1], 0 → -1 and 255 → +1, matches the scaling of course_utils.data")


check_to_model_range = h.register(h.Check(
    "to_model_range", make_to_model_range, run_to_model_range, judge_to_model_range,
    reference=reference_to_model_range, blocks=("course_utils.data.to_model_range",),
    doc="Check ``fn(uint8 images) -> float32 in [-1, 1]`` against the package's scaling."))


# ----------------------------------------------------------------------------------------------
# Exercise: forward_step  (q(x_t | x_{t-1}), eq. 2)
# ----------------------------------------------------------------------------------------------
def make_forward_step(T: int = 10, t: int = 4, shape=(4, 1, 8, 8), seed: int = 0,
                      dtype: torch.dtype = torch.float32) -> dict:
    betas = _linear_betas(T)
    _timestep_in(t, T)
    _need(dtype in (torch.float32, torch.float64), f"dtype must be torch.float32 or torch.float64; got {dtype!r}.")
    return {"T": T, "t": t, "shape": tuple(shape), "dtype": dtype, "betas": betas,
            "x_prev": h.images(shape, seed).to(dtype),
            "noise": torch.randn(shape, generator=h.gen(seed + 1)).to(dtype)}


def run_forward_step(inputs: dict, fn) -> dict:
    x_prev, noise = inputs["x_prev"].clone(), inputs["noise"].clone()
    out = h.call(fn, x_prev, inputs["t"], inputs["betas"].clone(), noise)
    after = {"x_prev": h.plain(x_prev), "noise": h.plain(noise)}
    again = h.call(fn, inputs["x_prev"].clone(), inputs["t"], inputs["betas"].clone(), inputs["noise"].clone())
    return {"out": out, "after": after, "again": again}


def judge_forward_step(inputs: dict, outputs: dict) -> None:
    r = h.Report("forward_step")
    T, t, shape, dtype = inputs["T"], inputs["t"], inputs["shape"], inputs["dtype"]
    betas, x_prev, noise = inputs["betas"], inputs["x_prev"], inputs["noise"]
    shown = f"forward_step(x_prev {h.fmt_shape(shape)}, t={t}, betas (T={T}), noise)"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if not (torch.equal(outputs["after"]["x_prev"], x_prev) and torch.equal(outputs["after"]["noise"], noise)):
        r.fail("your function changed x_prev or noise in place; compute a new tensor instead.")
    h.check_shape_dtype(r, out, shape, dtype, shown, " Keep the dtype of x_prev.")
    ref = reference_forward_step(x_prev, t, betas, noise)
    b = betas.to(dtype)

    def step(beta, signal_scale=None, noise_scale=None):
        s = (1 - beta).sqrt() if signal_scale is None else signal_scale
        n = beta.sqrt() if noise_scale is None else noise_scale
        return s * x_prev + n * noise

    mistakes = {
        "you used the variance where the standard deviation belongs: the noise is multiplied by β_t, "
        "its variance. Scale it by its standard deviation √β_t (torch.sqrt(betas[t])).":
            step(b[t], noise_scale=b[t]),
        "the signal is scaled by 1 − β_t, a variance; scale it by √(1 − β_t) so the variance of x_t stays 1.":
            step(b[t], signal_scale=1 - b[t]),
        "both scales are variances (1 − β_t and β_t); use their square roots √(1 − β_t) and √β_t.":
            step(b[t], signal_scale=1 - b[t], noise_scale=b[t]),
        "off by one in β[t-1] indexing: t is 0-indexed (index t is the paper's step t + 1), so the step "
        "uses betas[t], not betas[t - 1].": step(b[t - 1]),
        "off by one: you used betas[t + 1]; t is 0-indexed, so the step uses betas[t].":
            step(b[t + 1]) if t + 1 < T else None,
        "the noise term is missing: add √β_t · noise.": (1 - b[t]).sqrt() * x_prev,
        "the signal is not scaled: x_t = √(1 − β_t)·x_{t-1} + √β_t·ε, not x_{t-1} + √β_t·ε.":
            step(b[t], signal_scale=torch.ones((), dtype=dtype)),
    }
    h.same_again(r, out, outputs["again"], "two calls with the same arguments gave different results: use the "
                 "`noise` argument rather than drawing new noise inside the function.")
    h.diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-6, what=shown)
    r.ok(f"{shown}: shape {h.fmt_shape(shape)}, {str(dtype).replace('torch.', '')}, "
         f"uses √(1 − β_{t}) = {math.sqrt(1 - float(betas[t])):.5f} and √β_{t} = {math.sqrt(float(betas[t])):.5f}")


check_forward_step = h.register(h.Check(
    "forward_step", make_forward_step, run_forward_step, judge_forward_step, reference=reference_forward_step,
    blocks=("course_utils.diffusion.GaussianDiffusion.q_step",),
    doc="Check ``fn(x_prev, t, betas, noise)`` = √(1 − β_t)·x_prev + √β_t·noise with the package's β_t."))


# ----------------------------------------------------------------------------------------------
# Exercise: alphas_cumprod  (the notebook's function is compute_alphas_cumprod; older ones say alphas_cumprod)
# ----------------------------------------------------------------------------------------------
def make_alphas_cumprod(T: int = 10, schedule: str = "linear") -> dict:
    return {"T": T, "schedule": schedule, "betas": make_betas(schedule, T)}


def run_alphas_cumprod(inputs: dict, fn) -> dict:
    return {"out": h.call(fn, inputs["betas"].clone())}


def judge_alphas_cumprod(inputs: dict, outputs: dict) -> None:
    r = h.Report("alphas_cumprod")
    T, schedule, betas = inputs["T"], inputs["schedule"], inputs["betas"]
    shown = f"alphas_cumprod({schedule} betas, T={T})"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    ref = _reference_alphas_cumprod(betas)
    alphas = 1 - betas
    if out.ndim == 1 and out.shape[0] == T - 1:
        r.fail(f"{shown} has {T - 1} values: did you start the product at β_1? Index 0 holds the paper's "
               f"first step, so ᾱ_0 = α_0 = 1 − β_0 and the product starts there.")
    if out.ndim == 1 and out.shape[0] == T + 1:
        r.fail(f"{shown} has {T + 1} values: drop the leading 1; ᾱ_0 = α_0 = 1 − β_0 is the first value.")
    h.check_shape_dtype(r, out, (T,), torch.float64, shown,
                        " Keep the float64 of betas: the product of many numbers close to 1 needs it.")
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ref[:-1]])
    mistakes = {
        "your alphas_cumprod is off by one step: your first value is 1, which is ᾱ before any noise "
        "(the package's alphas_cumprod_prev). ᾱ_0 = α_0 = 1 − β_0 already includes the first step: "
        "torch.cumprod(1 - betas, dim=0).": prev if T > 1 else None,
        "your alphas_cumprod is off by one step: did you start the product at β_1? ᾱ_t multiplies "
        "α_0 … α_t, starting at index 0.": torch.cat([torch.cumprod(alphas[1:], 0), alphas[-1:]]) if T > 1 else None,
        "you multiplied the βs; ᾱ_t multiplies the αs, α_s = 1 − β_s.": torch.cumprod(betas, 0),
        "that is 1 − ∏β; ᾱ_t = ∏ (1 − β_s), the product of the αs.": 1 - torch.cumprod(betas, 0),
        "you returned α_t = 1 − β_t; ᾱ_t is their running product (torch.cumprod).": alphas,
        "you returned √ᾱ_t; alphas_cumprod is ᾱ_t itself (the square roots come later, in q_sample).":
            ref.sqrt(),
        "ᾱ_t is a running product, not a sum: torch.cumprod, not torch.cumsum.": torch.cumsum(alphas, 0),
    }
    h.diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-10, what=shown)
    r.ok(f"{shown}: shape ({T},), float64, ᾱ_0 = {float(out[0]):.6f} … ᾱ_{T - 1} = {float(out[-1]):.4g}, "
         f"matches GaussianDiffusion.alphas_cumprod")


check_alphas_cumprod = h.register(h.Check(
    "alphas_cumprod", make_alphas_cumprod, run_alphas_cumprod, judge_alphas_cumprod,
    reference=_reference_alphas_cumprod,
    doc="Check ``fn(betas) -> ᾱ`` (float64, shape (T,)) against ``GaussianDiffusion(betas).alphas_cumprod``."))


# ----------------------------------------------------------------------------------------------
# Exercise: q_sample  (q(x_t | x_0), eq. 4 of Ho et al. 2020)
# ----------------------------------------------------------------------------------------------
_Q_OFF_BY_ONE_BELOW = "off by one: t is 0-indexed, so use alphas_cumprod[t], not alphas_cumprod[t - 1]."
_Q_OFF_BY_ONE_ABOVE = "off by one: use alphas_cumprod[t], not alphas_cumprod[t + 1]."


def make_q_sample(T: int = 1000, schedule: str = "linear", shape=(4, 1, 8, 8), seed: int = 0,
                  t: list[int] | None = None) -> dict:
    B = shape[0]
    if t is None:
        t = torch.randint(0, T, (B,), generator=h.gen(seed + 2))
        t[0] = 0
        if B > 1:
            t[-1] = T - 1
    return {"T": T, "schedule": schedule, "shape": tuple(shape), "t": torch.as_tensor(t, dtype=torch.long),
            "x0": h.images(shape, seed), "noise": torch.randn(shape, generator=h.gen(seed + 1)),
            "alphas_cumprod": GaussianDiffusion(make_betas(schedule, T)).alphas_cumprod}


def _probe_t(t: torch.Tensor, T: int) -> torch.Tensor:
    """The timesteps moved off both ends (into [1, T-2]): where t - 1 and t + 1 are valid indices too."""
    return t.clamp(1, T - 2)


def run_q_sample(inputs: dict, fn) -> dict:
    first, again = h.call_twice(fn, lambda: (inputs["x0"].clone(), inputs["t"].clone(),
                                             inputs["alphas_cumprod"].clone(), inputs["noise"].clone()))
    probe = None
    if first["error"] is not None and inputs["T"] >= 3:
        # Indexing that fails at t = 0 or t = T-1 (t - 1 through gather, t + 1 anywhere) is named by
        # what the same code gives away from the ends.
        probe = h.call(fn, inputs["x0"].clone(), _probe_t(inputs["t"], inputs["T"]),
                       inputs["alphas_cumprod"].clone(), inputs["noise"].clone())
    return {"out": first, "again": again, "probe": probe}


def _out_of_bounds(error: dict | None) -> bool:
    return bool(error) and error["type"] in ("IndexError", "RuntimeError") and (
        "out of bounds" in error["message"] or "index out of range" in error["message"])


def judge_q_sample(inputs: dict, outputs: dict) -> None:
    r = h.Report("q_sample")
    T, schedule, shape, t = inputs["T"], inputs["schedule"], inputs["shape"], inputs["t"]
    x0, noise = inputs["x0"], inputs["noise"]
    d = GaussianDiffusion(make_betas(schedule, T))
    B = shape[0]
    view = (B,) + (1,) * (len(shape) - 1)
    a_bar = d.alphas_cumprod

    def mix(a, signal=lambda a: a.sqrt(), noise_scale=lambda a: (1 - a).sqrt()):
        a = a.reshape(view)
        return signal(a) * x0 + noise_scale(a) * noise

    shown = f"q_sample(x0 {h.fmt_shape(shape)}, t={t.tolist()}, alphas_cumprod ({schedule}, T={T}), noise)"
    probe = outputs.get("probe")
    if _out_of_bounds(outputs["out"]["error"]) and probe and probe["error"] is None \
            and isinstance(probe["value"], torch.Tensor):
        tp = _probe_t(t, T)
        for msg, cand in ((_Q_OFF_BY_ONE_BELOW, mix(a_bar[tp - 1])), (_Q_OFF_BY_ONE_ABOVE, mix(a_bar[tp + 1]))):
            if h.close(probe["value"], cand, rtol=1e-5, atol=1e-5):
                e = outputs["out"]["error"]
                where = f" (at {e['where']})" if e.get("where") else ""
                r.note(f"calling it raised {e['type']}{where}: {e['message']}; with t moved off 0 and T-1 "
                       f"to {tp.tolist()} it ran, and matched this mistake:")
                r.fail(msg)
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    h.check_shape_dtype(r, out, shape, torch.float32, shown, " Keep the dtype of x0.")
    ref = d.q_sample(x0, t, noise=noise)
    a_t = a_bar[t]
    mistakes = {
        "you used the variances where the standard deviations belong: x0 is scaled by ᾱ_t and the noise "
        "by 1 − ᾱ_t. Eq. (4) scales them by √ᾱ_t and √(1 − ᾱ_t).":
            mix(a_t, signal=lambda a: a, noise_scale=lambda a: 1 - a),
        "you used the variance where the standard deviation belongs: the noise is scaled by 1 − ᾱ_t, its "
        "variance; scale it by √(1 − ᾱ_t).": mix(a_t, noise_scale=lambda a: 1 - a),
        "x0 is scaled by ᾱ_t; the mean of q(x_t | x_0) is √ᾱ_t · x0.": mix(a_t, signal=lambda a: a),
        _Q_OFF_BY_ONE_BELOW: mix(a_bar[t - 1]),
        _Q_OFF_BY_ONE_ABOVE: mix(a_bar[(t + 1).clamp(max=T - 1)]),
        "every image has its own t: gather one ᾱ per image with extract(alphas_cumprod, t, x0.shape) "
        "(shape (B, 1, 1, 1)); you used the same t for the whole batch.": mix(a_t[:1].expand(B)),
    }
    if len(shape) >= 2 and shape[-1] == B:
        last = a_t.reshape((1,) * (len(shape) - 1) + (B,))
        mistakes["alphas_cumprod[t] has shape (B,) and broadcast against the images' last axis instead of "
                 "the batch: reshape it to (B, 1, 1, 1) with extract(alphas_cumprod, t, x0.shape)."] = \
            last.sqrt() * x0 + (1 - last).sqrt() * noise
    if outputs["again"]["error"] is None and isinstance(outputs["again"]["value"], torch.Tensor):
        h.same_again(r, out, outputs["again"],
                     "two calls with the same arguments gave different results: use the `noise` argument "
                     "rather than drawing new noise inside the function.")
    h.diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-5, what=shown)
    r.ok(f"{shown}: matches GaussianDiffusion.q_sample (√ᾱ_t · x0 + √(1 − ᾱ_t) · ε, one t per image)")


def reference_q_sample(x0: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor,
                       noise: torch.Tensor) -> torch.Tensor:
    """q(x_t | x_0) under the exercise's signature: :meth:`GaussianDiffusion.q_sample` (eq. 4)."""
    a_t = extract(alphas_cumprod, t, x0.shape)
    return a_t.sqrt() * x0 + (1 - a_t).sqrt() * noise


check_q_sample = h.register(h.Check(
    "q_sample", make_q_sample, run_q_sample, judge_q_sample, reference=reference_q_sample,
    blocks=("course_utils.diffusion.GaussianDiffusion.q_sample",),
    doc="Check ``fn(x0, t, alphas_cumprod, noise)`` against :meth:`GaussianDiffusion.q_sample`."))


# ----------------------------------------------------------------------------------------------
# Exercise: the first t where the signal-to-noise ratio drops below 1
# ----------------------------------------------------------------------------------------------
def _snr_mistakes(ref: int | None, T: int) -> dict[int, str]:
    if ref is None:
        return {}
    return {
        ref + 1: "off by one: that is the paper's step number (1-indexed). Return the 0-indexed t "
                 "(paper step t + 1 is index t).",
        ref - 1: "off by one: at that t the SNR is still ≥ 1; return the first t where it is below 1.",
        0: "at t = 0 the SNR is huge (almost no noise yet): did you invert the ratio? SNR = ᾱ/(1 − ᾱ).",
    }


def _first_below_one(alphas_cumprod: torch.Tensor) -> int | None:
    """The SNR exercise's answer under its signature (ᾱ in, a Python int or None out)."""
    below = torch.nonzero(alphas_cumprod / (1 - alphas_cumprod) < 1)
    return int(below[0]) if len(below) else None


def make_first_t_snr_below_one(T: int = 1000, schedule: str = "linear") -> dict:
    betas = make_betas(schedule, T)
    return {"T": T, "schedule": schedule, "betas": betas,
            "alphas_cumprod": GaussianDiffusion(betas).alphas_cumprod.double()}


def run_first_t_snr_below_one(inputs: dict, fn) -> dict:
    return {"out": h.call(fn, inputs["alphas_cumprod"].clone())}


def judge_first_t_snr_below_one(inputs: dict, outputs: dict) -> None:
    r = h.Report("first_t_snr_below_one")
    T, schedule, betas, a_bar = inputs["T"], inputs["schedule"], inputs["betas"], inputs["alphas_cumprod"]
    shown = f"first_t_snr_below_one({schedule}, T={T})"
    got = h.as_index(r, h.value(r, outputs["out"]), shown)
    ref = reference_first_t_snr_below_one(betas)
    snr = a_bar / (1 - a_bar)
    if got == ref:
        if ref is None:
            r.ok(f"{shown} = None: with this schedule the signal still dominates at the last step "
                 f"(ᾱ_{T - 1} = {float(a_bar[-1]):.3f})")
        else:
            before = f"{float(snr[got - 1]):.4f}" if got > 0 else "∞"
            r.ok(f"{shown} = {got} (paper step {got + 1}): SNR goes from {before} to {float(snr[got]):.4f}")
        return
    if ref is None:
        r.fail(f"{shown} returned {got}, but the SNR never drops below 1 here (ᾱ_{T - 1} = "
               f"{float(a_bar[-1]):.3f} > 0.5): return None in that case.")
    if got is None:
        r.fail(f"{shown} returned None, but the SNR does drop below 1 (ᾱ_{T - 1} = {float(a_bar[-1]):.3g}).")
    msg = _snr_mistakes(ref, T).get(got)
    if msg:
        r.fail(f"{shown} returned {got}: {msg}")
    there = f"SNR there = {float(snr[got]):.4g}" if 0 <= got < T else f"not a timestep in [0, {T - 1}]"
    r.fail(f"{shown} returned {got} ({there}); look again for the first index where ᾱ_t / (1 − ᾱ_t) < 1.")


check_first_t_snr_below_one = h.register(h.Check(
    "first_t_snr_below_one", make_first_t_snr_below_one, run_first_t_snr_below_one,
    judge_first_t_snr_below_one,
    reference=_first_below_one,
    doc="Check ``fn(alphas_cumprod) -> first 0-indexed t with ᾱ/(1 − ᾱ) < 1`` (None if never)."))


# ----------------------------------------------------------------------------------------------
# The SNR exercise's two answers (the subject is two numbers, not a function)
# ----------------------------------------------------------------------------------------------
def make_snr_answers() -> dict:
    return {"T": 1000}


def run_snr_answers(inputs: dict, t_linear, t_cosine) -> dict:
    return {"t_linear": h.plain(t_linear), "t_cosine": h.plain(t_cosine)}


def judge_snr_answers(inputs: dict, outputs: dict) -> None:
    r = h.Report("SNR answers")
    T = inputs["T"]
    for name, kind in (("t_linear", "linear"), ("t_cosine", "cosine")):
        got = h.as_index(r, outputs[name], name)
        ref = reference_first_t_snr_below_one(make_betas(kind, T))
        if got != ref:
            msg = _snr_mistakes(ref, T).get(got, "compute it with your function on the "
                                                  f"{kind} schedule's alphas_cumprod for T = {T}.")
            r.fail(f"{name} = {got!r} is not right: {msg}")
        r.ok(f"{name} = {got}: the {kind} schedule's SNR drops below 1 at paper step {got + 1} of {T}")


check_snr_answers = h.register(h.Check(
    "snr_answers", make_snr_answers, run_snr_answers, judge_snr_answers, reference=None,
    doc="Check the two numbers of the SNR exercise (T = 1000, 0-indexed): "
        "``check_snr_answers(t_linear, t_cosine)``."))


# ----------------------------------------------------------------------------------------------
# Exercise: Monte-Carlo — the iterative chain and the closed form agree in mean and variance
# ----------------------------------------------------------------------------------------------
MC_KEYS = ("chain_mean", "chain_var", "closed_mean", "closed_var")


def _reference_helpers(betas: torch.Tensor) -> dict:
    """The package's forward_step, alphas_cumprod (under both of its names) and q_sample, to bind into the
    learner's namespace: a mistake in an earlier exercise must not cost points twice."""
    d = GaussianDiffusion(betas)
    return {
        "forward_step": reference_forward_step,
        "compute_alphas_cumprod": _reference_alphas_cumprod,
        "alphas_cumprod": _reference_alphas_cumprod,            # the exercise's name in older notebooks
        "q_sample": lambda x0, t, a_bar, noise: d.to(x0.device).q_sample(x0, t, noise=noise),
    }


def make_monte_carlo(T: int = 10, t: int = 4, shape=(1, 4, 4), n_samples: int = 4000, seed: int = 0,
                     use_reference_helpers: bool = True) -> dict:
    betas = _linear_betas(T)
    _timestep_in(t, T)
    _need(isinstance(n_samples, int) and n_samples >= 2,
          f"n_samples must be an int ≥ 2 (a variance needs two samples); got {n_samples!r}.")
    return {"T": T, "t": t, "shape": tuple(shape), "n_samples": n_samples, "seed": seed, "betas": betas,
            "x0": h.images(shape, seed), "use_reference_helpers": bool(use_reference_helpers)}


def run_monte_carlo(inputs: dict, fn) -> dict:
    def once():
        return h.call(fn, inputs["x0"].clone(), inputs["t"], inputs["betas"].clone(), inputs["n_samples"],
                      generator=h.gen(inputs["seed"] + 7))

    if inputs["use_reference_helpers"]:
        with h.bind_into(fn, _reference_helpers(inputs["betas"])):
            out, again = once(), once()
    else:
        out, again = once(), once()
    return {"out": out, "again": again}


def judge_monte_carlo(inputs: dict, outputs: dict) -> None:
    r = h.Report("monte_carlo_moments")
    T, t, shape, n_samples, betas, x0 = (inputs[k] for k in ("T", "t", "shape", "n_samples", "betas", "x0"))
    shown = f"monte_carlo_moments(x0 {h.fmt_shape(shape)}, t={t}, betas (T={T}), n_samples={n_samples})"
    out = h.value(r, outputs["out"])
    again = h.value(r, outputs["again"])
    if not isinstance(out, dict) or "__type__" in out or any(k not in out for k in MC_KEYS):
        got = sorted(out) if isinstance(out, dict) and "__type__" not in out else h.type_name(out)
        r.fail(f"{shown} should return a dict with the keys {MC_KEYS}; got {got}.")
    d = GaussianDiffusion(betas)
    mean, var = d.q_mean_variance(x0.unsqueeze(0), t)
    mean, var = mean[0].double(), float(var.flatten()[0])
    se_mean = math.sqrt(var / n_samples)
    se_var = var * math.sqrt(2 / (n_samples - 1))
    for k in MC_KEYS:
        v = h.as_tensor(r, out[k], f"out[{k!r}]")
        if tuple(v.shape) != tuple(shape):
            r.fail(f"out[{k!r}] should have the shape of x0, {h.fmt_shape(shape)} (one value per pixel, "
                   f"reduced over the samples with dim=0); got {h.fmt_shape(v.shape)}.")
        h.same_again(r, v, again.get(k) if isinstance(again, dict) else None,
                     "two calls with the same generator gave different results: draw every random number "
                     "with it (torch.randn(..., generator=generator)).")
    # Theory at neighbouring steps, to name off-by-one chains.
    var_at = {s: 1 - float(d.alphas_cumprod[s]) if s >= 0 else 0.0 for s in (t - 1, t, t + 1) if s < T}
    for way in ("chain", "closed"):
        m, v = out[f"{way}_mean"].double(), out[f"{way}_var"].double()
        vbar = float(v.mean())
        if float((m - mean).abs().max()) > 5 * se_mean + 1e-6 or float((v - var).abs().max()) > 5 * se_var + 1e-6:
            label = "the chain" if way == "chain" else "the closed form"
            if abs(vbar - var_at.get(t - 1, -1)) < 3 * se_var + 1e-6 and way == "chain":
                r.fail(f"{label} ran t steps, one too few: index t is the paper's step t + 1, so the chain "
                       f"runs t + 1 steps (for s in range(t + 1)). Variance {vbar:.5f}, expected {var:.5f}.")
            if t + 1 in var_at and abs(vbar - var_at[t + 1]) < 3 * se_var and way == "chain":
                r.fail(f"{label} ran t + 2 steps, one too many: for s in range(t + 1) runs steps 0 … t. "
                       f"Variance {vbar:.5f}, expected {var:.5f}.")
            if abs(vbar - math.sqrt(var)) < 5 * se_var + 0.05 * math.sqrt(var):
                r.fail(f"{way}_var looks like a standard deviation ({vbar:.4f} ≈ √(1 − ᾱ_t) = "
                       f"{math.sqrt(var):.4f}): you used the standard deviation where the variance belongs "
                       f"(x.var(dim=0), not x.std(dim=0)).")
            r.fail(f"{label}'s moments are off: mean within {float((m - mean).abs().max()) / se_mean:.1f} "
                   f"standard errors of √ᾱ_t·x0 (should be < 5), variance {vbar:.5f} vs 1 − ᾱ_t = {var:.5f}.")
    note = " (graded with the package's forward_step, alphas_cumprod and q_sample)" \
        if inputs["use_reference_helpers"] else ""
    r.ok(f"{shown}: chain and closed form both have mean √ᾱ_{t}·x0 and variance 1 − ᾱ_{t} = {var:.5f} "
         f"within 5 standard errors{note}")


def reference_monte_carlo_moments(x0: torch.Tensor, t: int, betas: torch.Tensor, n_samples: int,
                                  generator: torch.Generator | None = None) -> dict:
    """Per-pixel mean and variance of ``n_samples`` draws of x_t, by the loop of eq. (2) (t + 1 calls of
    :meth:`GaussianDiffusion.q_step`) and by the closed form of eq. (4) (:meth:`GaussianDiffusion.q_sample`),
    under the exercise's signature; x0 is (C, H, W), every value (C, H, W)."""
    d = GaussianDiffusion(betas).to(x0.device)
    shape = (n_samples, *x0.shape)
    x = x0.expand(shape)
    for s in range(t + 1):
        x = d.q_step(x, s, noise=torch.randn(shape, generator=generator, device=x0.device, dtype=x0.dtype))
    closed = d.q_sample(x0.expand(shape), torch.full((n_samples,), t, dtype=torch.long, device=x0.device),
                        noise=torch.randn(shape, generator=generator, device=x0.device, dtype=x0.dtype))
    return {"chain_mean": x.mean(dim=0), "chain_var": x.var(dim=0),
            "closed_mean": closed.mean(dim=0), "closed_var": closed.var(dim=0)}


check_monte_carlo = h.register(h.Check(
    "monte_carlo", make_monte_carlo, run_monte_carlo, judge_monte_carlo, reference=reference_monte_carlo_moments,
    doc="Check ``fn(x0, t, betas, n_samples, generator) -> dict`` of per-pixel moments against eq. (4).\n\n"
        "The chain's and the closed form's mean must be √ᾱ_t·x0 and their variance 1 − ᾱ_t, within five "
        "Monte-Carlo standard errors."))
