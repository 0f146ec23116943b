"""Checks for the learners' exercises: their function against the package's, on seeded inputs.

Each ``check_*`` calls the learner's function on fixed, seeded inputs, compares the result with
``course_utils`` and prints — to **stdout only** — what is right (``✓ …``) and, when something is wrong,
what to look at (``✗ …``: "you used the standard deviation where the variance belongs", "off by one: t is
0-indexed", "data looks like [0, 1]: scale to [-1, 1]"). Then it raises ``AssertionError`` with the same
message. The same calls serve nbgrader's test cells and learners in Colab, where nbgrader does not run.

Two nbgrader traps shape this module:

* anything written to **stderr** during a test cell scores that cell 0 even when every assert passes,
  so warnings raised by the learner's code are caught and reported on stdout instead;
* a test cell whose last line evaluates to a number is read as **partial credit**, so every check
  returns ``None``.

Timesteps are 0-indexed as everywhere in the course: index ``t`` is the paper's step ``t + 1``.
"""
from __future__ import annotations

import contextlib
import io
import math
import warnings
from typing import Callable

import torch

from .diffusion import GaussianDiffusion
from .data import to_model_range
from .schedules import linear_betas as _linear_betas, make_betas

__all__ = [
    "check_linear_betas", "check_to_model_range", "check_data_range", "check_forward_step",
    "check_alphas_cumprod", "check_q_sample", "check_first_t_snr_below_one", "check_snr_answers",
    "check_monte_carlo", "reference_forward_step", "reference_to_model_range",
    "reference_first_t_snr_below_one",
]

OK, BAD = "✓", "✗"


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


# ----------------------------------------------------------------------------------------------
# Plumbing: quiet calls, reports, diagnoses
# ----------------------------------------------------------------------------------------------
class _Report:
    def __init__(self, name: str):
        self.name = name

    def ok(self, msg: str) -> None:
        print(f"{OK} {msg}")

    def note(self, msg: str) -> None:
        print(f"  note: {msg}")

    def fail(self, msg: str, cause: BaseException | None = None):
        print(f"{BAD} {self.name}: {msg}")
        raise AssertionError(f"{self.name}: {msg}") from cause


def _call(report: _Report, fn: Callable, *args, **kwargs):
    """Call the learner's function; warnings and stderr go to stdout, errors become clear failures."""
    if not callable(fn):
        report.fail(f"expected a function, got {type(fn).__name__}.")
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        try:
            out = fn(*args, **kwargs)
        except NotImplementedError as e:
            report.fail("still raises NotImplementedError: replace the `raise NotImplementedError()` "
                        "line with your code, run that cell, then run this one again.", e)
        except Exception as e:  # the learner's own error, explained
            hint = ""
            if isinstance(e, RuntimeError) and "must match the size" in str(e):
                hint = (" Hint: a per-step constant indexed by t has shape (B,); reshape it to (B, 1, 1, 1) "
                        "with extract(a, t, x.shape) before it meets a (B, C, H, W) batch.")
            report.fail(f"calling it raised {type(e).__name__}: {e}.{hint}", e)
    seen = set()
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.add(text)
            report.note(f"your code emitted a warning (shown here, not on stderr): {text}")
    if err.getvalue().strip():
        report.note(f"your code wrote to stderr: {err.getvalue().strip()[:300]}")
    return out


def _as_tensor(report: _Report, out, what: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        report.fail(f"{what} should be a torch.Tensor; got {type(out).__name__}. "
                    f"Build it with torch operations (torch.linspace, torch.cumprod, …).")
    return out


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if a.shape != b.shape:
        return False
    a64, b64 = a.detach().cpu().double(), b.detach().cpu().double()
    return bool(torch.isfinite(a64).all()) and torch.allclose(a64, b64, rtol=rtol, atol=atol)


def _diagnose(report: _Report, out: torch.Tensor, ref: torch.Tensor, mistakes: dict[str, torch.Tensor],
              rtol: float, atol: float, what: str) -> None:
    """Pass when ``out`` matches ``ref``; otherwise name the classic mistake it matches, or show where."""
    if _close(out, ref, rtol, atol):
        return
    for msg, cand in mistakes.items():
        if cand is not None and _close(out, cand, rtol, atol):
            report.fail(msg)
    if not torch.isfinite(out.detach()).all():
        report.fail(f"{what} contains NaN or inf; look for a square root of a negative number or a "
                    f"division by zero.")
    diff = (out.detach().cpu().double() - ref.detach().cpu().double()).abs()
    i = int(diff.flatten().argmax())
    idx = tuple(int(k) for k in torch.unravel_index(torch.tensor(i), diff.shape)) if diff.ndim else ()
    report.fail(f"{what} does not match the package: largest difference {float(diff.max()):.3g} at index "
                f"{idx} (yours {float(out.detach().cpu().double().flatten()[i]):.6g}, expected "
                f"{float(ref.double().flatten()[i]):.6g}). Re-read the formula in the markdown above.")


def _check_shape_dtype(report: _Report, out: torch.Tensor, shape, dtype, what: str, dtype_hint: str = "") -> None:
    if tuple(out.shape) != tuple(shape):
        report.fail(f"{what} should have shape {tuple(shape)}; got {tuple(out.shape)}.")
    if dtype is not None and out.dtype != dtype:
        report.fail(f"{what} should have dtype {dtype}; got {out.dtype}.{dtype_hint}")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(shape, seed: int) -> torch.Tensor:
    """Seeded stand-in for images in [-1, 1]."""
    return torch.rand(shape, generator=_gen(seed)) * 2 - 1


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


# ----------------------------------------------------------------------------------------------
# Exercise: linear_betas
# ----------------------------------------------------------------------------------------------
def check_linear_betas(fn: Callable, T: int = 10, beta_start: float | None = None,
                       beta_end: float | None = None) -> None:
    """Check ``fn(T[, beta_start, beta_end])`` against :func:`course_utils.schedules.linear_betas`."""
    r = _Report("linear_betas")
    kwargs = {} if beta_start is None else {"beta_start": beta_start, "beta_end": beta_end}
    ref = _linear_betas(T, **kwargs)
    shown = f"linear_betas({T}{''.join(f', {k}={v}' for k, v in kwargs.items())})"
    out = _as_tensor(r, _call(r, fn, T, **kwargs), shown)
    if out.ndim == 1 and out.shape[0] == T + 1:
        r.fail(f"{shown} has {T + 1} values; a schedule has exactly T = {T} (β_0 … β_{T - 1}).")
    if out.ndim == 1 and out.shape[0] == T - 1:
        r.fail(f"{shown} has {T - 1} values; a schedule has exactly T = {T}: both ends are included.")
    _check_shape_dtype(r, out, (T,), torch.float64, shown,
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
    _diagnose(r, out, ref, mistakes, rtol=1e-9, atol=1e-12, what=shown)
    r.ok(f"{shown}: shape ({T},), float64, β_0 = {start:.4g} … β_{T - 1} = {end:.4g}, "
         f"matches course_utils.schedules.linear_betas")


# ----------------------------------------------------------------------------------------------
# Exercise: to_model_range, and a range check for any batch
# ----------------------------------------------------------------------------------------------
def check_data_range(x: torch.Tensor, name: str = "x0") -> None:
    """Check that a batch of images is in [-1, 1] (the range the model and the forward process assume)."""
    r = _Report(name)
    x = _as_tensor(r, x, name)
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


def check_to_model_range(fn: Callable, shape=(4, 1, 16, 16), seed: int = 0) -> None:
    """Check ``fn(uint8 images) -> float32 in [-1, 1]`` against the package's scaling."""
    r = _Report("to_model_range")
    x = torch.randint(0, 256, shape, generator=_gen(seed), dtype=torch.uint8)
    x.view(-1)[0], x.view(-1)[-1] = 0, 255          # make sure both ends are present
    x_in = x.clone()
    out = _as_tensor(r, _call(r, fn, x_in), f"to_model_range(uint8 {_fmt_shape(shape)})")
    if not torch.equal(x_in, x):
        r.fail("your function changed its input in place; build a new tensor (x.float() / 127.5 - 1).")
    shown = f"to_model_range(uint8 {_fmt_shape(shape)})"
    _check_shape_dtype(r, out, shape, None, shown)
    if not out.is_floating_point():
        r.fail(f"{shown} has dtype {out.dtype}: convert with .float() before scaling (uint8 cannot hold "
               f"negative numbers).")
    _check_shape_dtype(r, out, shape, torch.float32, shown, " Use x.float() (float32).")
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
    _diagnose(r, out, ref, mistakes, rtol=1e-6, atol=1e-6, what=shown)
    r.ok(f"{shown}: float32 in [-1, 1], 0 → -1 and 255 → +1, matches the scaling of course_utils.data")


# ----------------------------------------------------------------------------------------------
# Exercise: forward_step  (q(x_t | x_{t-1}), eq. 2)
# ----------------------------------------------------------------------------------------------
def check_forward_step(fn: Callable, T: int = 10, t: int = 4, shape=(4, 1, 8, 8), seed: int = 0,
                       dtype: torch.dtype = torch.float32) -> None:
    """Check ``fn(x_prev, t, betas, noise)`` = √(1 − β_t)·x_prev + √β_t·noise with the package's β_t."""
    r = _Report("forward_step")
    betas = _linear_betas(T)
    x_prev = _images(shape, seed).to(dtype)
    noise = torch.randn(shape, generator=_gen(seed + 1)).to(dtype)
    args = (x_prev.clone(), t, betas.clone(), noise.clone())
    shown = f"forward_step(x_prev {_fmt_shape(shape)}, t={t}, betas (T={T}), noise)"
    out = _as_tensor(r, _call(r, fn, *args), shown)
    if not (torch.equal(args[0], x_prev) and torch.equal(args[3], noise)):
        r.fail("your function changed x_prev or noise in place; compute a new tensor instead.")
    _check_shape_dtype(r, out, shape, dtype, shown, " Keep the dtype of x_prev.")
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
    again = _call(r, fn, x_prev.clone(), t, betas.clone(), noise.clone())
    if isinstance(again, torch.Tensor) and not torch.equal(again, out):
        r.fail("two calls with the same arguments gave different results: use the `noise` argument "
               "rather than drawing new noise inside the function.")
    _diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-6, what=shown)
    r.ok(f"{shown}: shape {_fmt_shape(shape)}, {str(dtype).replace('torch.', '')}, "
         f"uses √(1 − β_{t}) = {math.sqrt(1 - float(betas[t])):.5f} and √β_{t} = {math.sqrt(float(betas[t])):.5f}")


# ----------------------------------------------------------------------------------------------
# Exercise: alphas_cumprod
# ----------------------------------------------------------------------------------------------
def check_alphas_cumprod(fn: Callable, T: int = 10, schedule: str = "linear") -> None:
    """Check ``fn(betas) -> ᾱ`` (float64, shape (T,)) against ``GaussianDiffusion(betas).alphas_cumprod``."""
    r = _Report("alphas_cumprod")
    betas = make_betas(schedule, T)
    shown = f"alphas_cumprod({schedule} betas, T={T})"
    out = _as_tensor(r, _call(r, fn, betas.clone()), shown)
    ref = GaussianDiffusion(betas).alphas_cumprod.double()
    alphas = 1 - betas
    if out.ndim == 1 and out.shape[0] == T - 1:
        r.fail(f"{shown} has {T - 1} values: did you start the product at β_1? Index 0 holds the paper's "
               f"first step, so ᾱ_0 = α_0 = 1 − β_0 and the product starts there.")
    if out.ndim == 1 and out.shape[0] == T + 1:
        r.fail(f"{shown} has {T + 1} values: drop the leading 1; ᾱ_0 = α_0 = 1 − β_0 is the first value.")
    _check_shape_dtype(r, out, (T,), torch.float64, shown,
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
    _diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-10, what=shown)
    r.ok(f"{shown}: shape ({T},), float64, ᾱ_0 = {float(out[0]):.6f} … ᾱ_{T - 1} = {float(out[-1]):.4g}, "
         f"matches GaussianDiffusion.alphas_cumprod")


# ----------------------------------------------------------------------------------------------
# Exercise: q_sample  (q(x_t | x_0), eq. 4)
# ----------------------------------------------------------------------------------------------
def check_q_sample(fn: Callable, T: int = 1000, schedule: str = "linear", shape=(4, 1, 8, 8),
                   seed: int = 0, t: list[int] | None = None) -> None:
    """Check ``fn(x0, t, alphas_cumprod, noise)`` against :meth:`GaussianDiffusion.q_sample`."""
    r = _Report("q_sample")
    d = GaussianDiffusion(make_betas(schedule, T))
    B = shape[0]
    if t is None:
        t = torch.randint(0, T, (B,), generator=_gen(seed + 2))
        t[0] = 0
        if B > 1:
            t[-1] = T - 1
    t = torch.as_tensor(t, dtype=torch.long)
    x0 = _images(shape, seed)
    noise = torch.randn(shape, generator=_gen(seed + 1))
    a_bar = d.alphas_cumprod
    shown = f"q_sample(x0 {_fmt_shape(shape)}, t={t.tolist()}, alphas_cumprod ({schedule}, T={T}), noise)"
    out = _as_tensor(r, _call(r, fn, x0.clone(), t.clone(), a_bar.clone(), noise.clone()), shown)
    _check_shape_dtype(r, out, shape, torch.float32, shown, " Keep the dtype of x0.")
    ref = d.q_sample(x0, t, noise=noise)
    view = (B,) + (1,) * (len(shape) - 1)

    def mix(a, signal=lambda a: a.sqrt(), noise_scale=lambda a: (1 - a).sqrt()):
        a = a.reshape(view)
        return signal(a) * x0 + noise_scale(a) * noise

    a_t = a_bar[t]
    mistakes = {
        "you used the variances where the standard deviations belong: x0 is scaled by ᾱ_t and the noise "
        "by 1 − ᾱ_t. Eq. (4) scales them by √ᾱ_t and √(1 − ᾱ_t).":
            mix(a_t, signal=lambda a: a, noise_scale=lambda a: 1 - a),
        "you used the variance where the standard deviation belongs: the noise is scaled by 1 − ᾱ_t, its "
        "variance; scale it by √(1 − ᾱ_t).": mix(a_t, noise_scale=lambda a: 1 - a),
        "x0 is scaled by ᾱ_t; the mean of q(x_t | x_0) is √ᾱ_t · x0.": mix(a_t, signal=lambda a: a),
        "off by one: t is 0-indexed, so use alphas_cumprod[t], not alphas_cumprod[t - 1].":
            mix(a_bar[t - 1]),
        "off by one: use alphas_cumprod[t], not alphas_cumprod[t + 1].": mix(a_bar[(t + 1).clamp(max=T - 1)]),
        "every image has its own t: gather one ᾱ per image with extract(alphas_cumprod, t, x0.shape) "
        "(shape (B, 1, 1, 1)); you used the same t for the whole batch.": mix(a_t[:1].expand(B)),
    }
    if len(shape) >= 2 and shape[-1] == B:
        last = a_t.reshape((1,) * (len(shape) - 1) + (B,))
        mistakes["alphas_cumprod[t] has shape (B,) and broadcast against the images' last axis instead of "
                 "the batch: reshape it to (B, 1, 1, 1) with extract(alphas_cumprod, t, x0.shape)."] = \
            last.sqrt() * x0 + (1 - last).sqrt() * noise
    again = _call(r, fn, x0.clone(), t.clone(), a_bar.clone(), noise.clone())
    if isinstance(again, torch.Tensor) and not torch.equal(again, out):
        r.fail("two calls with the same arguments gave different results: use the `noise` argument "
               "rather than drawing new noise inside the function.")
    _diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-5, what=shown)
    r.ok(f"{shown}: matches GaussianDiffusion.q_sample (√ᾱ_t · x0 + √(1 − ᾱ_t) · ε, one t per image)")


# ----------------------------------------------------------------------------------------------
# Exercise: the first t where the signal-to-noise ratio drops below 1
# ----------------------------------------------------------------------------------------------
def _as_index(r: _Report, value, shown: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np
            if isinstance(value, np.integer):
                return int(value)
        except ImportError:  # pragma: no cover
            pass
        r.fail(f"{shown} should be an int timestep (or None); got {value!r} of type {type(value).__name__}. "
               f"Convert with int(...).")
    return int(value)


def _snr_mistakes(ref: int | None, T: int) -> dict[int, str]:
    if ref is None:
        return {}
    return {
        ref + 1: "off by one: that is the paper's step number (1-indexed). Return the 0-indexed t "
                 "(paper step t + 1 is index t).",
        ref - 1: "off by one: at that t the SNR is still ≥ 1; return the first t where it is below 1.",
        0: "at t = 0 the SNR is huge (almost no noise yet): did you invert the ratio? SNR = ᾱ/(1 − ᾱ).",
    }


def check_first_t_snr_below_one(fn: Callable, T: int = 1000, schedule: str = "linear") -> None:
    """Check ``fn(alphas_cumprod) -> first 0-indexed t with ᾱ/(1 − ᾱ) < 1`` (None if never)."""
    r = _Report("first_t_snr_below_one")
    betas = make_betas(schedule, T)
    a_bar = GaussianDiffusion(betas).alphas_cumprod.double()
    shown = f"first_t_snr_below_one({schedule}, T={T})"
    got = _as_index(r, _call(r, fn, a_bar.clone()), shown)
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


def check_snr_answers(t_linear, t_cosine) -> None:
    """Check the two numbers of the SNR exercise (T = 1000, 0-indexed)."""
    r = _Report("SNR answers")
    for name, value, kind in (("t_linear", t_linear, "linear"), ("t_cosine", t_cosine, "cosine")):
        got = _as_index(r, value, name)
        ref = reference_first_t_snr_below_one(make_betas(kind, 1000))
        if got != ref:
            msg = _snr_mistakes(ref, 1000).get(got, "compute it with your function on the "
                                                     f"{kind} schedule's alphas_cumprod for T = 1000.")
            r.fail(f"{name} = {got!r} is not right: {msg}")
        r.ok(f"{name} = {got}: the {kind} schedule's SNR drops below 1 at paper step {got + 1} of 1000")


# ----------------------------------------------------------------------------------------------
# Exercise: Monte-Carlo — the iterative chain and the closed form agree in mean and variance
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _reference_helpers(fn: Callable, betas: torch.Tensor):
    """Temporarily bind forward_step, alphas_cumprod and q_sample in fn's globals to the package's.

    The Monte-Carlo exercise builds on the learner's earlier functions; grading it with the references
    keeps a mistake in an earlier exercise from costing points twice.
    """
    d = GaussianDiffusion(betas)
    g = getattr(fn, "__globals__", {})
    replacements = {
        "forward_step": reference_forward_step,
        "alphas_cumprod": lambda b: GaussianDiffusion(b).alphas_cumprod.double(),
        "q_sample": lambda x0, t, a_bar, noise: d.to(x0.device).q_sample(x0, t, noise=noise),
    }
    missing = object()
    saved = {k: g.get(k, missing) for k in replacements}
    g.update(replacements)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is missing:
                g.pop(k, None)
            else:
                g[k] = v


MC_KEYS = ("chain_mean", "chain_var", "closed_mean", "closed_var")


def check_monte_carlo(fn: Callable, T: int = 10, t: int = 4, shape=(1, 4, 4), n_samples: int = 4000,
                      seed: int = 0, use_reference_helpers: bool = True) -> None:
    """Check ``fn(x0, t, betas, n_samples, generator) -> dict`` of per-pixel moments against eq. (4).

    The chain's and the closed form's mean must be √ᾱ_t·x0 and their variance 1 − ᾱ_t, within five
    Monte-Carlo standard errors.
    """
    r = _Report("monte_carlo_moments")
    betas = _linear_betas(T)
    x0 = _images(shape, seed)
    shown = f"monte_carlo_moments(x0 {_fmt_shape(shape)}, t={t}, betas (T={T}), n_samples={n_samples})"
    ctx = _reference_helpers(fn, betas) if use_reference_helpers else contextlib.nullcontext()
    with ctx:
        out = _call(r, fn, x0.clone(), t, betas.clone(), n_samples, generator=_gen(seed + 7))
        again = _call(r, fn, x0.clone(), t, betas.clone(), n_samples, generator=_gen(seed + 7))
    if not isinstance(out, dict) or any(k not in out for k in MC_KEYS):
        r.fail(f"{shown} should return a dict with the keys {MC_KEYS}; got "
               f"{sorted(out) if isinstance(out, dict) else type(out).__name__}.")
    d = GaussianDiffusion(betas)
    mean, var = d.q_mean_variance(x0.unsqueeze(0), t)
    mean, var = mean[0].double(), float(var.flatten()[0])
    se_mean = math.sqrt(var / n_samples)
    se_var = var * math.sqrt(2 / (n_samples - 1))
    for k in MC_KEYS:
        v = _as_tensor(r, out[k], f"out[{k!r}]")
        if tuple(v.shape) != tuple(shape):
            r.fail(f"out[{k!r}] should have the shape of x0, {_fmt_shape(shape)} (one value per pixel, "
                   f"reduced over the samples with dim=0); got {_fmt_shape(v.shape)}.")
        if not isinstance(again[k], torch.Tensor) or not torch.equal(again[k], v):
            r.fail("two calls with the same generator gave different results: draw every random number "
                   "with it (torch.randn(..., generator=generator)).")
    # Theory at neighbouring steps, to name off-by-one chains.
    var_at = {s: 1 - float(d.alphas_cumprod[s]) if s >= 0 else 0.0 for s in (t - 1, t, t + 1) if s < T}
    for way in ("chain", "closed"):
        m, v = out[f"{way}_mean"].detach().cpu().double(), out[f"{way}_var"].detach().cpu().double()
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
    note = " (graded with the package's forward_step, alphas_cumprod and q_sample)" if use_reference_helpers else ""
    r.ok(f"{shown}: chain and closed form both have mean √ᾱ_{t}·x0 and variance 1 − ᾱ_{t} = {var:.5f} "
         f"within 5 standard errors{note}")
