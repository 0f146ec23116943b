"""Checks for lesson 04 (training and sampling): L_simple, one training step (Algorithm 1), the reverse
step and the sampling loop (Algorithm 2).

Each exercise's check is three steps (see :mod:`course_utils.checks._harness`): ``make_<name>`` builds
seeded inputs, ``run_<name>`` calls the learner's function on them with a recording stand-in model
(:class:`~course_utils.checks._harness.Recorder`) and keeps what it saw as plain data, ``judge_<name>``
recomputes the package's answer from the inputs and the recorded x_t / t and names the classic mistake;
``check_<name>`` runs all three.
"""
from __future__ import annotations

import math

import torch

from ..diffusion import GaussianDiffusion
from ..schedules import linear_betas
from . import _harness as h

__all__ = ["check_loss_simple", "check_train_step", "check_p_sample_step", "check_sample_loop",
           "reference_loss_simple", "reference_train_step", "reference_p_sample_step", "reference_sample_loop"]

_W, _C = 0.5, 0.3          # the recording model's ε_θ(x_t, t) = w·x_t + c·t/T

# The package's answers to "L_simple for a batch", unavailable while a learner's loss runs: loss_simple, the
# draws-and-prediction it is built on, and loss_vlb (which is L_simple when its weights are all ones).
LOSS_SIMPLE_ANSWERS = ("course_utils.diffusion.GaussianDiffusion.loss_simple",
                       "course_utils.diffusion.GaussianDiffusion._noise_prediction",
                       "course_utils.likelihood.loss_vlb")


def reference_loss_simple(model, diffusion, x0, y=None, generator=None) -> torch.Tensor:
    """L_simple for a batch (Algorithm 1): :meth:`GaussianDiffusion.loss_simple`, under train's loss_fn signature."""
    return diffusion.loss_simple(model, x0, y=y, generator=generator)


def reference_train_step(model, diffusion, optimizer, x0, loss_fn, generator=None) -> float:
    """One step of Algorithm 1 under the exercise's signature: zero_grad → loss → backward → step; the loss
    as a float."""
    optimizer.zero_grad()
    loss = loss_fn(model, diffusion, x0, generator=generator)
    loss.backward()
    optimizer.step()
    return loss.item()


def reference_p_sample_step(eps, xt, t: int, diffusion, noise) -> torch.Tensor:
    """One DDPM reverse step with σ_t² = β_t (Algorithm 2): :meth:`GaussianDiffusion.step` (variance "beta")."""
    return diffusion.step(eps, xt, t, noise=noise, variance="beta", clip_x0=False).sample


def _recorder_output(inputs: dict, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the recording model returned for ``(x_t, t)``: w·x_t + c·t/T."""
    tt = t.float().reshape(-1, *((1,) * (xt.ndim - 1)))
    return torch.tensor(inputs["w"]) * xt + torch.tensor(inputs["c"]) * tt / inputs["T"]


# ----------------------------------------------------------------------------------------------
# Exercise: loss_simple  (Algorithm 1, eq. 14)
# ----------------------------------------------------------------------------------------------
def make_loss_simple(T: int = 10, shape=(8, 1, 4, 4), seed: int = 0, probe_calls: int = 300,
                     probe_batch: int = 64) -> dict:
    return {"T": T, "shape": tuple(shape), "seed": seed, "probe_calls": probe_calls, "probe_batch": probe_batch,
            "w": _W, "c": _C, "x0": h.images(shape, seed),
            "y": torch.randint(0, 10, (shape[0],), generator=h.gen(seed + 4)),
            "probe_x0": h.images((probe_batch, 1, 1, 1), seed + 3)}


def run_loss_simple(inputs: dict, fn) -> dict:
    T, seed = inputs["T"], inputs["seed"]
    d = GaussianDiffusion(linear_betas(T))
    x0 = inputs["x0"]
    model = h.Recorder(T, inputs["w"], inputs["c"])
    out, loss = h.call_keep(fn, model, d, x0.clone(), None, h.gen(seed + 1))
    seen = model.record()
    is_tensor = isinstance(loss, torch.Tensor)
    requires_grad = bool(is_tensor and loss.requires_grad)
    grad_w = None
    if requires_grad and loss.ndim == 0:
        try:
            loss.backward()
            grad_w = None if model.w.grad is None else float(model.w.grad)
        except Exception:  # the judge reports "no gradient reached the model"
            grad_w = None
    again = h.call(fn, h.Recorder(T, inputs["w"], inputs["c"]), d, x0.clone(), None, h.gen(seed + 1))
    labelled = h.Recorder(T, inputs["w"], inputs["c"])
    with_y = h.call(fn, labelled, d, x0.clone(), inputs["y"].clone(), h.gen(seed + 1))
    probe = h.Recorder(T, inputs["w"], inputs["c"])
    g = h.gen(seed + 2)
    xb = inputs["probe_x0"]
    probe_notes: list[str] = []
    probe_error = None
    with torch.no_grad():
        for _ in range(inputs["probe_calls"]):
            o = h.call(fn, probe, d, xb, None, g)
            probe_notes += [n for n in o["notes"] if n not in probe_notes]
            if o["error"] is not None:
                probe_error = o["error"]
                break
    probe_t = torch.cat(probe.seen_t).long() if probe.seen_t else torch.zeros(0, dtype=torch.long)
    return {"out": out, "seen": seen, "requires_grad": requires_grad, "grad_w": grad_w, "again": again,
            "with_y": with_y, "seen_with_y": labelled.record()["y"],
            "probe": {"value": None, "error": probe_error, "notes": probe_notes}, "probe_t": probe_t}


def judge_loss_simple(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("loss_simple")
    T, shape, x0 = inputs["T"], inputs["shape"], inputs["x0"]
    d = GaussianDiffusion(linear_betas(T))
    shown = f"loss_simple(model, diffusion (T={T}), x0 {h.fmt_shape(shape)}, None, generator)"
    loss = h.as_tensor(r, h.value(r, outputs["out"]), "the loss")
    if loss.ndim != 0:
        r.fail(f"{shown} should return a scalar (0-d) tensor, the mean over batch and pixels; got shape "
               f"{tuple(loss.shape)}. Use F.mse_loss(eps_pred, eps) (it averages).")
    seen_t, seen_x = outputs["seen"]["t"], outputs["seen"]["x"]
    if not seen_t:
        r.fail("the model was never called: predict the noise with eps_pred = model(x_t, t).")
    if len(seen_t) != 1:
        r.fail(f"the model was called {len(seen_t)} times; call it once, on the whole batch.")
    t, xt = seen_t[0], seen_x[0]
    if t.is_floating_point() or t.shape != (shape[0],):
        r.fail(f"t should be an int64 tensor of shape ({shape[0]},), one timestep per image; got "
               f"{t.dtype} of shape {tuple(t.shape)}.")
    if xt.shape != x0.shape:
        r.fail(f"the model got x_t of shape {tuple(xt.shape)}; it should have x0's shape {tuple(x0.shape)}.")
    if int(t.min()) < 0 or int(t.max()) > T - 1:
        h.t_range_report(r, t, T)
    if shape[0] >= 8 and T > 1 and bool((t == t[0]).all()):
        r.fail(f"all {shape[0]} images got the same t = {int(t[0])}: draw one t per image, "
               f"torch.randint(0, T, (B,)), so every batch mixes noise levels (Algorithm 1).")
    if not outputs["requires_grad"]:
        r.fail("the loss does not carry gradients (did you use torch.no_grad(), .item() or .detach()?): "
               "training needs loss.backward().")
    with torch.no_grad():
        out = _recorder_output(inputs, xt, t)
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
    if not h.close(loss.reshape(()), ref, 1e-4, 1e-6) and not 0.3 < float(eps.std()) < 3:
        r.fail("x_t is not √ᾱ_t·x0 + √(1 − ᾱ_t)·ε for a standard normal ε: build it with "
               "diffusion.q_sample(x0, t, noise=eps).")
    h.diagnose(r, loss.reshape(()), ref, mistakes, rtol=1e-4, atol=1e-6, what=f"{shown}")
    if outputs["grad_w"] is None or outputs["grad_w"] == 0:
        r.fail("no gradient reached the model's parameters: the loss must be computed from model(x_t, t).")
    h.same_again(r, loss, outputs["again"], "two calls with generators seeded alike gave different losses: pass "
                 "generator=generator to torch.randint and torch.randn, so a seeded training run is reproducible.",
                 rtol=1e-5, atol=1e-8)
    h.value(r, outputs["with_y"])
    y, seen_y = inputs["y"], outputs["seen_with_y"]
    if seen_y and all(v is None for v in seen_y):
        r.fail("called with labels y, your loss did not pass them to the model: when y is given, predict "
               "eps_pred = model(x_t, t, y) (the class-conditional models of lessons 06 and 07 need them).")
    if seen_y and not all(v is not None and v.shape == y.shape and torch.equal(v.long(), y) for v in seen_y):
        r.fail("called with labels y, the model received other labels: pass y on unchanged, "
               "eps_pred = model(x_t, t, y).")
    h.value(r, outputs["probe"])
    h.t_range_report(r, outputs["probe_t"], T)
    r.ok(f"{shown}: MSE between the prediction and the ε behind x_t, as GaussianDiffusion.loss_simple; "
         f"t covers 0 … {T - 1} uniformly over {inputs['probe_calls'] * inputs['probe_batch']} draws")


check_loss_simple = h.register(h.Check(
    "loss_simple", make_loss_simple, run_loss_simple, judge_loss_simple, reference=reference_loss_simple,
    blocks=LOSS_SIMPLE_ANSWERS,
    doc="""Check ``fn(model, diffusion, x0, y=None, generator=None)`` — L_simple for a batch (Algorithm 1).

    A recording model sees every (x_t, t, y) the learner feeds it: the loss must be the mean squared error
    between the model's output and the ε that built x_t from x0 (eq. 14), t must cover {0, …, T-1}
    uniformly (probed over ``probe_calls`` calls), the loss must carry gradients, the same generator
    seed must give the same loss, and labels ``y``, when given, must reach the model.
    """))


# ----------------------------------------------------------------------------------------------
# Exercise: train_step  (one step of Algorithm 1)
# ----------------------------------------------------------------------------------------------
def make_train_step(T: int = 10, shape=(8, 1, 6, 6), seed: int = 0, steps: int = 3) -> dict:
    g0 = h.gen(seed)
    weight = torch.randn((1, 1, 3, 3), generator=g0) * 0.3
    bias = torch.randn((1,), generator=g0) * 0.3
    return {"T": T, "shape": tuple(shape), "seed": seed, "steps": steps, "lr": 0.1,
            "weight": weight, "bias": bias, "x0": [h.images(shape, seed + 10 + k) for k in range(steps)]}


class _Eps(torch.nn.Module):
    """The train-step check's ε-model: a seeded 3×3 conv, scaled by 1 + t/T."""

    def __init__(self, inputs: dict):
        super().__init__()
        self.T = inputs["T"]
        self.net = torch.nn.Conv2d(1, 1, 3, padding=1)
        with torch.no_grad():
            self.net.weight.copy_(inputs["weight"])
            self.net.bias.copy_(inputs["bias"])

    def forward(self, x, t, y=None):
        return self.net(x) * (1 + t.float().reshape(-1, 1, 1, 1) / self.T)


def _train_loss_fn(calls: list[int] | None = None):
    def loss_fn(model, diffusion, x0, y=None, generator=None):
        if calls is not None:
            calls[0] += 1
        return diffusion.loss_simple(model, x0, y=y, generator=generator)
    return loss_fn


def run_train_step(inputs: dict, fn) -> dict:
    torch.manual_seed(inputs["seed"])               # as before the split: the global state after the check
    d = GaussianDiffusion(linear_betas(inputs["T"]))
    mine = _Eps(inputs)
    opt = torch.optim.SGD(mine.parameters(), lr=inputs["lr"])
    calls = [0]
    loss_fn = _train_loss_fn(calls)
    steps = []
    for k in range(inputs["steps"]):
        before = [p.detach().clone() for p in mine.parameters()]
        calls[0] = 0
        out, raw = h.call_keep(fn, mine, d, opt, inputs["x0"][k].clone(), loss_fn, h.gen(inputs["seed"] + 20 + k))
        steps.append({"out": out, "loss_fn_calls": calls[0], "returned_type": type(raw).__name__,
                      "returned_tensor": isinstance(raw, torch.Tensor),
                      "returned_number": isinstance(raw, (int, float)) and not isinstance(raw, bool),
                      "before": before, "after": [p.detach().clone() for p in mine.parameters()]})
        if out["error"] is not None:
            break
    return {"steps": steps}


def judge_train_step(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("train_step")
    d = GaussianDiffusion(linear_betas(inputs["T"]))
    with torch.random.fork_rng(devices=[]):
        ref = _Eps(inputs)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=inputs["lr"])
    loss_fn = _train_loss_fn()
    shown = "train_step(model, diffusion, optimizer, x0, loss_fn, generator)"
    for k, step in enumerate(outputs["steps"]):
        out = h.value(r, step["out"])
        if step["loss_fn_calls"] != 1:
            r.fail(f"loss_fn was called {step['loss_fn_calls']} times in one step; call it once: "
                   f"loss = loss_fn(model, diffusion, x0, generator=generator).")
        opt_ref.zero_grad()
        with torch.random.fork_rng(devices=[]):
            loss = loss_fn(ref, d, inputs["x0"][k], None, h.gen(inputs["seed"] + 20 + k))
        loss.backward()
        opt_ref.step()
        loss = loss.detach().item()
        if step["returned_tensor"]:
            r.fail("return the loss as a Python float, loss.item(): a tensor keeps the whole graph alive "
                   "(memory grows with every step) and cannot be plotted directly.")
        if not step["returned_number"] or isinstance(out, bool) or not isinstance(out, (int, float)):
            r.fail(f"{shown} should return the loss as a float (loss.item()); got {step['returned_type']}.")
        if not math.isclose(float(out), loss, rel_tol=1e-5, abs_tol=1e-7):
            r.fail(f"step {k + 1}: returned {float(out):.6g}, but the loss of this step is {loss:.6g}; "
                   f"return loss.item() of the loss you back-propagated.")
        if all(torch.equal(a, b) for a, b in zip(step["before"], step["after"])):
            r.fail(f"step {k + 1} did not change the weights: call loss.backward() and then optimizer.step().")
        if not all(a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-7)
                   for a, b in zip(step["after"], ref.parameters())):
            hint = ("the gradients of the previous step were added to this one's: call optimizer.zero_grad() "
                    "at the start of every step." if k > 0 else
                    "the order is optimizer.zero_grad(), loss = loss_fn(…), loss.backward(), optimizer.step().")
            r.fail(f"after step {k + 1} the weights differ from zero_grad → loss → backward → step: {hint}")
    r.ok(f"{shown}: {inputs['steps']} steps leave the weights where zero_grad → loss → backward → step does, "
         f"and return each loss as a float")


check_train_step = h.register(h.Check(
    "train_step", make_train_step, run_train_step, judge_train_step, reference=reference_train_step,
    doc="""Check ``fn(model, diffusion, optimizer, x0, loss_fn, generator=None) -> float``: one step of
    Algorithm 1.

    ``steps`` consecutive calls must leave the weights exactly where zero_grad → loss → backward → step
    leaves a copy of the model, and return each step's loss as a Python float (not a tensor).
    """))


# ----------------------------------------------------------------------------------------------
# Exercise: p_sample_step  (Algorithm 2, line 4, σ_t² = β_t)
# ----------------------------------------------------------------------------------------------
def make_p_sample_step(T: int = 1000, shape=(4, 1, 8, 8), seed: int = 0, ts=None) -> dict:
    ts = sorted({T - 1, T // 2, min(1, T - 1), 0}, reverse=True) if ts is None else [int(t) for t in ts]
    cases = []
    for j, t in enumerate(ts):
        cases.append({"t": t, "xt": torch.randn(shape, generator=h.gen(seed + 3 * j)),
                      "eps": torch.randn(shape, generator=h.gen(seed + 3 * j + 1)),
                      "z": torch.randn(shape, generator=h.gen(seed + 3 * j + 2))})
    return {"T": T, "shape": tuple(shape), "ts": ts, "cases": cases}


def run_p_sample_step(inputs: dict, fn) -> dict:
    d = GaussianDiffusion(linear_betas(inputs["T"]))
    outs = []
    for c in inputs["cases"]:
        outs.append(h.call(fn, c["eps"].clone(), c["xt"].clone(), c["t"], d, c["z"].clone()))
        if outs[-1]["error"] is not None:
            break
    return {"outs": outs}


def _tables64(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Float64 per-step constants, only to *name* a wrong answer (the right one comes from the package)."""
    b = betas.double()
    a = 1 - b
    return {"b": b, "a": a, "ab": torch.cumprod(a, 0)}


def judge_p_sample_step(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("p_sample_step")
    T, shape = inputs["T"], inputs["shape"]
    betas = linear_betas(T)
    d = GaussianDiffusion(betas)
    k = _tables64(betas)
    for c, outcome in zip(inputs["cases"], outputs["outs"]):
        t, xt, eps, z = c["t"], c["xt"], c["eps"], c["z"]
        shown = f"p_sample_step(eps, xt {h.fmt_shape(shape)}, t={t}, diffusion (T={T}), noise)"
        out = h.as_tensor(r, h.value(r, outcome), shown)
        h.check_shape_dtype(r, out, shape, None, shown)
        ref = reference_p_sample_step(eps, xt, t, d, z)
        x64, e64, z64 = xt.double(), eps.double(), z.double()

        def mean(b, a, ab):
            return (x64 - b / (1 - ab).sqrt() * e64) / a.sqrt()

        b, a, ab = k["b"][t], k["a"][t], k["ab"][t]
        bm, am, abm = k["b"][t - 1], k["a"][t - 1], k["ab"][t - 1]      # wraps at t = 0, as the mistake does
        nz = 0.0 if t == 0 else 1.0
        mu = mean(b, a, ab)
        sigma_z = nz * b.sqrt() * z64
        # in float32 from the diffusion's own tables, as a learner computes it: at t = 0, 1 − ᾱ_t = β_0
        # loses digits in float32, so a float64 candidate would miss a float32 answer there
        b32, a32, ab32 = d.betas[t], d.alphas[t], d.alphas_cumprod[t]

        def mean32(coef):
            return ((xt - coef * eps) / a32.sqrt() + nz * b32.sqrt() * z).double()
        mistakes = {
            f"at t = 0 (the last step) no noise is added: x_0 is the mean. Add σ_t·z only when t > 0; "
            f"you added it at t = {t}.": mu + b.sqrt() * z64 if t == 0 else None,
            "β_{t-1} was used where β_t belongs: index t is the step being undone (0-indexed: "
            "diffusion.betas[t]).": mean(bm, am, abm) + nz * bm.sqrt() * z64,
            "β_{t-1} was used where β_t belongs in the noise term σ_t = √β_t (index t, 0-indexed).":
                mu + nz * bm.sqrt() * z64,
            "β_{t-1} (index t - 1) was used where β_t belongs in the mean: 0-indexed, it is diffusion.betas[t].":
                mean(bm, a, ab) + sigma_z,
            "ᾱ_{t-1} (index t - 1) was used where ᾱ_t belongs: √(1 − ᾱ_t) is the noise level of x_t.":
                mean(b, a, abm) + sigma_z,
            "α_{t-1} (index t - 1) was used where α_t belongs.": mean(b, am, ab) + sigma_z,
            "the noise is scaled by σ_t² = β_t, a variance; scale it by the standard deviation σ_t = √β_t.":
                mu + nz * b * z64,
            "no noise was added: for t > 0, x_{t-1} = μ_θ + σ_t·z with σ_t = √β_t.": mu if t > 0 else None,
            "the variance used is β̃_t (the posterior's); this exercise asks for σ_t² = β_t.":
                d.step(eps, xt, t, noise=z, variance="beta_tilde").sample.double() if t > 0 else None,
            "the prefactor is 1/α_t; it is 1/√α_t.":
                (x64 - b / (1 - ab).sqrt() * e64) / a + sigma_z,
            "the noise coefficient is β_t / (1 − ᾱ_t); it is β_t / √(1 − ᾱ_t).":
                (x64 - b / (1 - ab) * e64) / a.sqrt() + sigma_z,
            "the mean uses √ᾱ_t where √α_t belongs (one step back, not all the way to x0).":
                mean(b, ab, ab) + sigma_z,
            "the noise coefficient is √β_t / √(1 − ᾱ_t); it is β_t / √(1 − ᾱ_t): β_t itself (a variance) "
            "multiplies ε in the mean, not the standard deviation √β_t (that one scales z).":
                mean32(b32.sqrt() / (1 - ab32).sqrt()),
            "the noise coefficient is β_t / (1 − √ᾱ_t); it is β_t / √(1 − ᾱ_t): the square root is taken of "
            "1 − ᾱ_t, the variance of the noise in x_t, not of ᾱ_t alone (standard deviations do not add).":
                mean32(b32 / (1 - ab32.sqrt())),
        }
        h.diagnose(r, out, ref, mistakes, rtol=1e-4, atol=1e-4, what=shown)
    r.ok(f"p_sample_step at t = {inputs['ts']} (T = {T}): matches GaussianDiffusion.step(…, variance='beta'), "
         f"with no noise at t = 0")


check_p_sample_step = h.register(h.Check(
    "p_sample_step", make_p_sample_step, run_p_sample_step, judge_p_sample_step,
    reference=reference_p_sample_step, blocks=("course_utils.diffusion.GaussianDiffusion.step",),
    doc="""Check ``fn(eps, xt, t, diffusion, noise)`` (t an int) against :meth:`GaussianDiffusion.step` with
    σ_t² = β_t: x_{t-1} = 1/√α_t·(x_t − β_t/√(1 − ᾱ_t)·ε) + σ_t·z, and no noise at t = 0 (Algorithm 2)."""))


# ----------------------------------------------------------------------------------------------
# Exercise: sample_loop  (Algorithm 2)
# ----------------------------------------------------------------------------------------------
def make_sample_loop(T: int = 20, shape=(3, 1, 6, 6), seed: int = 0) -> dict:
    return {"T": T, "shape": tuple(shape), "seed": seed, "w": _W, "c": _C}


def run_sample_loop(inputs: dict, fn) -> dict:
    T, shape = inputs["T"], tuple(inputs["shape"])
    d = GaussianDiffusion(linear_betas(T))
    model = h.Recorder(T, inputs["w"], inputs["c"])
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

    out = h.call(fn, model, d, shape, generator=h.gen(inputs["seed"]), step=step)
    return {"out": out, "steps": list(steps), "model_t": model.record()["t"]}


def judge_sample_loop(inputs: dict, outputs: dict) -> None:
    __tracebackhide__ = True  # noqa: F841
    r = h.Report("sample_loop")
    T, shape = inputs["T"], tuple(inputs["shape"])
    d = GaussianDiffusion(linear_betas(T))
    shown = f"sample_loop(model, diffusion (T={T}), shape={shape}, generator, step)"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    visited = outputs["steps"]
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
    mt = [int(t[0]) if t.numel() else None for t in outputs["model_t"]]
    if mt != visited:
        r.fail("the model must be called once per step with that step's t, as model(x, t) with t a (B,) "
               "int64 tensor filled with the current step.")
    h.check_shape_dtype(r, out, shape, None, shown)
    ref = d.p_sample_loop(h.Recorder(T, inputs["w"], inputs["c"]), shape, generator=h.gen(inputs["seed"]),
                          variance="beta", clip_x0=False, progress=False)
    if not h.close(out, ref, 1e-4, 1e-4):
        r.fail("the loop visits the right steps but x_0 differs from GaussianDiffusion.p_sample_loop from the "
               "same seed: draw x_T = torch.randn(shape, generator=generator) first, then at every step "
               "eps = model(x, t) and z = torch.randn(shape, generator=generator), x = step(eps, x, t, "
               "diffusion, z); return x after the t = 0 step.")
    r.ok(f"{shown}: visits t = {T - 1} … 0 and matches GaussianDiffusion.p_sample_loop (σ_t² = β_t) from the same seed")


def reference_sample_loop(model, diffusion, shape, generator=None, step=reference_p_sample_step):
    """DDPM sampling (Algorithm 2) under the exercise's signature: :meth:`GaussianDiffusion.p_sample_loop`
    with σ_t² = β_t, calling ``step`` as the exercise does."""
    with torch.no_grad():
        x = torch.randn(shape, generator=generator, device=diffusion.betas.device)
        for t in range(diffusion.num_timesteps - 1, -1, -1):
            eps = model(x, torch.full((shape[0],), t, dtype=torch.long, device=x.device))
            x = step(eps, x, t, diffusion, torch.randn(shape, generator=generator, device=x.device))
    return x


check_sample_loop = h.register(h.Check(
    "sample_loop", make_sample_loop, run_sample_loop, judge_sample_loop, reference=reference_sample_loop,
    blocks=("course_utils.diffusion.GaussianDiffusion.p_sample_loop",
            "course_utils.diffusion.GaussianDiffusion.p_sample_loop_progressive"),
    doc="""Check ``fn(model, diffusion, shape, generator=None, step=p_sample_step) -> x_0`` (Algorithm 2).

    Graded with the package's reverse step (:func:`reference_p_sample_step`) so that a slip in the step
    exercise does not cost this one too. The loop must visit t = T-1, …, 0 once each, draw x_T and each z
    from ``generator`` (x_T first, then one z per step), and return x_0; the result is compared with
    :meth:`GaussianDiffusion.p_sample_loop` (variance "beta") from the same seed.
    """))
