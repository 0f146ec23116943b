"""Checks for lesson 02 (forward diffusion): schedules, the noising step, q(x_t | x_0), the SNR, Monte-Carlo.

Each exercise's check is three steps (see :mod:`course_utils.checks._harness`): ``make_<name>`` builds
seeded inputs, ``run_<name>`` calls the learner's function on them, ``judge_<name>`` compares with the
package and names the classic mistake; ``check_<name>`` runs all three.
"""
from __future__ import annotations

import torch

from ..diffusion import GaussianDiffusion, extract
from ..schedules import make_betas
from . import _harness as h

__all__ = ["check_q_sample"]


# ----------------------------------------------------------------------------------------------
# Exercise: q_sample  (q(x_t | x_0), eq. 4 of Ho et al. 2020)
# ----------------------------------------------------------------------------------------------
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


def run_q_sample(inputs: dict, fn) -> dict:
    first, again = h.call_twice(fn, lambda: (inputs["x0"].clone(), inputs["t"].clone(),
                                             inputs["alphas_cumprod"].clone(), inputs["noise"].clone()))
    return {"out": first, "again": again}


def judge_q_sample(inputs: dict, outputs: dict) -> None:
    r = h.Report("q_sample")
    T, schedule, shape, t = inputs["T"], inputs["schedule"], inputs["shape"], inputs["t"]
    x0, noise = inputs["x0"], inputs["noise"]
    d = GaussianDiffusion(make_betas(schedule, T))
    B = shape[0]
    shown = f"q_sample(x0 {h.fmt_shape(shape)}, t={t.tolist()}, alphas_cumprod ({schedule}, T={T}), noise)"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    h.check_shape_dtype(r, out, shape, torch.float32, shown, " Keep the dtype of x0.")
    ref = d.q_sample(x0, t, noise=noise)
    view = (B,) + (1,) * (len(shape) - 1)
    a_bar = d.alphas_cumprod

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
    doc="Check ``fn(x0, t, alphas_cumprod, noise)`` against :meth:`GaussianDiffusion.q_sample`."))
