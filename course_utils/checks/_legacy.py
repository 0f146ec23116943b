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

from ..diffusion import GaussianDiffusion
from ..data import to_model_range
from ..schedules import linear_betas as _linear_betas, make_betas

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
    "check_posterior_variance",
    "check_posterior_mean_coefs",
    "check_q_posterior",
    "check_predict_x0_from_eps",
    "check_posterior_mean_from_eps",
    "check_gaussian_kl",
    "check_complete_the_square",
    "check_sinusoidal_embedding",
    "check_sinusoidal_embedding_rejects_odd_dim",
    "check_sinusoidal_embedding_neighbours",
    "check_add_time_embedding",
    "check_res_block",
    "check_rearrange_pool",
    "reference_add_time_embedding",
    "reference_rearrange_pool",
    "reference_small_unet",
    "check_down_block",
    "check_up_block",
    "check_small_unet",
    "check_count_parameters",
    "check_loss_simple",
    "check_train_step",
    "check_p_sample_step",
    "check_sample_loop",
    "reference_loss_simple",
    "reference_p_sample_step",
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


# ==============================================================================================
# Lesson 01 — U-Net recap: down block, up block, a small U-Net, parameter count
# ==============================================================================================
def reference_small_unet(in_channels: int = 1, channels: tuple[int, int] = (32, 64)) -> "torch.nn.Module":
    """Lesson 01's two-level U-Net, assembled from the package's :class:`~course_utils.models.DownBlock`
    and :class:`~course_utils.models.UpBlock` with the attribute names the exercise asks for.

    ``conv_in`` (B, c1, H, W) → ``down1`` (B, c1, H/2, W/2) → ``down2`` (B, c2, H/4, W/4) →
    ``up1`` (with the skip from ``down1``) (B, c1, H/2, W/2) → ``up2`` (with the skip from ``conv_in``)
    (B, c1, H, W) → ``conv_out`` 1x1 → (B, in_channels, H, W). H and W must be multiples of 4.
    """
    from torch import nn

    from ..models import DownBlock, UpBlock

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


def _build(r: _Report, cls, *args, what: str):
    """Construct the learner's module, quietly; it must be a torch.nn.Module."""
    m = _call(r, cls, *args)
    if not isinstance(m, torch.nn.Module):
        r.fail(f"{what} should build a torch.nn.Module (class … (nn.Module) with super().__init__()); got "
               f"{type(m).__name__}.")
    return m


def _same_layout(mine: torch.nn.Module, ref: torch.nn.Module) -> bool:
    """True when both modules have the same parameter/buffer names and shapes (weights can be copied)."""
    a, b = mine.state_dict(), ref.state_dict()
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)


def _copy_weights_from(ref: torch.nn.Module, mine: torch.nn.Module) -> None:
    with torch.no_grad():
        mine.load_state_dict(ref.state_dict())


def _structure(r: _Report, block: torch.nn.Module, what: str) -> None:
    """A conv → GroupNorm → GELU block contains those three layers (GELU as a module or F.gelu)."""
    from torch import nn

    kinds = {type(m) for m in block.modules()}
    if nn.Conv2d not in kinds:
        r.fail(f"{what} has no nn.Conv2d: the block starts with a 3x3 convolution (padding=1).")
    if nn.GroupNorm not in kinds:
        extra = " (BatchNorm depends on the batch; GroupNorm normalises each image on its own)" \
            if kinds & {nn.BatchNorm2d, nn.InstanceNorm2d, nn.LayerNorm} else ""
        r.fail(f"{what} has no nn.GroupNorm: conv → GroupNorm → GELU{extra}.")


def _layer_order(block: torch.nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the Conv2d / GroupNorm / GELU modules in the order a forward pass calls them."""
    from torch import nn

    order, handles = [], []
    for m in block.modules():
        for kind, name in ((nn.Conv2d, "conv"), (nn.GroupNorm, "norm"), (nn.GELU, "gelu")):
            if type(m) is kind:
                handles.append(m.register_forward_hook(lambda *_a, n=name: order.append(n)))
    try:
        with torch.no_grad():
            block(x)
    finally:
        for h in handles:
            h.remove()
    return order


def _in_train_and_eval(block: torch.nn.Module, fn):
    was = block.training
    try:
        block.eval()
        return fn()
    finally:
        block.train(was)


def check_down_block(cls: Callable, in_ch: int = 8, out_ch: int = 16,
                     sizes=((2, 16, 16), (3, 8, 12)), seed: int = 0) -> None:
    """Check a learner's ``DownBlock(in_ch, out_ch)``: (B, in_ch, H, W) → (B, out_ch, H/2, W/2), built from
    conv3x3 → GroupNorm → GELU and a halving; when its parameters are laid out like the package's
    :class:`~course_utils.models.DownBlock` (``conv`` = Sequential(conv, norm, GELU), ``down`` =
    ``Downsample``), the reference's weights are copied in and the outputs must agree.
    """
    from ..models import DownBlock as RefDown

    r = _Report("DownBlock")
    what = f"DownBlock({in_ch}, {out_ch})"
    torch.manual_seed(seed)
    block = _build(r, cls, in_ch, out_ch, what=what)
    _structure(r, block, what)
    for B, H, W in sizes:
        x = _images((B, in_ch, H, W), seed + H + W)
        out = _as_tensor(r, _call(r, lambda: _in_train_and_eval(block, lambda: block(x))),
                         f"{what}(x {_fmt_shape(x.shape)})")
        want = (B, out_ch, H // 2, W // 2)
        got = tuple(out.shape)
        if got[2:] == (H, W):
            r.fail(f"{what} on {_fmt_shape(x.shape)} kept the resolution {H}x{W}: after conv → GroupNorm → "
                   f"GELU, halve it (Downsample(out_ch), nn.MaxPool2d(2) or a stride-2 conv).")
        if len(got) == 4 and got[2:] == (H // 4, W // 4):
            r.fail(f"{what} on {_fmt_shape(x.shape)} returned {H // 4}x{W // 4}: it halves twice; halve once.")
        if len(got) == 4 and got[1] != out_ch and got[2:] == want[2:]:
            r.fail(f"{what} returned {got[1]} channels; the block maps in_ch={in_ch} to out_ch={out_ch} "
                   f"channels.")
        if got != want:
            r.fail(f"{what}(x {_fmt_shape(x.shape)}) should have shape {_fmt_shape(want)}; got "
                   f"{_fmt_shape(got)}. Derive every size from x (x.shape), never from a fixed image size.")
    order = _call(r, _layer_order, block, _images((2, in_ch, 8, 8), seed))
    if "norm" in order and "gelu" in order and order.index("gelu") < order.index("norm"):
        r.fail(f"{what} calls GELU before GroupNorm; the order is conv → GroupNorm → GELU.")
    if "norm" in order and "conv" in order and order.index("norm") < order.index("conv"):
        r.fail(f"{what} normalises before the convolution; the order is conv → GroupNorm → GELU.")
    torch.manual_seed(seed + 1)
    ref = RefDown(in_ch, out_ch)
    if _same_layout(block, ref):
        _copy_weights_from(ref, block)
        x = _images((2, in_ch, 8, 8), seed + 99)
        with torch.no_grad():
            mine = _in_train_and_eval(block, lambda: block(x))
            want = ref(x)
            conv, norm = ref.conv[0], ref.conv[1]
            act_first = ref.down(norm(torch.nn.functional.gelu(conv(x))))
            relu = ref.down(torch.relu(norm(conv(x))))
            no_act = ref.down(norm(conv(x)))
        _diagnose(r, mine, want, {
            "GELU comes before GroupNorm in your block; the order is conv → GroupNorm → GELU.": act_first,
            "that is ReLU; the block uses GELU (nn.GELU()).": relu,
            "the activation is missing: conv → GroupNorm → GELU.": no_act,
        }, rtol=1e-4, atol=1e-5, what=f"{what} with the reference's weights")
        r.ok(f"{what}: with the package's weights copied in, the output matches course_utils.models.DownBlock")
    else:
        r.note("your block's parameters are named or shaped differently from course_utils.models.DownBlock "
               "(conv = Sequential(Conv2d, GroupNorm, GELU), down = Downsample(out_ch)), so its numbers are "
               "not compared; shapes and layers are.")
    sizes_txt = ", ".join(f"{H}x{W}" for _, H, W in sizes)
    r.ok(f"{what}: conv → GroupNorm → GELU, then half the resolution, at {sizes_txt} px")


def check_up_block(cls: Callable, in_ch: int = 16, skip_ch: int = 8, out_ch: int = 8,
                   sizes=((2, 4, 4), (3, 4, 6)), seed: int = 0) -> None:
    """Check a learner's ``UpBlock(in_ch, skip_ch, out_ch)`` called as ``block(x, skip)``: (B, in_ch, H, W)
    and (B, skip_ch, 2H, 2W) → (B, out_ch, 2H, 2W); gradients must reach both x and the skip; with the
    package's :class:`~course_utils.models.UpBlock` layout, the outputs must agree with copied weights.
    """
    from ..models import UpBlock as RefUp

    r = _Report("UpBlock")
    what = f"UpBlock({in_ch}, {skip_ch}, {out_ch})"
    torch.manual_seed(seed)
    block = _build(r, cls, in_ch, skip_ch, out_ch, what=what)
    _structure(r, block, what)
    for B, H, W in sizes:
        x = _images((B, in_ch, H, W), seed + H).requires_grad_(True)
        skip = _images((B, skip_ch, 2 * H, 2 * W), seed + W + 7).requires_grad_(True)
        shown = f"{what}(x {_fmt_shape(x.shape)}, skip {_fmt_shape(skip.shape)})"
        out = _as_tensor(r, _call(r, block, x, skip), shown)
        want = (B, out_ch, 2 * H, 2 * W)
        if tuple(out.shape) != want:
            hint = ""
            if out.ndim == 4 and tuple(out.shape[2:]) == (H, W):
                hint = " The resolution did not double: upsample x first (Upsample(in_ch) or nn.Upsample(scale_factor=2))."
            r.fail(f"{shown} should have shape {_fmt_shape(want)}; got {_fmt_shape(out.shape)}.{hint}")
        weights = torch.randn(out.shape, generator=_gen(seed + 5))
        (out * weights).sum().backward()
        if skip.grad is None or float(skip.grad.abs().sum()) == 0:
            r.fail(f"{shown}: no gradient reaches the skip connection, so the block ignores it. Concatenate "
                   f"it with the upsampled x on the channel axis, torch.cat([h, skip], dim=1), before the conv.")
        if x.grad is None or float(x.grad.abs().sum()) == 0:
            r.fail(f"{shown}: no gradient reaches x, so the block ignores its main input.")
    r.ok(f"{what}: doubles the resolution and gradients reach both x and the skip")
    torch.manual_seed(seed + 1)
    ref = RefUp(in_ch, skip_ch, out_ch)
    if _same_layout(block, ref):
        _copy_weights_from(ref, block)
        x = _images((2, in_ch, 4, 4), seed + 98)
        skip = _images((2, skip_ch, 8, 8), seed + 97)
        with torch.no_grad():
            mine = block(x, skip)
            want = ref(x, skip)
            h = ref.up(x)
            swapped = None
            if in_ch == skip_ch:
                swapped = ref.conv(torch.cat([skip, h], dim=1))
        _diagnose(r, mine, want, {
            "you concatenated [skip, h]; the reference puts the upsampled input first: torch.cat([h, skip], "
            "dim=1), so the conv's first in_ch input channels see h.": swapped,
        }, rtol=1e-4, atol=1e-5, what=f"{what} with the reference's weights")
        r.ok(f"{what}: with the package's weights copied in, the output matches course_utils.models.UpBlock")
    else:
        r.note("your block's parameters are laid out differently from course_utils.models.UpBlock (up = "
               "Upsample(in_ch), conv = Sequential(Conv2d(in_ch + skip_ch, out_ch, 3, padding=1), GroupNorm, "
               "GELU)), so its numbers are not compared; shapes and gradients are.")


def check_small_unet(cls: Callable, in_channels: int = 1, channels=(16, 32),
                     sizes=((2, 16, 16), (1, 8, 12), (3, 28, 28)), seed: int = 0) -> None:
    """Check a learner's ``SmallUNet(in_channels, channels)``: output shape = input shape at several
    resolutions and batch sizes, two up blocks that really use their skips (gradients), and, when its
    layout matches :func:`reference_small_unet`, the same outputs with copied weights.
    """
    from ..models import count_parameters

    r = _Report("SmallUNet")
    channels = tuple(channels)
    what = f"SmallUNet(in_channels={in_channels}, channels={channels})"
    torch.manual_seed(seed)
    model = _build(r, lambda: cls(in_channels=in_channels, channels=channels), what=what)
    for B, H, W in sizes:
        x = _images((B, in_channels, H, W), seed + H * W).requires_grad_(True)
        calls = []

        def grab(module, args):
            if len(args) >= 2 and isinstance(args[1], torch.Tensor):
                args[1].retain_grad()
                calls.append(args[1])

        handles = [m.register_forward_pre_hook(grab) for m in model.modules() if m is not model]
        try:
            out = _as_tensor(r, _call(r, model, x), f"{what}(x {_fmt_shape(x.shape)})")
        finally:
            for h in handles:
                h.remove()
        if tuple(out.shape) != tuple(x.shape):
            r.fail(f"{what}(x {_fmt_shape(x.shape)}) should return the input's shape; got {_fmt_shape(out.shape)}. "
                   f"Work out each size from x (never a fixed 16 or 28).")
        (out * torch.randn(out.shape, generator=_gen(seed + 3))).sum().backward()
        if x.grad is None or float(x.grad.abs().sum()) == 0:
            r.fail(f"{what}: the output does not depend on the input image.")
        if len(calls) < 2:
            r.fail(f"{what}: found {len(calls)} call(s) of a block with a skip argument; the U-Net has two, "
                   f"up1(h2, h1) and up2(u1, h0), each given the encoder features of its resolution.")
        for s in calls:
            if s.grad is None or float(s.grad.abs().sum()) == 0:
                r.fail(f"{what}: a skip connection {_fmt_shape(s.shape)} gets no gradient: it is not used.")
        if tuple(calls[-1].shape[2:]) != (H, W):
            r.fail(f"{what}: the last up block's skip has resolution {tuple(calls[-1].shape[2:])}; it should be the "
                   f"full-resolution features h0 = conv_in(x), {H}x{W}.")
    sizes_txt = ", ".join(f"{B}x{in_channels}x{H}x{W}" for B, H, W in sizes)
    r.ok(f"{what}: output shape = input shape for {sizes_txt}; both skips receive gradients")
    torch.manual_seed(seed + 1)
    ref = reference_small_unet(in_channels, channels)
    if _same_layout(model, ref):
        _copy_weights_from(ref, model)
        x = _images((2, in_channels, 8, 8), seed + 96)
        with torch.no_grad():
            mine, want = model(x), ref(x)
        if not _close(mine, want, 1e-4, 1e-5):
            r.fail(f"{what}: with the reference's weights copied in, the output differs from the reference U-Net "
                   f"(largest difference {float((mine - want).abs().max()):.3g}). Check the wiring: h0 = conv_in(x), "
                   f"h1 = down1(h0), h2 = down2(h1), up1(h2, h1), up2(that, h0), conv_out.")
        r.ok(f"{what}: with the reference's weights copied in, the output matches; "
             f"{count_parameters(model):,} parameters")
    else:
        r.note("your U-Net's parameters are laid out differently from the reference (conv_in, down1, down2, "
               "up1, up2, conv_out), so its numbers are not compared; shapes and skips are.")


def check_count_parameters(fn: Callable) -> None:
    """Check ``fn(model) -> int`` against :func:`course_utils.models.count_parameters` on models with
    frozen and shared parameters."""
    from torch import nn

    from ..models import count_parameters

    r = _Report("count_parameters")
    torch.manual_seed(0)
    frozen = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    frozen[0].requires_grad_(False)
    tied = nn.Sequential(nn.Linear(5, 5), nn.GELU())
    tied.append(tied[0])                                   # the same Linear twice: counted once
    models = {
        "nn.Linear(3, 4)": nn.Linear(3, 4),
        "a conv block": nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.GELU()),
        "the reference SmallUNet(1, (16, 32))": reference_small_unet(1, (16, 32)),
        "a model whose first layer is frozen": frozen,
        "a model that uses one layer twice": tied,
    }
    for name, model in models.items():
        got = _call(r, fn, model)
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            got = int(got)
        if isinstance(got, bool) or not isinstance(got, int):
            r.fail(f"count_parameters({name}) should return a Python int; got {type(got).__name__} {got!r}.")
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


# ==============================================================================================
# Lesson 03: the posterior q(x_{t-1} | x_t, x_0), its ε form, and the KL of the ELBO
# ==============================================================================================


def _tables64(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Float64 per-step constants, only to *name* a wrong answer (the right one comes from the package)."""
    b = betas.double()
    a = 1 - b
    ab = torch.cumprod(a, 0)
    return {"b": b, "a": a, "ab": ab, "ab_prev": torch.cat([torch.ones(1, dtype=b.dtype), ab[:-1]])}


@contextlib.contextmanager
def _bound_to_package(fn: Callable, betas: torch.Tensor):
    """Bind the lesson's earlier functions in fn's globals to the package's while fn is graded.

    A later exercise may call ``posterior_variance``, ``posterior_mean_coefs`` or ``predict_x0_from_eps``
    from an earlier one; grading with the references keeps one slip from costing points twice.
    """
    d = GaussianDiffusion(betas)
    g = getattr(fn, "__globals__", {})
    replacements = {
        "posterior_variance": lambda b: GaussianDiffusion(b).posterior_variance.double(),
        "posterior_mean_coefs": lambda b: (GaussianDiffusion(b).posterior_mean_coef1.double(),
                                           GaussianDiffusion(b).posterior_mean_coef2.double()),
        "predict_x0_from_eps": lambda xt, t, eps, a_bar: d.to(xt.device).predict_x0_from_eps(xt, t, eps),
    }
    missing = object()
    saved = {k: g.get(k, missing) for k in replacements if k in g}
    g.update({k: v for k, v in replacements.items() if k in saved})   # only what the learner defined
    try:
        yield
    finally:
        for k, v in saved.items():
            g[k] = v


_T0_HINT = ("at t = 0 (the paper's step 1) there is no earlier step: ᾱ_{-1} = 1 by definition. Build "
            "ᾱ_{t-1} as torch.cat([torch.ones(1), alphas_cumprod[:-1]]); alphas_cumprod[t - 1] wraps round "
            "to the last entry at t = 0.")


# ----------------------------------------------------------------------------------------------
# Exercise: posterior_variance  β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t  (eq. 7)
# ----------------------------------------------------------------------------------------------
def check_posterior_variance(fn: Callable, T: int = 10, schedule: str = "linear") -> None:
    """Check ``fn(betas) -> (T,)`` β̃ against :attr:`GaussianDiffusion.posterior_variance`."""
    r = _Report("posterior_variance")
    betas = make_betas(schedule, T)
    shown = f"posterior_variance(betas ({schedule}, T={T}))"
    out = _as_tensor(r, _call(r, fn, betas.clone()), shown)
    _check_shape_dtype(r, out, (T,), None, shown)
    ref = GaussianDiffusion(betas).posterior_variance.double()
    k = _tables64(betas)
    wrap = k["b"] * (1 - k["ab"].roll(1)) / (1 - k["ab"])            # ᾱ_{t-1} = alphas_cumprod[t-1]
    zero_prev = torch.cat([torch.zeros(1, dtype=k["b"].dtype), k["ab"][:-1]])
    mistakes = {
        "you returned β_t where β̃_t belongs (or used ᾱ_t where ᾱ_{t-1} belongs, which gives the same "
        "numbers): β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t, with ᾱ_{t-1} the product up to the step "
        "*before* t.": k["b"],
        "you used the standard deviation where the variance belongs: return β̃_t itself, not √β̃_t.":
            ref.sqrt(),
        "the fraction is upside down: β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t, which is smaller than β_t.":
            k["b"] * (1 - k["ab"]) / (1 - k["ab_prev"]).clamp(min=1e-300) if T > 1 else None,
        f"wrong value at t = 0: {_T0_HINT}": wrap if T > 1 else None,
        f"wrong value at t = 0 (you set ᾱ_{{-1}} = 0, which makes β̃_0 ≈ 1): {_T0_HINT}":
            k["b"] * (1 - zero_prev) / (1 - k["ab"]),
    }
    if T > 1 and _close(out[1:], ref[1:], 1e-5, 1e-9) and not _close(out[:1], ref[:1], 1e-5, 1e-9):
        r.fail(f"every step is right except t = 0, where β̃_0 should be 0 (got {float(out[0]):.4g}): {_T0_HINT}")
    _diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-9, what=shown)
    r.ok(f"{shown}: β̃_0 = {float(out[0]):.3g} (x_0 is known exactly), β̃_{T - 1} = {float(out[-1]):.4g} "
         f"< β_{T - 1} = {float(betas[-1]):.4g}; matches GaussianDiffusion.posterior_variance")


# ----------------------------------------------------------------------------------------------
# Exercise: posterior_mean_coefs  (the two coefficients of μ̃_t, eq. 7)
# ----------------------------------------------------------------------------------------------
def check_posterior_mean_coefs(fn: Callable, T: int = 10, schedule: str = "linear") -> None:
    """Check ``fn(betas) -> (coef1, coef2)`` against ``posterior_mean_coef1/2`` (coef1 multiplies x0)."""
    r = _Report("posterior_mean_coefs")
    betas = make_betas(schedule, T)
    shown = f"posterior_mean_coefs(betas ({schedule}, T={T}))"
    out = _call(r, fn, betas.clone())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        r.fail(f"{shown} should return a pair (coef1, coef2): coef1 multiplies x0, coef2 multiplies x_t.")
    c1, c2 = (_as_tensor(r, c, f"{shown}[{i}]") for i, c in enumerate(out))
    for i, c in enumerate((c1, c2)):
        _check_shape_dtype(r, c, (T,), None, f"{shown}[{i}]")
    d = GaussianDiffusion(betas)
    ref1, ref2 = d.posterior_mean_coef1.double(), d.posterior_mean_coef2.double()
    if _close(c1, ref2, 1e-5, 1e-9) and _close(c2, ref1, 1e-5, 1e-9):
        r.fail("the two coefficients are swapped: coef1 = √ᾱ_{t-1}·β_t / (1 − ᾱ_t) multiplies x0, "
               "coef2 = √α_t·(1 − ᾱ_{t-1}) / (1 − ᾱ_t) multiplies x_t.")
    k = _tables64(betas)
    wrap_prev = k["ab"].roll(1)
    mistakes1 = {
        "coef1 uses ᾱ_t where ᾱ_{t-1} belongs: coef1 = √ᾱ_{t-1}·β_t / (1 − ᾱ_t).":
            k["ab"].sqrt() * k["b"] / (1 - k["ab"]),
        "coef1 is missing a square root: coef1 = √ᾱ_{t-1}·β_t / (1 − ᾱ_t) (a mean scales with a standard "
        "deviation-like √ᾱ, not with the variance-like ᾱ).": k["ab_prev"] * k["b"] / (1 - k["ab"]),
        f"coef1 is wrong at t = 0, where it should be 1 (μ̃_0 = x0): {_T0_HINT}":
            wrap_prev.sqrt() * k["b"] / (1 - k["ab"]) if T > 1 else None,
    }
    mistakes2 = {
        "coef2 uses ᾱ_t where ᾱ_{t-1} belongs: coef2 = √α_t·(1 − ᾱ_{t-1}) / (1 − ᾱ_t).":
            k["a"].sqrt() * (1 - k["ab"]) / (1 - k["ab"]),
        "coef2 is missing the square root of α_t: coef2 = √α_t·(1 − ᾱ_{t-1}) / (1 − ᾱ_t).":
            k["a"] * (1 - k["ab_prev"]) / (1 - k["ab"]),
        f"coef2 is wrong at t = 0, where it should be 0: {_T0_HINT}":
            k["a"].sqrt() * (1 - wrap_prev) / (1 - k["ab"]) if T > 1 else None,
    }
    _diagnose(r, c1, ref1, mistakes1, rtol=1e-5, atol=1e-8, what="coef1")
    _diagnose(r, c2, ref2, mistakes2, rtol=1e-5, atol=1e-8, what="coef2")
    r.ok(f"{shown}: coef1 (× x0) and coef2 (× x_t) match GaussianDiffusion.posterior_mean_coef1/2; "
         f"at t = 0 they are {float(c1[0]):.3g} and {float(c2[0]):.3g} (μ̃_0 = x0)")


# ----------------------------------------------------------------------------------------------
# Exercise: q_posterior  (mean μ̃_t(x_t, x_0) and variance β̃_t, eqs. 6–7)
# ----------------------------------------------------------------------------------------------
def _batch_t(T: int, B: int, seed: int, t) -> torch.Tensor:
    if t is None:
        tt = torch.randint(0, T, (B,), generator=_gen(seed + 3))
        tt[0] = 0                                                   # always probe the t = 0 edge
        return tt
    return torch.as_tensor(t, dtype=torch.long)


def check_q_posterior(fn: Callable, T: int = 10, schedule: str = "linear", shape=(4, 1, 8, 8), seed: int = 0,
                      t=None, use_reference_helpers: bool = True) -> None:
    """Check ``fn(x0, xt, t, betas) -> (mean, variance)`` against :meth:`GaussianDiffusion.q_posterior`.

    The variance may have shape (B, 1, …, 1) (as the package returns it) or the full shape of x.
    """
    r = _Report("q_posterior")
    betas = make_betas(schedule, T)
    x0, xt = _images(shape, seed), torch.randn(shape, generator=_gen(seed + 1))
    tt = _batch_t(T, shape[0], seed, t)
    shown = f"q_posterior(x0 {_fmt_shape(shape)}, xt, t={tt.tolist()}, betas ({schedule}, T={T}))"
    ctx = _bound_to_package(fn, betas) if use_reference_helpers else contextlib.nullcontext()
    with ctx:
        out = _call(r, fn, x0.clone(), xt.clone(), tt.clone(), betas.clone())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        r.fail(f"{shown} should return a pair (mean, variance).")
    mean, var = _as_tensor(r, out[0], "mean"), _as_tensor(r, out[1], "variance")
    _check_shape_dtype(r, mean, shape, None, "mean", " It has the shape of x_t.")
    d = GaussianDiffusion(betas)
    ref_mean, ref_var = d.q_posterior(x0, xt, tt)
    try:
        var_full = var.detach().cpu().double().expand(shape)
    except RuntimeError:
        r.fail(f"the variance should have shape {_fmt_shape((shape[0],) + (1,) * (len(shape) - 1))} "
               f"(one β̃_t per image; extract(a, t, x.shape) gives it) or {_fmt_shape(shape)}; "
               f"got {_fmt_shape(var.shape)}.")
    ref_full = ref_var.double().expand(shape)
    k = _tables64(betas)
    g = lambda a: a[tt].reshape(-1, *((1,) * (len(shape) - 1))).expand(shape)   # noqa: E731
    var_mistakes = {
        "the variance is β_t where β̃_t belongs: q(x_{t-1} | x_t, x_0) has the smaller variance "
        "β̃_t = (1 − ᾱ_{t-1}) / (1 − ᾱ_t) · β_t.": g(k["b"]),
        "you returned the standard deviation where the variance belongs: return β̃_t, not √β̃_t.":
            ref_full.sqrt(),
    }
    _diagnose(r, var_full, ref_full, var_mistakes, rtol=1e-5, atol=1e-8, what="variance")
    c1, c2 = d.posterior_mean_coef1.double(), d.posterior_mean_coef2.double()
    mean_mistakes = {
        "the two coefficients are swapped: coef1 multiplies x0 and coef2 multiplies x_t.":
            g(c2) * x0 + g(c1) * xt,
        "the mean uses ᾱ_t where ᾱ_{t-1} belongs.":
            g(k["ab"].sqrt() * k["b"] / (1 - k["ab"])) * x0 + g(k["a"].sqrt()) * xt,
        f"the mean is wrong at t = 0, where μ̃_0 = x0: {_T0_HINT}":
            g(k["ab"].roll(1).sqrt() * k["b"] / (1 - k["ab"])) * x0
            + g(k["a"].sqrt() * (1 - k["ab"].roll(1)) / (1 - k["ab"])) * xt if T > 1 else None,
    }
    _diagnose(r, mean, ref_mean, mean_mistakes, rtol=1e-5, atol=1e-5, what="mean")
    note = " (graded with the package's posterior_variance / posterior_mean_coefs)" if use_reference_helpers else ""
    r.ok(f"{shown}: μ̃_t and β̃_t match GaussianDiffusion.q_posterior, t = 0 included{note}")


# ----------------------------------------------------------------------------------------------
# Exercise: predict_x0_from_eps  (eq. 4 inverted)
# ----------------------------------------------------------------------------------------------
def check_predict_x0_from_eps(fn: Callable, T: int = 10, schedule: str = "linear", shape=(4, 1, 8, 8),
                              seed: int = 0, t=None) -> None:
    """Check ``fn(xt, t, eps, alphas_cumprod)`` against :meth:`GaussianDiffusion.predict_x0_from_eps`."""
    r = _Report("predict_x0_from_eps")
    betas = make_betas(schedule, T)
    d = GaussianDiffusion(betas)
    xt, eps = torch.randn(shape, generator=_gen(seed)), torch.randn(shape, generator=_gen(seed + 1))
    tt = _batch_t(T, shape[0], seed, t)
    shown = f"predict_x0_from_eps(xt {_fmt_shape(shape)}, t={tt.tolist()}, eps, alphas_cumprod (T={T}))"
    out = _as_tensor(r, _call(r, fn, xt.clone(), tt.clone(), eps.clone(), d.alphas_cumprod.double()), shown)
    _check_shape_dtype(r, out, shape, None, shown)
    ref = d.predict_x0_from_eps(xt, tt, eps)
    ab = _tables64(betas)["ab"][tt].reshape(-1, *((1,) * (len(shape) - 1)))
    mistakes = {
        "the noise is scaled by 1 − ᾱ_t, a variance; x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t.":
            (xt - (1 - ab) * eps) / ab.sqrt(),
        "you divided by ᾱ_t; divide by its square root: x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t.":
            (xt - (1 - ab).sqrt() * eps) / ab,
        "the noise should be subtracted: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε, so x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t.":
            (xt + (1 - ab).sqrt() * eps) / ab.sqrt(),
        "you multiplied by √ᾱ_t; invert it: x0 = (x_t − √(1 − ᾱ_t)·ε) / √ᾱ_t.":
            (xt - (1 - ab).sqrt() * eps) * ab.sqrt(),
    }
    _diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-5, what=shown)
    r.ok(f"{shown}: matches GaussianDiffusion.predict_x0_from_eps")


# ----------------------------------------------------------------------------------------------
# Exercise: posterior_mean_from_eps  μ̃ = 1/√α_t · (x_t − β_t / √(1 − ᾱ_t) · ε)  (eq. 11)
# ----------------------------------------------------------------------------------------------
def check_posterior_mean_from_eps(fn: Callable, T: int = 10, schedule: str = "linear", shape=(4, 1, 8, 8),
                                  seed: int = 0, t=None, use_reference_helpers: bool = True) -> None:
    """Check ``fn(xt, t, eps, betas)`` against the ε form of the mean of
    :meth:`GaussianDiffusion.p_mean_variance` — and that it equals μ̃_t(x_t, x0) for the x0 behind x_t."""
    r = _Report("posterior_mean_from_eps")
    betas = make_betas(schedule, T)
    d = GaussianDiffusion(betas)
    xt, eps = torch.randn(shape, generator=_gen(seed)), torch.randn(shape, generator=_gen(seed + 1))
    tt = _batch_t(T, shape[0], seed, t)
    shown = f"posterior_mean_from_eps(xt {_fmt_shape(shape)}, t={tt.tolist()}, eps, betas ({schedule}, T={T}))"
    ctx = _bound_to_package(fn, betas) if use_reference_helpers else contextlib.nullcontext()
    with ctx:
        out = _as_tensor(r, _call(r, fn, xt.clone(), tt.clone(), eps.clone(), betas.clone()), shown)
    _check_shape_dtype(r, out, shape, None, shown)
    ref, _, _ = d.p_mean_variance(eps, xt, tt, clip_x0=False)
    k = _tables64(betas)
    g = lambda a: a[tt].reshape(-1, *((1,) * (len(shape) - 1)))   # noqa: E731
    b, a, ab = g(k["b"]), g(k["a"]), g(k["ab"])
    mistakes = {
        "the prefactor is 1/α_t; it is 1/√α_t: μ̃ = (x_t − β_t / √(1 − ᾱ_t)·ε) / √α_t.":
            (xt - b / (1 - ab).sqrt() * eps) / a,
        "the prefactor uses ᾱ_t where α_t belongs: μ̃ = (x_t − β_t / √(1 − ᾱ_t)·ε) / √α_t (one step back, "
        "not all the way to x0).": (xt - b / (1 - ab).sqrt() * eps) / ab.sqrt(),
        "the noise coefficient is β_t / (1 − ᾱ_t); it is β_t / √(1 − ᾱ_t).":
            (xt - b / (1 - ab) * eps) / a.sqrt(),
        "the noise coefficient uses √β_t; it is β_t / √(1 − ᾱ_t) (β_t, a variance, over a standard "
        "deviation).": (xt - b.sqrt() / (1 - ab).sqrt() * eps) / a.sqrt(),
        "this is x0, not μ̃: you predicted x0 from ε but did not take the posterior mean of x_{t-1}.":
            d.predict_x0_from_eps(xt, tt, eps).double(),
    }
    _diagnose(r, out, ref, mistakes, rtol=1e-4, atol=1e-4, what=shown)
    x0 = d.predict_x0_from_eps(xt, tt, eps)
    mean_x0, _ = d.q_posterior(x0, xt, tt)
    gap = float((out.detach().cpu().double() - mean_x0.double()).abs().max())
    r.ok(f"{shown}: matches the ε form (eq. 11) and equals μ̃_t(x_t, x̂0) of q_posterior "
         f"(max gap {gap:.1e})")


# ----------------------------------------------------------------------------------------------
# Exercise: gaussian_kl  KL(N(μ1, σ1²) ‖ N(μ2, σ2²)), element-wise
# ----------------------------------------------------------------------------------------------
def check_gaussian_kl(fn: Callable, shape=(4, 3), seed: int = 0, dtype: torch.dtype = torch.float64) -> None:
    """Check ``fn(mean1, var1, mean2, var2)`` against :func:`course_utils.diffusion.gaussian_kl`."""
    from ..diffusion import gaussian_kl

    r = _Report("gaussian_kl")
    m1, m2 = (torch.randn(shape, generator=_gen(seed + i)).to(dtype) for i in (0, 1))
    v1, v2 = (torch.rand(shape, generator=_gen(seed + i)).to(dtype) * 2 + 0.05 for i in (2, 3))
    shown = f"gaussian_kl(mean1, var1, mean2, var2), all {_fmt_shape(shape)}"
    out = _as_tensor(r, _call(r, fn, m1.clone(), v1.clone(), m2.clone(), v2.clone()), shown)
    _check_shape_dtype(r, out, shape, None, shown, "")
    ref = gaussian_kl(m1, v1, m2, v2)
    same = _call(r, fn, m1.clone(), v1.clone(), m1.clone(), v1.clone())
    mistakes = {
        "you treated the variances as standard deviations (squared them): var1 and var2 already are "
        "σ². KL = ½·(log(var2 / var1) + (var1 + (mean1 − mean2)²) / var2 − 1).":
            gaussian_kl(m1, v1 ** 2, m2, v2 ** 2),
        "the factor ½ is missing: KL = ½·(log(var2 / var1) + (var1 + (mean1 − mean2)²) / var2 − 1).": 2 * ref,
        "the arguments are swapped: KL is not symmetric. KL(p ‖ q) divides by q's variance, var2.":
            gaussian_kl(m2, v2, m1, v1),
        "the log ratio is upside down: it is log(var2 / var1) (for standard deviations, log(σ2 / σ1)).":
            0.5 * (torch.log(v1 / v2) + (v1 + (m1 - m2) ** 2) / v2 - 1),
        "the − 1 is missing: KL(p ‖ p) must be 0.": ref + 0.5,
        "the log of the variance ratio needs the factor ½ too (½·log(var2/var1) = log(σ2/σ1)).":
            torch.log(v2 / v1) + 0.5 * ((v1 + (m1 - m2) ** 2) / v2 - 1),
    }
    _diagnose(r, out, ref, mistakes, rtol=1e-6, atol=1e-8, what=shown)
    same = _as_tensor(r, same, "gaussian_kl(p, p)")
    if not _close(same, torch.zeros_like(ref), 0, 1e-6):
        r.fail("KL(p ‖ p) should be 0 for identical Gaussians.")
    r.ok(f"{shown}: matches course_utils.diffusion.gaussian_kl, ≥ 0, and KL(p ‖ p) = 0")


# ----------------------------------------------------------------------------------------------
# Exercise (sympy): complete the square in q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0)
# ----------------------------------------------------------------------------------------------
def check_complete_the_square(fn: Callable, names=("beta_t", "abar_prev", "x_t", "x_0", "x"),
                              T: int = 10, steps=(1, 4, 9)) -> None:
    """Check ``fn(beta, abar_prev, xt, x0, x) -> (precision, mean)``, sympy expressions, symbolically.

    ``precision`` is the coefficient 1/β̃_t of x² and ``mean`` the centre μ̃_t of the Gaussian in x
    (= x_{t-1}). Verified with ``sympy.simplify`` against eq. 7 of Ho et al. 2020, then numerically
    against :meth:`GaussianDiffusion.q_posterior` at a few steps of a linear schedule.
    """
    import sympy as sp

    r = _Report("complete_the_square")
    beta, abar_prev = sp.symbols(names[:2], positive=True)
    xt, x0, x = sp.symbols(names[2:], real=True)
    shown = f"complete_the_square({', '.join(names)})"
    out = _call(r, fn, beta, abar_prev, xt, x0, x)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        r.fail(f"{shown} should return a pair (precision, mean) of sympy expressions.")
    prec, mean = (sp.sympify(v) for v in out)
    if x in prec.free_symbols or x in mean.free_symbols:
        r.fail(f"the precision and the mean must not contain {names[4]} (= x_{{t-1}}); they are the "
               f"coefficients you read off after collecting the powers of {names[4]}.")
    alpha = 1 - beta
    abar = abar_prev * alpha
    bt = (1 - abar_prev) / (1 - abar) * beta                              # β̃_t, eq. 7
    mu = (sp.sqrt(abar_prev) * beta * x0 + sp.sqrt(alpha) * (1 - abar_prev) * xt) / (1 - abar)

    rng = [dict(zip((beta, abar_prev, xt, x0), v)) for v in
           ((0.02, 0.9, 0.3, -0.7), (0.3, 0.4, -1.2, 0.5), (0.001, 0.99, 0.8, 0.1))]

    def numerically_same(a, b) -> bool:
        try:
            return all(abs(complex(a.subs(v)) - complex(b.subs(v))) <= 1e-9 * (1 + abs(complex(b.subs(v))))
                       for v in rng)
        except (TypeError, ValueError, ZeroDivisionError):
            return False

    def same(a, b) -> bool:                      # the right answer: sympy.simplify proves it
        return sp.simplify(a - b) == 0

    def looks_like(a, b) -> bool:                # naming a mistake: agreement at a few points suffices
        return numerically_same(a, b)

    if not same(prec, 1 / bt):
        wrong = {
            f"precision = 1/β_t: you used β where β̃ belongs. The x² coefficient collects both factors: "
            f"α_t/β_t + 1/(1 − ᾱ_{{t-1}}) = 1/β̃_t.": 1 / beta,
            "precision = β̃_t: the coefficient of x² is the *inverse* variance 1/β̃_t.": bt,
            "precision = 1/√β̃_t: you used the standard deviation where the variance belongs.": 1 / sp.sqrt(bt),
            "precision uses ᾱ_t where ᾱ_{t-1} belongs: q(x_{t-1} | x_0) has variance 1 − ᾱ_{t-1}.":
                alpha / beta + 1 / (1 - abar),
            "precision is twice too large: the exponent is −½·(A·x² − 2·B·x + C); A (not 2A) is the precision.":
                2 / bt,
        }
        for msg, cand in wrong.items():
            if looks_like(prec, cand):
                r.fail(msg)
        r.fail(f"precision = {prec} does not simplify to 1/β̃_t = {sp.simplify(1 / bt)}.")
    r.ok("precision: sympy.simplify(precision − 1/β̃_t) == 0")
    if not same(mean, mu):
        wrong = {
            "mean = B, the coefficient of x: divide it by the precision (μ̃ = B / A).": mu / bt,
            "mean is twice μ̃: the exponent is −½·(A·x² − 2·B·x + C), so μ̃ = B/A — the 2 in −2·B·x "
            "must be divided out (a slip that is easy to copy from a slide).": 2 * mu,
            "mean uses β where β̃ belongs: μ̃ = B · β̃_t, not B · β_t.": mu / bt * beta,
            "mean has the wrong sign: μ̃ = +B/A.": -mu,
        }
        for msg, cand in wrong.items():
            if looks_like(mean, cand):
                r.fail(msg)
        r.fail(f"mean = {mean} does not simplify to μ̃_t = {sp.simplify(mu)}.")
    r.ok("mean: sympy.simplify(mean − μ̃_t(x_t, x_0)) == 0")
    d = GaussianDiffusion(_linear_betas(T))
    for t in steps:
        vals = {beta: float(d.betas[t]), abar_prev: float(d.alphas_cumprod_prev[t]), xt: 0.3, x0: -0.7}
        m_ref, v_ref = d.q_posterior(torch.tensor([[-0.7]]), torch.tensor([[0.3]]), t)
        # float32 buffers: 1 − ᾱ_{t-1} near t = 0 keeps only a few digits, hence the loose tolerance
        if abs(float(prec.subs(vals)) * float(v_ref) - 1) > 1e-3 or abs(float(mean.subs(vals)) - float(m_ref)) > 1e-4:
            r.fail(f"at t = {t} your expressions disagree with GaussianDiffusion.q_posterior.")
    r.ok(f"{shown}: 1/precision and mean agree with GaussianDiffusion.q_posterior at t = {list(steps)}")


# ==============================================================================================
# Lesson 05 — time embeddings: sinusoidal_embedding, broadcasting-add, ResBlock, rearrange-pooling
# ==============================================================================================
from einops import rearrange as _rearrange  # noqa: E402

from ..models import Downsample as _Downsample, ResBlock as _ResBlock  # noqa: E402
from ..models import sinusoidal_embedding as _sinusoidal_embedding  # noqa: E402


def reference_add_time_embedding(h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """h (B, C, H, W) + emb (B, C) broadcast over H, W — the line inside :class:`course_utils.models.ResBlock`."""
    return h + _rearrange(emb, 'b c -> b c 1 1')


def reference_rearrange_pool(x: torch.Tensor) -> torch.Tensor:
    """Space-to-depth (B, C, H, W) → (B, 4C, H/2, W/2): the einops layer of ``Downsample(mode="rearrange")``."""
    return _Downsample(x.shape[1], "rearrange").op[0](x)


def _embedding_mistakes(t: torch.Tensor, dim: int) -> dict[str, torch.Tensor]:
    half = dim // 2
    tf = t.to(torch.float32)
    i = torch.arange(half, dtype=torch.float32)
    freqs = torch.exp(-math.log(10000.0) * i / half)
    args = tf[:, None] * freqs[None]
    out = {
        "the halves are swapped: the package puts the sin half first, then the cos half "
        "(torch.cat([sin, cos], dim=-1)).": torch.cat([args.cos(), args.sin()], dim=-1),
        "sin and cos are interleaved (sin, cos, sin, cos, …); the package concatenates them: the whole "
        "sin half first, then the whole cos half.": torch.stack([args.sin(), args.cos()], dim=-1).flatten(1),
        "the frequencies decay the other way: freq_i = exp(−ln(10000)·i/(dim/2)) starts at 1 for i = 0 and "
        "falls towards 1/10000.": torch.cat([(tf[:, None] * freqs.flip(0)).sin(),
                                             (tf[:, None] * freqs.flip(0)).cos()], dim=-1),
        "t was rounded or truncated to an integer: keep float timesteps as they are (t.float(), not t.long()).":
            _sinusoidal_embedding(tf.floor(), dim),
        "the sin half is missing its partner: each half has dim/2 columns, and both use the same "
        "frequencies.": torch.cat([args.sin(), args.sin()], dim=-1),
        "one argument too many: the frequencies are 10000^(−i/(dim/2)), no extra factor 2π.":
            torch.cat([(2 * math.pi * args).sin(), (2 * math.pi * args).cos()], dim=-1),
    }
    if half > 1:
        f2 = torch.exp(-math.log(10000.0) * i / (half - 1))
        a2 = tf[:, None] * f2[None]
        out["off by one in the frequencies: divide i by dim/2, not dim/2 − 1 (the last frequency is "
            "10000^(−(dim/2−1)/(dim/2)), not exactly 1/10000)."] = torch.cat([a2.sin(), a2.cos()], dim=-1)
    f3 = torch.exp(-math.log(10000.0) * i / dim)
    a3 = tf[:, None] * f3[None]
    out["the exponent uses i/dim; the package uses i/(dim/2), one exponent per sin/cos pair."] = \
        torch.cat([a3.sin(), a3.cos()], dim=-1)
    return out


def check_sinusoidal_embedding(fn: Callable, dim: int = 32, t=None, T: int = 1000, batch: int = 8,
                               seed: int = 0) -> None:
    """Check ``fn(t, dim) -> (B, dim)`` against :func:`course_utils.models.sinusoidal_embedding`.

    ``t`` defaults to ``batch`` seeded int64 timesteps in {0, …, T-1}; pass a float tensor to test float t.
    """
    r = _Report("sinusoidal_embedding")
    if t is None:
        t = torch.randint(0, T, (batch,), generator=_gen(seed))
    t = torch.as_tensor(t)
    kind = "float" if t.is_floating_point() else "int"
    shown = f"sinusoidal_embedding({kind} t of shape {_fmt_shape(t.shape)}, dim={dim})"
    t_in = t.clone()
    out = _as_tensor(r, _call(r, fn, t_in, dim), shown)
    if not torch.equal(t_in, t):
        r.fail("your function changed t in place; compute a new tensor instead.")
    if out.ndim == 2 and out.shape == (dim, t.shape[0]) and dim != t.shape[0]:
        r.fail(f"{shown} has shape {tuple(out.shape)}: it is transposed; one row per timestep, (B, dim).")
    _check_shape_dtype(r, out, (t.shape[0], dim), None, shown)
    if not out.is_floating_point():
        r.fail(f"{shown} has dtype {out.dtype}: the embedding is float32 (sines and cosines).")
    ref = _sinusoidal_embedding(t, dim)
    _diagnose(r, out.float(), ref, _embedding_mistakes(t, dim), rtol=1e-4, atol=1e-4, what=shown)
    r.ok(f"{shown}: shape {_fmt_shape(ref.shape)}, sin half then cos half, matches "
         f"course_utils.models.sinusoidal_embedding")


def check_sinusoidal_embedding_rejects_odd_dim(fn: Callable, dim: int = 7) -> None:
    """An odd ``dim`` cannot be split into a sin half and a cos half: ``fn`` must raise a clear ValueError."""
    r = _Report("sinusoidal_embedding")
    if dim % 2 == 0:
        raise ValueError(f"check_sinusoidal_embedding_rejects_odd_dim needs an odd dim; got {dim}.")
    t = torch.arange(4)
    err = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(err):
            warnings.simplefilter("ignore")
            out = fn(t, dim)
    except NotImplementedError as e:
        r.fail("still raises NotImplementedError: replace the `raise NotImplementedError()` line with your "
               "code, run that cell, then run this one again.", e)
    except ValueError as e:
        msg = str(e).lower()
        if not any(w in msg for w in ("even", "odd", "half", "halves")):
            r.fail(f"dim={dim} raised ValueError({str(e)!r}); say why in the message, e.g. "
                   f"\"dim must be even (a sin half and a cos half); got dim={dim}\".")
        r.ok(f"sinusoidal_embedding(t, dim={dim}) raises ValueError: {e}")
        return
    except Exception as e:  # some other error: not a clear one
        r.fail(f"dim={dim} raised {type(e).__name__}: {e}. Check dim first and raise a ValueError that says "
               f"dim must be even (a sin half and a cos half).", e)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    r.fail(f"dim={dim} is odd but your function returned {shape} without complaint; an odd width cannot be "
           f"split into a sin half and a cos half: raise ValueError(\"dim must be even …\").")


def check_sinusoidal_embedding_neighbours(fn: Callable, dim: int = 32, T: int = 1000) -> None:
    """Embeddings of neighbouring timesteps t and t+1 must differ (the network tells them apart)."""
    r = _Report("sinusoidal_embedding")
    t = torch.arange(T)
    out = _as_tensor(r, _call(r, fn, t, dim), f"sinusoidal_embedding(arange({T}), dim={dim})")
    _check_shape_dtype(r, out, (T, dim), None, f"sinusoidal_embedding(arange({T}), dim={dim})")
    gap = (out[1:].float() - out[:-1].float()).norm(dim=1)         # (T-1,)
    i = int(gap.argmin())
    if float(gap[i]) < 1e-3:
        r.fail(f"t = {i} and t = {i + 1} get the same embedding (distance {float(gap[i]):.2g}): the network "
               f"could not tell them apart. Use the raw timesteps (not t / T rounded, not t.long() of a "
               f"fraction) and frequencies that start at 1.")
    r.ok(f"all {T - 1} neighbouring pairs (t, t+1) have distinct embeddings (smallest distance "
         f"{float(gap.min()):.3f})")


def check_add_time_embedding(fn: Callable, shape=(4, 8, 5, 6), seed: int = 0) -> None:
    """Check ``fn(h, emb)``: h (B, C, H, W) plus emb (B, C) broadcast over H and W."""
    r = _Report("add_time_embedding")
    B, C, H, W = shape
    h = torch.randn(shape, generator=_gen(seed))
    emb = torch.randn(B, C, generator=_gen(seed + 1))
    args = (h.clone(), emb.clone())
    shown = f"add_time_embedding(h {_fmt_shape(shape)}, emb {_fmt_shape((B, C))})"
    out = _as_tensor(r, _call(r, fn, *args), shown)
    if not (torch.equal(args[0], h) and torch.equal(args[1], emb)):
        r.fail("your function changed h or emb in place (+=); return h + … as a new tensor.")
    _check_shape_dtype(r, out, shape, None, shown)
    ref = reference_add_time_embedding(h, emb)
    mistakes = {}
    if (H, W) == (B, C):
        mistakes["emb was broadcast over the wrong axes: h + emb lines emb's (B, C) up with h's last two axes "
                 "(H, W). Give it shape (B, C, 1, 1): rearrange(emb, 'b c -> b c 1 1')."] = h + emb
    if B == C:
        mistakes["the batch and channel axes of emb are swapped: image b must get row b of emb on its "
                 "channels: rearrange(emb, 'b c -> b c 1 1'), not 'b c -> c b 1 1'."] = \
            h + _rearrange(emb, 'b c -> c b 1 1')
    mistakes["every image got the same shift: image b must get its own row emb[b] (per-image embedding)."] = \
        h + _rearrange(emb[0], 'c -> 1 c 1 1')
    mistakes["emb was multiplied, not added: the time embedding is added to every pixel."] = \
        h * _rearrange(emb, 'b c -> b c 1 1')
    _diagnose(r, out, ref, mistakes, rtol=1e-6, atol=1e-6, what=shown)
    r.ok(f"{shown}: each image's (C,) embedding added to all {H}×{W} pixels of its channels")


def check_res_block(cls: Callable, in_ch: int = 16, out_ch: int = 32, emb_dim: int = 64, groups: int = 8,
                    size: int = 8, batch: int = 4, seed: int = 0) -> None:
    """Check a learner's residual block class against :class:`course_utils.models.ResBlock`.

    Both are built as ``cls(in_ch, out_ch, emb_dim, groups)``; the package block's weights are copied into
    the learner's (same layer names), then both run on the same seeded ``x`` and ``emb``.
    """
    r = _Report("TimeResBlock")
    shown = f"TimeResBlock(in_ch={in_ch}, out_ch={out_ch}, emb_dim={emb_dim}, groups={groups})"
    torch.manual_seed(seed)
    block = _call(r, cls, in_ch, out_ch, emb_dim, groups)
    if not isinstance(block, torch.nn.Module):
        r.fail(f"{shown} should be an nn.Module; got {type(block).__name__}.")
    torch.manual_seed(seed + 1)
    ref = _ResBlock(in_ch, out_ch, emb_dim, groups)
    with torch.no_grad():                       # random, non-trivial GroupNorm affine weights
        for m in ref.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=_gen(seed + 2)))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=_gen(seed + 3)))
    try:
        block.load_state_dict(ref.state_dict())
    except RuntimeError as e:
        r.fail(f"the package's weights do not fit your block: keep the layers built in __init__ "
               f"(norm1, conv1, emb_proj, norm2, conv2, skip) as they are. {str(e)[:300]}", e)
    block.eval()
    ref.eval()
    x = torch.randn(batch, in_ch, size, size, generator=_gen(seed + 4))
    emb = torch.randn(batch, emb_dim, generator=_gen(seed + 5))
    out = _as_tensor(r, _call(r, block, x.clone(), emb.clone()), f"{shown}(x, emb)")
    _check_shape_dtype(r, out, (batch, out_ch, size, size), None, f"{shown}(x {_fmt_shape(x.shape)}, emb)")
    with torch.no_grad():
        want = ref(x, emb)
        h = ref.conv1(ref.act(ref.norm1(x)))
        e = _rearrange(ref.emb_proj(emb), 'b c -> b c 1 1')
        tail = lambda h: ref.conv2(ref.act(ref.norm2(h)))           # noqa: E731
        mistakes = {
            "the time embedding is missing: add rearrange(self.emb_proj(emb), 'b c -> b c 1 1') to h after "
            "the first conv.": ref.skip(x) + tail(h),
            "the skip connection is missing: return self.skip(x) + h (that sum is what makes the block "
            "residual).": tail(h + e),
            "the embedding was added after the second conv; add it between the two convs (after conv1), so "
            "the second conv can mix it with the features.": ref.skip(x) + tail(h) + e,
        }
    _diagnose(r, out.detach(), want, mistakes, rtol=1e-4, atol=1e-5, what=f"{shown}(x, emb)")
    # the embedding must matter, per image
    with torch.no_grad():
        out2 = block(x, emb + 1.0)
    if torch.allclose(out2, out.detach()):
        r.fail("changing emb does not change the output: the block ignores the time embedding.")
    r.ok(f"{shown}: output {_fmt_shape(want.shape)} matches course_utils.models.ResBlock with the same weights")


def check_rearrange_pool(fn: Callable, shape=(2, 3, 8, 6), seed: int = 0) -> None:
    """Check ``fn(x)``: space-to-depth, (B, C, H, W) → (B, 4C, H/2, W/2), as ``Downsample(mode="rearrange")``."""
    r = _Report("rearrange_pool")
    B, C, H, W = shape
    x = torch.randn(shape, generator=_gen(seed))
    x_in = x.clone()
    shown = f"rearrange_pool(x {_fmt_shape(shape)})"
    out = _as_tensor(r, _call(r, fn, x_in), shown)
    if not torch.equal(x_in, x):
        r.fail("your function changed x in place.")
    if tuple(out.shape) == (B, C, H // 2, W // 2):
        r.fail(f"{shown} has shape {tuple(out.shape)}: that is ordinary pooling, which throws 3 of every 4 "
               f"values away; rearrange-pooling keeps them all as channels: (B, 4C, H/2, W/2).")
    _check_shape_dtype(r, out, (B, 4 * C, H // 2, W // 2), None, shown)
    ref = reference_rearrange_pool(x)
    mistakes = {
        "the channels are ordered (p1 p2 c); the package groups them as (c p1 p2): all four pixels of "
        "channel 0 first: 'b c (h p1) (w p2) -> b (c p1 p2) h w'.":
            _rearrange(x, 'b c (h p1) (w p2) -> b (p1 p2 c) h w', p1=2, p2=2),
        "you took four quarter-images ('(p1 h)') instead of 2×2 patches ('(h p1)'): each output pixel must "
        "hold one 2×2 neighbourhood: 'b c (h p1) (w p2) -> b (c p1 p2) h w'.":
            _rearrange(x, 'b c (p1 h) (p2 w) -> b (c p1 p2) h w', p1=2, p2=2),
        "p1 and p2 are swapped in the output: use (c p1 p2), p1 being the row offset inside the patch.":
            _rearrange(x, 'b c (h p1) (w p2) -> b (c p2 p1) h w', p1=2, p2=2),
    }
    _diagnose(r, out, ref, mistakes, rtol=0, atol=0, what=shown)
    r.ok(f"{shown}: (B, 4C, H/2, W/2) = {_fmt_shape(ref.shape)}, every pixel kept, matches "
         f"Downsample(mode='rearrange')")


# ==============================================================================================
# Lesson 04: Algorithm 1 (L_simple, one training step) and Algorithm 2 (reverse step, sampling loop)
# ==============================================================================================


class _TimeRecorder(torch.nn.Module):
    """A tiny ε-model ``w·x_t + c·t/T`` that records every (x_t, t) it sees (for the lesson 04 checks)."""

    def __init__(self, T: int):
        super().__init__()
        self.T = T
        self.w = torch.nn.Parameter(torch.tensor(0.5))
        self.c = torch.nn.Parameter(torch.tensor(0.3))
        self.seen_t: list[torch.Tensor] = []
        self.seen_x: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        t = torch.as_tensor(t)
        self.seen_t.append(t.detach().cpu().reshape(-1).clone())
        self.seen_x.append(x.detach().cpu().clone())
        tt = t.to(x.device).float().reshape(-1, *((1,) * (x.ndim - 1))) / self.T
        return self.w * x + self.c * tt


def reference_loss_simple(model, diffusion, x0, y=None, generator=None) -> torch.Tensor:
    """L_simple for a batch (Algorithm 1): :meth:`GaussianDiffusion.loss_simple`, under train's loss_fn signature."""
    return diffusion.loss_simple(model, x0, y=y, generator=generator)


def reference_p_sample_step(eps, xt, t: int, diffusion, noise) -> torch.Tensor:
    """One DDPM reverse step with σ_t² = β_t (Algorithm 2): :meth:`GaussianDiffusion.step` (variance "beta")."""
    return diffusion.step(eps, xt, t, noise=noise, variance="beta", clip_x0=False).sample


def _t_hist_report(r: _Report, ts: torch.Tensor, T: int) -> None:
    if int(ts.min()) < 0 or int(ts.max()) > T - 1:
        r.fail(f"t left the range [0, {T - 1}] (saw {int(ts.min())} … {int(ts.max())}); timesteps are "
               f"0-indexed: t ~ Uniform{{0, …, T-1}} is torch.randint(0, T, (B,)).")
    if int(ts.min()) != 0:
        r.fail(f"over {ts.numel()} draws t never was 0: index 0 (the paper's step 1, the least noisy) must be "
               f"trained too. t ~ Uniform{{0, …, T-1}} is torch.randint(0, T, (B,)), not torch.randint(1, T, …).")
    if int(ts.max()) != T - 1:
        r.fail(f"over {ts.numel()} draws t never was T-1 = {T - 1}: torch.randint(low, high) excludes high, "
               f"so draw with torch.randint(0, T, (B,)).")
    counts = torch.bincount(ts, minlength=T).double()
    expected = ts.numel() / T
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    df = T - 1
    if chi2 > df + 6 * math.sqrt(2 * df) + 10:
        r.fail(f"t is not uniform over {{0, …, {T - 1}}}: counts range from {int(counts.min())} to "
               f"{int(counts.max())} (expected about {expected:.0f} each; χ² = {chi2:.0f} for {df} degrees "
               f"of freedom). Draw t with torch.randint(0, T, (B,)).")


def check_loss_simple(fn: Callable, T: int = 10, shape=(8, 1, 4, 4), seed: int = 0, probe_calls: int = 300,
                      probe_batch: int = 64) -> None:
    """Check ``fn(model, diffusion, x0, y=None, generator=None)`` — L_simple for a batch (Algorithm 1).

    A recording model sees every (x_t, t) the learner feeds it: the loss must be the mean squared error
    between the model's output and the ε that built x_t from x0 (eq. 14), t must cover {0, …, T-1}
    uniformly (probed over ``probe_calls`` calls), the loss must carry gradients, and the same generator
    seed must give the same loss.
    """
    r = _Report("loss_simple")
    d = GaussianDiffusion(_linear_betas(T))
    x0 = _images(shape, seed)
    shown = f"loss_simple(model, diffusion (T={T}), x0 {_fmt_shape(shape)}, None, generator)"
    model = _TimeRecorder(T)
    loss = _call(r, fn, model, d, x0.clone(), None, _gen(seed + 1))
    loss = _as_tensor(r, loss, "the loss")
    if loss.ndim != 0:
        r.fail(f"{shown} should return a scalar (0-d) tensor, the mean over batch and pixels; got shape "
               f"{tuple(loss.shape)}. Use F.mse_loss(eps_pred, eps) (it averages).")
    if not model.seen_t:
        r.fail("the model was never called: predict the noise with eps_pred = model(x_t, t).")
    if len(model.seen_t) != 1:
        r.fail(f"the model was called {len(model.seen_t)} times; call it once, on the whole batch.")
    t, xt = model.seen_t[0], model.seen_x[0]
    if t.is_floating_point() or t.shape != (shape[0],):
        r.fail(f"t should be an int64 tensor of shape ({shape[0]},), one timestep per image; got "
               f"{t.dtype} of shape {tuple(t.shape)}.")
    if xt.shape != x0.shape:
        r.fail(f"the model got x_t of shape {tuple(xt.shape)}; it should have x0's shape {tuple(x0.shape)}.")
    if int(t.min()) < 0 or int(t.max()) > T - 1:
        _t_hist_report(r, t, T)
    if shape[0] >= 8 and T > 1 and bool((t == t[0]).all()):
        r.fail(f"all {shape[0]} images got the same t = {int(t[0])}: draw one t per image, "
               f"torch.randint(0, T, (B,)), so every batch mixes noise levels (Algorithm 1).")
    if not loss.requires_grad:
        r.fail("the loss does not carry gradients (did you use torch.no_grad(), .item() or .detach()?): "
               "training needs loss.backward().")
    with torch.no_grad():
        out = model.w.detach() * xt + model.c.detach() * t.float().reshape(-1, 1, 1, 1) / T
        eps = d.predict_eps_from_x0(xt, t, x0)               # the ε that takes x0 to this x_t (eq. 4)
        ref = torch.nn.functional.mse_loss(out, eps)
        mistakes = {
            "the loss compares the prediction with x0; the network predicts the noise: "
            "MSE(model(x_t, t), ε) (eq. 14).": torch.nn.functional.mse_loss(out, x0),
            "the loss compares the prediction with x_t; it should compare with the noise ε that built x_t.":
                torch.nn.functional.mse_loss(out, xt),
            "the loss is a sum; L_simple is the mean over batch and pixels (F.mse_loss).":
                ((out - eps) ** 2).sum(),
        }
    if not _close(loss.detach().reshape(()), ref, 1e-4, 1e-6) and not 0.3 < float(eps.std()) < 3:
        r.fail("x_t is not √ᾱ_t·x0 + √(1 − ᾱ_t)·ε for a standard normal ε: build it with "
               "diffusion.q_sample(x0, t, noise=eps).")
    _diagnose(r, loss.detach().reshape(()), ref, mistakes, rtol=1e-4, atol=1e-6, what=f"{shown}")
    loss.backward()
    if model.w.grad is None or float(model.w.grad.abs()) == 0:
        r.fail("no gradient reached the model's parameters: the loss must be computed from model(x_t, t).")
    again = _call(r, fn, _TimeRecorder(T), d, x0.clone(), None, _gen(seed + 1))
    if not (isinstance(again, torch.Tensor) and torch.allclose(again.detach(), loss.detach())):
        r.fail("two calls with generators seeded alike gave different losses: pass generator=generator to "
               "torch.randint and torch.randn, so a seeded training run is reproducible.")
    probe = _TimeRecorder(T)
    g = _gen(seed + 2)
    xb = _images((probe_batch, 1, 1, 1), seed + 3)
    with torch.no_grad():
        for _ in range(probe_calls):
            _call(r, fn, probe, d, xb, None, g)
    _t_hist_report(r, torch.cat(probe.seen_t).long(), T)
    r.ok(f"{shown}: MSE between the prediction and the ε behind x_t, as GaussianDiffusion.loss_simple; "
         f"t covers 0 … {T - 1} uniformly over {probe_calls * probe_batch} draws")


def check_train_step(fn: Callable, T: int = 10, shape=(8, 1, 6, 6), seed: int = 0, steps: int = 3) -> None:
    """Check ``fn(model, diffusion, optimizer, x0, loss_fn, generator=None) -> float``: one step of Algorithm 1.

    ``steps`` consecutive calls must leave the weights exactly where zero_grad → loss → backward → step
    leaves a copy of the model, and return each step's loss as a Python float.
    """
    import copy

    r = _Report("train_step")
    d = GaussianDiffusion(_linear_betas(T))
    torch.manual_seed(seed)
    g0 = _gen(seed)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g0) * 0.3)

    class Eps(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = copy.deepcopy(net)

        def forward(self, x, t, y=None):
            return self.net(x) * (1 + t.float().reshape(-1, 1, 1, 1) / T)

    mine, ref = Eps(), Eps()
    opt_mine = torch.optim.SGD(mine.parameters(), lr=0.1)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    calls = [0]

    def loss_fn(model, diffusion, x0, y=None, generator=None):
        calls[0] += 1
        return diffusion.loss_simple(model, x0, y=y, generator=generator)

    shown = "train_step(model, diffusion, optimizer, x0, loss_fn, generator)"
    for k in range(steps):
        x0 = _images(shape, seed + 10 + k)
        before = [p.detach().clone() for p in mine.parameters()]
        calls[0] = 0
        out = _call(r, fn, mine, d, opt_mine, x0.clone(), loss_fn, _gen(seed + 20 + k))
        if calls[0] != 1:
            r.fail(f"loss_fn was called {calls[0]} times in one step; call it once: "
                   f"loss = loss_fn(model, diffusion, x0, generator=generator).")
        opt_ref.zero_grad()
        loss = loss_fn(ref, d, x0, None, _gen(seed + 20 + k))
        loss.backward()
        opt_ref.step()
        loss = loss.detach().item()
        if isinstance(out, torch.Tensor):
            r.fail("return the loss as a Python float, loss.item(): a tensor keeps the whole graph alive "
                   "(memory grows with every step) and cannot be plotted directly.")
        if isinstance(out, bool) or not isinstance(out, (int, float)):
            r.fail(f"{shown} should return the loss as a float (loss.item()); got {type(out).__name__}.")
        if not math.isclose(float(out), loss, rel_tol=1e-5, abs_tol=1e-7):
            r.fail(f"step {k + 1}: returned {float(out):.6g}, but the loss of this step is {loss:.6g}; "
                   f"return loss.item() of the loss you back-propagated.")
        if all(torch.equal(a, b) for a, b in zip(before, mine.parameters())):
            r.fail(f"step {k + 1} did not change the weights: call loss.backward() and then optimizer.step().")
        if not all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(mine.parameters(), ref.parameters())):
            hint = ("the gradients of the previous step were added to this one's: call optimizer.zero_grad() "
                    "at the start of every step." if k > 0 else
                    "the order is optimizer.zero_grad(), loss = loss_fn(…), loss.backward(), optimizer.step().")
            r.fail(f"after step {k + 1} the weights differ from zero_grad → loss → backward → step: {hint}")
    r.ok(f"{shown}: {steps} steps leave the weights where zero_grad → loss → backward → step does, "
         f"and return each loss as a float")


def check_p_sample_step(fn: Callable, T: int = 1000, shape=(4, 1, 8, 8), seed: int = 0, ts=None) -> None:
    """Check ``fn(eps, xt, t, diffusion, noise)`` (t an int) against :meth:`GaussianDiffusion.step` with
    σ_t² = β_t: x_{t-1} = 1/√α_t·(x_t − β_t/√(1 − ᾱ_t)·ε) + σ_t·z, and no noise at t = 0 (Algorithm 2)."""
    r = _Report("p_sample_step")
    betas = _linear_betas(T)
    d = GaussianDiffusion(betas)
    k = _tables64(betas)
    ts = sorted({T - 1, T // 2, min(1, T - 1), 0}, reverse=True) if ts is None else list(ts)
    for j, t in enumerate(ts):
        xt = torch.randn(shape, generator=_gen(seed + 3 * j))
        eps = torch.randn(shape, generator=_gen(seed + 3 * j + 1))
        z = torch.randn(shape, generator=_gen(seed + 3 * j + 2))
        shown = f"p_sample_step(eps, xt {_fmt_shape(shape)}, t={t}, diffusion (T={T}), noise)"
        out = _as_tensor(r, _call(r, fn, eps.clone(), xt.clone(), t, d, z.clone()), shown)
        _check_shape_dtype(r, out, shape, None, shown)
        ref = reference_p_sample_step(eps, xt, t, d, z)
        x64, e64, z64 = xt.double(), eps.double(), z.double()

        def mean(b, a, ab):
            return (x64 - b / (1 - ab).sqrt() * e64) / a.sqrt()

        b, a, ab = k["b"][t], k["a"][t], k["ab"][t]
        bm, am, abm = k["b"][t - 1], k["a"][t - 1], k["ab"][t - 1]      # wraps at t = 0, as the mistake does
        nz = 0.0 if t == 0 else 1.0
        mu = mean(b, a, ab)
        mistakes = {
            f"at t = 0 (the last step) no noise is added: x_0 is the mean. Add σ_t·z only when t > 0; "
            f"you added it at t = {t}.": mu + b.sqrt() * z64 if t == 0 else None,
            "β_{t-1} was used where β_t belongs: index t is the step being undone (0-indexed: "
            "diffusion.betas[t]).": mean(bm, am, abm) + nz * bm.sqrt() * z64,
            "β_{t-1} was used where β_t belongs in the noise term σ_t = √β_t (index t, 0-indexed).":
                mu + nz * bm.sqrt() * z64,
            "β_{t-1} (index t - 1) was used where β_t belongs in the mean: 0-indexed, it is diffusion.betas[t].":
                mean(bm, a, ab) + nz * b.sqrt() * z64,
            "ᾱ_{t-1} (index t - 1) was used where ᾱ_t belongs: √(1 − ᾱ_t) is the noise level of x_t.":
                mean(b, a, abm) + nz * b.sqrt() * z64,
            "α_{t-1} (index t - 1) was used where α_t belongs.": mean(b, am, ab) + nz * b.sqrt() * z64,
            "the noise is scaled by σ_t² = β_t, a variance; scale it by the standard deviation σ_t = √β_t.":
                mu + nz * b * z64,
            "no noise was added: for t > 0, x_{t-1} = μ_θ + σ_t·z with σ_t = √β_t.": mu if t > 0 else None,
            "the variance used is β̃_t (the posterior's); this exercise asks for σ_t² = β_t.":
                d.step(eps, xt, t, noise=z, variance="beta_tilde").sample.double() if t > 0 else None,
            "the prefactor is 1/α_t; it is 1/√α_t.":
                (x64 - b / (1 - ab).sqrt() * e64) / a + nz * b.sqrt() * z64,
            "the noise coefficient is β_t / (1 − ᾱ_t); it is β_t / √(1 − ᾱ_t).":
                (x64 - b / (1 - ab) * e64) / a.sqrt() + nz * b.sqrt() * z64,
            "the mean uses √ᾱ_t where √α_t belongs (one step back, not all the way to x0).":
                mean(b, ab, ab) + nz * b.sqrt() * z64,
        }
        _diagnose(r, out, ref, mistakes, rtol=1e-4, atol=1e-4, what=shown)
    r.ok(f"p_sample_step at t = {ts} (T = {T}): matches GaussianDiffusion.step(…, variance='beta'), "
         f"with no noise at t = 0")


def check_sample_loop(fn: Callable, T: int = 20, shape=(3, 1, 6, 6), seed: int = 0) -> None:
    """Check ``fn(model, diffusion, shape, generator=None, step=p_sample_step) -> x_0`` (Algorithm 2).

    Graded with the package's reverse step (:func:`reference_p_sample_step`) so that a slip in the step
    exercise does not cost this one too. The loop must visit t = T-1, …, 0 once each, draw x_T and each z
    from ``generator`` (x_T first, then one z per step), and return x_0; the result is compared with
    :meth:`GaussianDiffusion.p_sample_loop` (variance "beta") from the same seed.
    """
    r = _Report("sample_loop")
    d = GaussianDiffusion(_linear_betas(T))
    model = _TimeRecorder(T)
    steps: list[int] = []

    def step(eps, xt, t, diffusion, noise):
        tt = int(t) if not isinstance(t, torch.Tensor) else int(t.reshape(-1)[0])
        if not 0 <= tt <= T - 1:
            raise ValueError(f"the step was called with t = {tt}; the loop runs over t = T-1, …, 0 "
                             f"(0-indexed: T-1 = {T - 1} is the first step, 0 the last).")
        steps.append(tt)
        if noise is None or tuple(noise.shape) != tuple(shape):
            raise ValueError(f"pass the step a noise z of shape {tuple(shape)}.")
        return reference_p_sample_step(eps, xt, tt, diffusion, noise)

    shown = f"sample_loop(model, diffusion (T={T}), shape={tuple(shape)}, generator, step)"
    out = _as_tensor(r, _call(r, fn, model, d, tuple(shape), generator=_gen(seed), step=step), shown)
    visited = steps
    if not visited:
        r.fail("the step function was never called: each iteration calls step(eps, x, t, diffusion, z).")
    if visited[0] != T - 1:
        r.fail(f"the loop starts at t = {visited[0]}; it starts at t = T-1 = {T - 1} (x_T is pure noise, and "
               f"0-indexed T-1 is the paper's step T).")
    if visited[-1] == 1:
        r.fail("the loop stops at t = 1: the last step is t = 0 (the paper's step 1), which maps x_1 to x_0. "
               "Loop over range(T - 1, -1, -1).")
    if visited != list(range(T - 1, -1, -1)):
        r.fail(f"the loop visited t = {visited[:5]}…{visited[-3:]} ({len(visited)} steps); it visits T-1, T-2, …, 0, "
               f"once each ({T} steps).")
    mt = [int(t[0]) for t in model.seen_t]
    if mt != visited:
        r.fail("the model must be called once per step with that step's t, as model(x, t) with t a (B,) "
               "int64 tensor filled with the current step.")
    _check_shape_dtype(r, out, shape, None, shown)
    ref = d.p_sample_loop(_TimeRecorder(T), tuple(shape), generator=_gen(seed), variance="beta",
                          clip_x0=False, progress=False)
    if not _close(out, ref, 1e-4, 1e-4):
        r.fail("the loop visits the right steps but x_0 differs from GaussianDiffusion.p_sample_loop from the "
               "same seed: draw x_T = torch.randn(shape, generator=generator) first, then at every step "
               "eps = model(x, t) and z = torch.randn(shape, generator=generator), x = step(eps, x, t, "
               "diffusion, z); return x after the t = 0 step.")
    r.ok(f"{shown}: visits t = {T - 1} … 0 and matches GaussianDiffusion.p_sample_loop (σ_t² = β_t) from the same seed")


# ==============================================================================================
# Lesson 07: the final assessment's pieces (schedule, CFG loss, conditional model, guided sampler)
# ==============================================================================================
def check_linear_schedule(fn: Callable, T: int = 10) -> None:
    """Check ``fn(T) -> (betas, alphas_cumprod)``: :func:`check_linear_betas` on the first,
    :func:`check_alphas_cumprod` on the second (both float64, shape (T,))."""
    r = _Report("linear_schedule")
    out = _call(r, fn, T)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        r.fail(f"linear_schedule({T}) should return a pair (betas, alphas_cumprod); got "
               f"{type(out).__name__}{f' of length {len(out)}' if isinstance(out, (tuple, list)) else ''}.")
    check_linear_betas(lambda T_: _call(r, fn, T_)[0], T)
    check_alphas_cumprod(lambda betas: _call(r, fn, T)[1], T)


class _LossProbe(torch.nn.Module):
    """A stand-in ε-model that records every call: ε_θ(x_t, t, y) = 0.5·x_t + 0.001·t (one parameter)."""

    def __init__(self, null_class: int = 10):
        super().__init__()
        self.null_class = null_class
        self.scale = torch.nn.Parameter(torch.tensor(0.5))
        self.calls: list[tuple[torch.Tensor, torch.Tensor, object]] = []

    def forward(self, x, t=None, y=None):
        self.calls.append((x.detach().clone(), t if not isinstance(t, torch.Tensor) else t.detach().clone(),
                           y if not isinstance(y, torch.Tensor) else y.detach().clone()))
        tt = torch.as_tensor(t, dtype=torch.float32).reshape(-1, *([1] * (x.ndim - 1))) if t is not None else 0.0
        return self.scale * x + 0.001 * tt


def check_cfg_loss(fn: Callable, p: float = 0.1, T: int = 1000, batch: int = 256, calls: int = 20,
                   seed: int = 0) -> None:
    """Check ``fn(model, diffusion, x0, y, generator) -> scalar``: L_simple (Ho et al. 2020, eq. 14) with
    classifier-free guidance's context mask (each label → ``model.null_class`` with probability ``p``).

    A recording stand-in model sees the learner's x_t, t and labels; from x_t and x0 the check recovers
    the noise ε the learner drew and compares the returned loss with mean((ε_θ − ε)²). Over
    ``calls × batch`` labels the share replaced by the null class must be p within 4.5 binomial
    standard deviations, and the kept labels must be the given ones.
    """
    r = _Report("cfg_loss")
    d = GaussianDiffusion(_linear_betas(T))
    model = _LossProbe(null_class=10)
    y_all, dropped, kept_ok, ts = [], 0, True, []
    shown = f"cfg_loss(model, diffusion (T={T}), x0 ({batch}, 1, 8, 8), y, generator)"
    for i in range(calls):
        x0 = _images((batch, 1, 8, 8), seed + 10 * i)
        y = torch.randint(0, 10, (batch,), generator=_gen(seed + 10 * i + 1))
        model.calls.clear()
        g = _gen(seed + 10 * i + 2)
        loss = _call(r, fn, model, d, x0.clone(), y.clone(), g)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            r.fail(f"{shown} should return a scalar tensor (a 0-d loss); got "
                   f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else ' of shape ' + str(tuple(loss.shape))}.")
        if i == 0 and not loss.requires_grad:
            r.fail("the loss carries no gradient: compute it from the model's output with torch operations "
                   "(no .item(), no torch.no_grad()).")
        if len(model.calls) != 1:
            r.fail(f"{shown} called the model {len(model.calls)} times; L_simple needs exactly one call, "
                   f"model(x_t, t, y_masked).")
        xt, t, ym = model.calls[0]
        if ym is None:
            r.fail("the model was called without labels: pass the (context-masked) labels, model(x_t, t, y).")
        if not isinstance(t, torch.Tensor) or t.shape != (batch,) or t.is_floating_point():
            r.fail(f"t should be an int64 tensor of shape (B,) = ({batch},), one timestep per image; got "
                   f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}.")
        if int(t.min()) < 0 or int(t.max()) > T - 1:
            r.fail(f"t must lie in [0, T-1] = [0, {T - 1}] (0-indexed); got values from {int(t.min())} to "
                   f"{int(t.max())}. torch.randint(0, T, (B,)) draws them.")
        ts.append(t)
        ym = torch.as_tensor(ym)
        if ym.shape != (batch,):
            r.fail(f"the labels passed to the model should have shape ({batch},); got {tuple(ym.shape)}.")
        is_null = ym == model.null_class
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
            with torch.no_grad():
                pred = model.scale.double() * xt.double() + 0.001 * t.double().reshape(-1, 1, 1, 1)
            want = ((pred - eps) ** 2).mean()
            got = float(loss.detach())
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
    g1, g2 = _gen(seed + 7), _gen(seed + 7)
    x0, y = _images((8, 1, 8, 8), seed + 8), torch.randint(0, 10, (8,), generator=_gen(seed + 9))
    l1, l2 = _call(r, fn, model, d, x0, y, g1), _call(r, fn, model, d, x0, y, g2)
    if float(torch.as_tensor(l1).detach()) != float(torch.as_tensor(l2).detach()):
        r.fail("two calls with identically seeded generators gave different losses: draw t, ε and the mask "
               "with generator=generator (torch.randint(..., generator=generator), torch.randn(..., "
               "generator=generator), torch.rand(..., generator=generator)).")
    r.ok(f"{shown}: mean((ε_θ − ε)²) with x_t from eq. 4, t uniform in [0, {T - 1}], {dropped / n:.1%} of the "
         f"labels → the null class (p = {p}), reproducible with the generator")


def _conditional_copy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy whose all-zero parameters (zero-initialised output layers) get small seeded random values."""
    import copy

    m = copy.deepcopy(model).cpu().eval()
    g = _gen(seed)
    with torch.no_grad():
        for prm in m.parameters():
            if prm.is_floating_point() and not bool(prm.abs().sum()):
                prm.copy_(0.05 * torch.randn(prm.shape, generator=g))
    return m


def check_conditional_model(model, max_parameters: int = 600_000, image_size: int = 16, num_classes: int = 10,
                            seed: int = 0) -> None:
    """Check the assessment's model: a course ``UNet`` with an int ``null_class`` (class-conditional), output
    shape = input shape, outputs that change with the label, and at most ``max_parameters`` parameters.

    Zero-initialised layers (the U-Net's ``conv_out``) make an untrained model output 0 for every label,
    so the label test runs on a copy whose all-zero parameters get small random values.
    """
    from ..models import UNetConfig, count_parameters

    r = _Report("build_model")
    if not isinstance(model, torch.nn.Module):
        r.fail(f"build_model() should return a torch.nn.Module (a course_utils UNet); got {type(model).__name__}.")
    null = getattr(model, "null_class", None)
    if isinstance(null, bool) or not isinstance(null, int):
        r.fail("the model is not class-conditional: it has no int null_class. Build "
               "UNet(UNetConfig(channels=(32, 64), num_classes=10)); its null_class is 10 (the label ∅).")
    if null < num_classes:
        r.fail(f"null_class = {null} is one of the {num_classes} real classes; it must be a label of its own "
               f"(num_classes={num_classes} gives null_class = {num_classes}).")
    if not isinstance(getattr(model, "config", None), UNetConfig):
        r.fail("the model has no UNetConfig `config`, so save_checkpoint cannot store it: build it from "
               "course_utils.models.UNet(UNetConfig(...)).")
    n = count_parameters(model)
    if n > max_parameters:
        r.fail(f"the model has {n:,} parameters, more than the budget of {max_parameters:,}: CPU training would "
               f"not fit the assessment's 15 minutes. Use narrower channels, e.g. (32, 64).")
    m = _conditional_copy(model, seed)
    B = 4
    x = torch.randn(B, 1, image_size, image_size, generator=_gen(seed + 1))
    t = torch.tensor([0, 250, 500, 999])[:B]
    with torch.no_grad():
        out = _call(r, m, x, t, torch.arange(B))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
            r.fail(f"model(x {_fmt_shape(x.shape)}, t, y) should return ε with the input's shape; got "
                   f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.")
        other = _call(r, m, x, t, (torch.arange(B) + 5) % num_classes)
        nulls = _call(r, m, x, t, torch.full((B,), null))
    if torch.allclose(out, other) or torch.allclose(out, nulls):
        r.fail("changing the label (or giving the null class) does not change the output: the model ignores y.")
    r.ok(f"the model is class-conditional (null_class = {null}), maps {_fmt_shape(x.shape)} to "
         f"{_fmt_shape(out.shape)}, its output depends on the label, {n:,} parameters ≤ {max_parameters:,}")


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


def check_guided_sample(fn: Callable, w: float = 2.0, num_steps: int = 8, batch: int = 6, T: int = 100,
                        seed: int = 0) -> None:
    """Check ``fn(model, diffusion, labels, w, num_steps, generator)`` (16 px images) against the package's
    ``diffusion.ddim_sample_loop(model, shape, num_steps=num_steps, y=labels, w=w, generator=…)`` — DDIM
    (η = 0) with ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅) — on a small random conditional U-Net, same seed.
    """
    from ..models import UNet, UNetConfig

    r = _Report("guided_sample")
    torch.manual_seed(seed)
    model = _conditional_copy(UNet(UNetConfig(channels=(8, 16), num_classes=10)), seed)
    d = GaussianDiffusion(_linear_betas(T))
    labels = torch.randint(0, 10, (batch,), generator=_gen(seed + 1))
    shown = f"guided_sample(model, diffusion (T={T}), labels {labels.tolist()}, w={w}, num_steps={num_steps}, generator)"
    out = _as_tensor(r, _call(r, fn, model, d, labels.clone(), w, num_steps, _gen(seed + 2)), shown)
    _check_shape_dtype(r, out, (batch, 1, 16, 16), None, shown)
    ref = d.ddim_sample_loop(model, (batch, 1, 16, 16), num_steps=num_steps, y=labels, w=w,
                             generator=_gen(seed + 2), progress=False)

    def run(combine, null_label=None):
        return _reference_cfg_ddim(model, d, labels, w, num_steps, _gen(seed + 2), 16, combine, null_label)

    cfg = lambda c, u, w_: (1 + w_) * c - w_ * u                                  # noqa: E731

    mistakes = {}
    if not _close(out, ref, 1e-4, 1e-4):                 # name the mistake (runs only on a wrong answer)
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
    _diagnose(r, out, ref, mistakes, rtol=1e-4, atol=1e-4, what=shown)
    r.ok(f"{shown}: matches diffusion.ddim_sample_loop(..., y=labels, w={w}) (DDIM, η = 0, "
         f"ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅))")


__all__ += ["check_linear_schedule", "check_cfg_loss", "check_conditional_model", "check_guided_sample"]


# ==============================================================================================
# Lesson 06: classifier-free guidance — the context mask, the guided ε, a guided sampler
# ==============================================================================================
from ..diffusion import guided_eps as _guided_eps  # noqa: E402
from ..models import UNet as _UNet  # noqa: E402

__all__ += ["check_drop_labels", "check_guided_eps", "check_guided_sampler", "tiny_conditional_unet"]


def tiny_conditional_unet(num_classes: int = 10, seed: int = 0) -> "torch.nn.Module":
    """A seeded, untrained class-conditional :class:`course_utils.models.UNet` (channels (8, 16)) for checks.

    Its zero-initialised output conv is re-drawn so the predictions are not all zero, and the class
    embedding (rows 0 … num_classes − 1 the classes, row num_classes the null class ∅) makes every label
    give a different ε. The global random state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _UNet(channels=(8, 16), num_classes=num_classes)
        torch.nn.init.normal_(model.conv_out.weight, std=0.2)
        torch.nn.init.normal_(model.conv_out.bias, std=0.1)
    return model.eval()


@contextlib.contextmanager
def _one_thread():
    """Run a tiny model on one CPU thread (thread start-up costs more than it saves on 8×8 images)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _drop_rate_tolerance(p: float, n: int) -> float:
    """Five binomial standard deviations of a fraction of n draws (a false alarm about once in 3.5 million)."""
    return 5.0 * math.sqrt(p * (1.0 - p) / n) + 1e-12


def check_drop_labels(fn: Callable, p: float = 0.1, null_class: int = 10, batch: int = 20000,
                      seed: int = 0) -> None:
    """Check ``fn(y, p, null_class, generator)``: each label becomes ``null_class`` with probability p.

    The labels are ``batch`` seeded classes in {0, …, null_class − 1}; the fraction dropped must be p within
    five binomial standard deviations (p = 0 and p = 1 exactly), every other label unchanged, ``y`` not
    changed in place, and the draws must come from ``generator`` (same seed, same mask; new seed, new mask).
    :func:`course_utils.models.drop_labels` is the reference.
    """
    r = _Report("drop_labels")
    y = torch.randint(0, null_class, (batch,), generator=_gen(seed))
    y_in = y.clone()
    shown = f"drop_labels(y with {batch} labels, p={p}, null_class={null_class}, generator)"
    out = _as_tensor(r, _call(r, fn, y_in, p, null_class, _gen(seed + 1)), shown)
    if not torch.equal(y_in, y):
        r.fail("your function changed y in place; drop the labels of a copy (y.clone()) and return it.")
    _check_shape_dtype(r, out, (batch,), None, shown)
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
    tol = _drop_rate_tolerance(p, batch)
    if abs(rate - p) > tol:
        if 0 < p < 1 and abs(rate - (1 - p)) <= _drop_rate_tolerance(1 - p, batch):
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
    again = _call(r, fn, y.clone(), p, null_class, _gen(seed + 1))
    if not isinstance(again, torch.Tensor) or not torch.equal(again.long(), out):
        r.fail("two calls with generators seeded alike gave different masks: draw the random numbers with "
               "the generator argument (torch.rand(..., generator=generator)).")
    if 0 < p < 1:
        other = _call(r, fn, y.clone(), p, null_class, _gen(seed + 2))
        if isinstance(other, torch.Tensor) and torch.equal(other.long(), out):
            r.fail("a differently seeded generator gave exactly the same mask: the mask must be random, "
                   "drawn with the generator argument, not fixed.")
    r.ok(f"{shown}: {n_drop} labels ({rate:.3f}) became ∅ = {null_class} (expected p = {p:g} ± {tol:.3f}), "
         f"the others unchanged, reproducible with the generator")


@_one_thread()
def check_guided_eps(fn: Callable, w: float = 2.0, num_classes: int = 10, batch: int = 4, size: int = 8,
                     seed: int = 0) -> None:
    """Check ``fn(model, x, t, y, w)`` = (1 + w)·ε(x, y) − w·ε(x, ∅) (Ho & Salimans 2021, eq. 6).

    The model is :func:`tiny_conditional_unet` with ``num_classes`` classes (∅ = ``model.null_class``);
    :func:`course_utils.diffusion.guided_eps` is the reference. Also checks that w = 0 gives the conditional
    prediction ε(x, y) and w = −1 the unconditional one ε(x, ∅).
    """
    r = _Report("guided_eps")
    model = tiny_conditional_unet(num_classes, seed)
    null = model.null_class
    x = torch.randn(batch, 1, size, size, generator=_gen(seed + 1))
    t = torch.randint(0, 1000, (batch,), generator=_gen(seed + 2))
    y = torch.randint(0, num_classes, (batch,), generator=_gen(seed + 3))
    if num_classes > 1:
        y[0] = 0
        y[-1] = num_classes - 1
    with torch.no_grad():
        eps_c = model(x, t, y)
        eps_u = model(x, t, torch.full_like(y, null))
        eps_0 = model(x, t, torch.zeros_like(y))
    shown_w = {}

    def run(w_):
        shown = f"guided_eps(model, x {_fmt_shape(x.shape)}, t, y, w={w_:g})"
        shown_w[w_] = shown
        args = (model, x.clone(), t.clone(), y.clone(), w_)
        with torch.no_grad():
            out = _as_tensor(r, _call(r, fn, *args), shown)
        if not (torch.equal(args[1], x) and torch.equal(args[2], t) and torch.equal(args[3], y)):
            r.fail("your function changed x, t or y in place; build new tensors instead.")
        _check_shape_dtype(r, out, x.shape, None, shown)
        return out.detach()

    mistakes_at = lambda w_: {                                                     # noqa: E731
        f"w = {w_:g} gave w·ε(x, y) + (1 − w)·ε(x, ∅): that mixes the two with weights w and 1 − w, so w = 0 "
        f"would be the unconditional model. Ho & Salimans' eq. 6 is ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅): w = 0 "
        f"is the plain conditional prediction.": w_ * eps_c + (1 - w_) * eps_u,
        "the sign of w is swapped: (1 − w)·ε(x, y) + w·ε(x, ∅) pushes the sample *towards* the unconditional "
        "prediction. Use ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅).": (1 - w_) * eps_c + w_ * eps_u,
        "the conditional and unconditional predictions are swapped: ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅), the "
        "label y in the first term and the null class ∅ in the second.": (1 + w_) * eps_u - w_ * eps_c,
        f"the unconditional prediction used label 0 (T-shirt/top, a real class) or a zero vector: 'no label' "
        f"is the null class ∅ = model.null_class (here {null}), the learned extra row of the class "
        f"embedding: model(x, t, torch.full_like(y, model.null_class)).": (1 + w_) * eps_c - w_ * eps_0,
        "this is the conditional prediction ε(x, y) alone: the guidance term −w·(ε(x, ∅) − ε(x, y)) is "
        "missing.": eps_c,
        "this is the unconditional prediction ε(x, ∅) alone: the label is never used.": eps_u,
    }
    out = run(float(w))
    with torch.no_grad():
        ref = _guided_eps(model, x, t, y, float(w))
    _diagnose(r, out, ref, mistakes_at(float(w)) if w not in (0, -1) else {}, rtol=1e-4, atol=1e-5,
              what=shown_w[float(w)])
    out0 = run(0.0)
    _diagnose(r, out0, eps_c, {"with w = 0 the guided prediction must be the conditional one, ε(x, y); yours "
                               "is the unconditional ε(x, ∅). Check the weights: (1 + w) on ε(x, y), −w on "
                               "ε(x, ∅).": eps_u}, rtol=1e-4, atol=1e-5, what=shown_w[0.0])
    out_m1 = run(-1.0)
    _diagnose(r, out_m1, eps_u, {"with w = −1 the guided prediction must be the unconditional one, ε(x, ∅); "
                                 "yours is ε(x, y). Check the weights: (1 + w) on ε(x, y), −w on ε(x, ∅).": eps_c},
              rtol=1e-4, atol=1e-5, what=shown_w[-1.0])
    r.ok(f"{shown_w[float(w)]}: (1 + w)·ε(x, y) − w·ε(x, ∅) with ∅ = model.null_class = {null}; "
         f"w = 0 gives ε(x, y) and w = −1 gives ε(x, ∅); matches course_utils.diffusion.guided_eps")


@_one_thread()
def check_guided_sampler(fn: Callable, w: float = 2.0, y=3, num_steps: int = 10, T: int = 100,
                         num_classes: int = 10, batch: int = 3, size: int = 8, seed: int = 0) -> None:
    """Check ``fn(model, diffusion, x_T, y, w, num_steps)`` → x_0 against the package's guided DDIM (η = 0).

    ``y`` is an int (one class for the whole batch, passed on as a (B,) int64 tensor) or a (B,) tensor. The
    reference is ``diffusion.ddim_sample_loop(model, x_T=x_T, num_steps=num_steps, y=y, w=w)`` on
    :func:`tiny_conditional_unet` with a linear schedule of T steps.
    """
    from ..schedules import linear_betas

    r = _Report("guided sampler")
    model = tiny_conditional_unet(num_classes, seed)
    diffusion = GaussianDiffusion(linear_betas(T))
    x_T = torch.randn(batch, 1, size, size, generator=_gen(seed + 1))
    y = torch.full((batch,), y, dtype=torch.long) if isinstance(y, int) else torch.as_tensor(y).long()
    label = f"y={y.tolist()}" if y.unique().numel() > 1 else f"y={int(y[0])} for all {batch}"
    shown = f"sampler(model, diffusion (T={T}), x_T {_fmt_shape(x_T.shape)}, {label}, w={w:g}, num_steps={num_steps})"
    args = (model, diffusion, x_T.clone(), y.clone(), w, num_steps)
    with torch.no_grad():
        out = _as_tensor(r, _call(r, fn, *args), shown)
    if not (torch.equal(args[2], x_T) and torch.equal(args[3], y)):
        r.fail("your sampler changed x_T or y in place; start with x = x_T.clone().")
    _check_shape_dtype(r, out, x_T.shape, None, shown)
    out = out.detach()

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
    again = _call(r, fn, model, diffusion, x_T.clone(), y.clone(), w, num_steps)
    if isinstance(again, torch.Tensor) and not torch.allclose(again.detach(), out, atol=1e-5):
        r.fail("two calls with the same x_T gave different samples: start from x = x_T and use DDIM with η = 0 "
               "(diffusion.ddim_step(eps, x, t, t_prev), which adds no noise).")
    _diagnose(r, out, ref, mistakes, rtol=1e-3, atol=1e-4, what=shown)
    r.ok(f"{shown}: matches diffusion.ddim_sample_loop(model, x_T=x_T, num_steps={num_steps}, y=y, w={w:g}) "
         f"after {len(steps)} DDIM steps")
