"""The machinery every lesson's checks share: three separable steps, the ✓/✗ report, the diagnoses.

A **check** tests one exercise in three steps that a grader can run apart (see :class:`Check`):

1. ``make(**params) -> inputs`` — build the inputs from a seed: a dict of *plain* values (tensors, numbers,
   strings, tuples, lists, dicts of those). No reference answer goes into it: the expected output never
   has to enter the place where the learner's code runs.
2. ``run(inputs, *subject) -> outputs`` — call the learner's function (or class, or answers: the
   *subject*) on those inputs and collect plain values only, with :func:`call`: the result, or the error
   it raised, plus the warnings it emitted. Nothing is judged here.
3. ``judge(inputs, outputs) -> None`` — compare with the package's reference (computed here, from the
   inputs), print ``✓ …`` or ``✗ …`` with the classic mistake named, and raise :class:`CheckFailed`
   (an ``AssertionError``) on a ✗.

The visible check, ``check_<name>(subject, **params)``, runs the three in-process, as a learner sees it.
Outputs survive ``torch.save`` / ``torch.load(weights_only=True)``, so a grader can run step 2 in a
sandbox and step 3 in a process that never loaded the learner's code.

Two nbgrader traps shape this module:

* anything written to **stderr** during a test cell scores that cell 0 even when every assert passes,
  so warnings raised by the learner's code are caught and reported on stdout instead;
* a test cell whose last line evaluates to a number is read as **partial credit**, so every check
  returns ``None``.

Timesteps are 0-indexed as everywhere in the course: index ``t`` is the paper's step ``t + 1``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import traceback
import warnings
from typing import Any, Callable, Iterator

import torch

from ..validation import is_number

__all__ = ["Check", "CheckFailed", "REGISTRY", "get_check", "OK", "BAD"]

OK, BAD = "✓", "✗"

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CheckFailed(AssertionError):
    """A ✗ verdict: the message names the problem and the fix.

    In Jupyter it shows as its message alone (IPython's ``_render_traceback_`` hook): the frames inside the
    package say nothing to a learner, and where their own code failed is already in the message
    ("at line N of your cell").
    """

    def _render_traceback_(self) -> list[str]:
        return [f"CheckFailed: {self}"]


# ----------------------------------------------------------------------------------------------
# The report: ✓ and ✗ lines on stdout
# ----------------------------------------------------------------------------------------------
class Report:
    """Prints a check's verdict lines; :meth:`fail` prints ``✗ name: msg`` and raises :class:`CheckFailed`."""

    def __init__(self, name: str):
        self.name = name

    def ok(self, msg: str) -> None:
        print(f"{OK} {msg}")

    def note(self, msg: str) -> None:
        print(f"  note: {msg}")

    def fail(self, msg: str):
        __tracebackhide__ = True  # noqa: F841  (IPython and pytest hide this frame)
        print(f"{BAD} {self.name}: {msg}")
        raise CheckFailed(f"{self.name}: {msg}") from None


# ----------------------------------------------------------------------------------------------
# The three steps, bound together
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Check:
    """One exercise's check as three steps; calling it runs them in-process (the visible check).

    Args:
        name: the exercise's name, as the report prints it (``"q_sample"``).
        make: ``make(**params) -> inputs`` (plain values, from a seed; keyword arguments only).
        run: ``run(inputs, *subject) -> outputs`` (plain values; calls the learner's code).
        judge: ``judge(inputs, outputs) -> None`` (prints ✓/✗, raises :class:`CheckFailed`).
        reference: the package's answer under the exercise's signature, where there is one (a test
            runs every check on it and expects ✓; a grader blocks it while the learner's code runs).
        doc: what the visible check checks (its ``__doc__``).
        blocks: dotted names of the package functions that *are* this exercise's answer
            (``"course_utils.diffusion.GaussianDiffusion.q_sample"``): the grader makes them raise while
            the learner's code runs, so an answer cannot delegate to them.
        grading_seed: whether a grader may replace the ``seed`` parameter by one drawn at grading time
            (True for unit checks; False where the seed is part of the published contract, as in lesson 07's
            assessment: "the same seed gives the same verdict").
    """

    name: str
    make: Callable[..., dict]
    run: Callable[..., dict]
    judge: Callable[[dict, dict], None]
    reference: Callable | None = None
    doc: str = ""
    blocks: tuple[str, ...] = ()
    grading_seed: bool = True

    def __call__(self, *subject, **params) -> None:
        __tracebackhide__ = True  # noqa: F841
        inputs = self.make(**params)
        outputs = self.run(inputs, *subject)
        self.judge(inputs, outputs)

    @property
    def __doc__(self) -> str:  # type: ignore[override]
        return self.doc


REGISTRY: dict[str, Check] = {}


def register(check: Check, public_name: str | None = None) -> Check:
    """Record ``check`` under ``check_<name>`` (or ``public_name``) so graders can find it; returns it."""
    key = public_name or f"check_{check.name}"
    if key in REGISTRY and REGISTRY[key] is not check:
        raise ValueError(f"two checks are registered as {key!r}; give one of them another name")
    REGISTRY[key] = check
    return check


def get_check(name: str) -> Check:
    """The registered check called ``name`` (``"check_q_sample"``); ``KeyError`` lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no check named {name!r}; known: {sorted(REGISTRY)}") from None


# ----------------------------------------------------------------------------------------------
# Step 2 helpers: call the learner's code, keep plain values
# ----------------------------------------------------------------------------------------------
def plain(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain data: tensors detached to the CPU as base ``torch.Tensor``; numbers, strings,
    ``None``; lists, tuples and string-keyed dicts of those. Anything else becomes ``{"__type__": name,
    "__repr__": short repr}``, which :func:`as_tensor` and friends report by its type."""
    if _depth > 8:
        return {"__type__": type(value).__name__, "__repr__": "(nested too deeply)"}
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if type(t) is not torch.Tensor:
            t = t.as_subclass(torch.Tensor)
        if t.is_meta:
            return {"__type__": "meta tensor", "__repr__": f"meta tensor of shape {tuple(t.shape)}"}
        return t.cpu().clone()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        import numpy as np
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return {"__type__": "numpy.ndarray", "__repr__": f"numpy array of shape {value.shape}"}
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, (list, tuple)):
        items = [plain(v, _depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: plain(v, _depth + 1) for k, v in value.items()}
    try:
        shown = repr(value)[:120]
    except Exception:  # a repr that raises is still reported by type
        shown = "(repr failed)"
    return {"__type__": type(value).__name__, "__repr__": shown}


def _learner_frames(exc: BaseException) -> str:
    """The traceback's frames outside ``course_utils`` and torch: where the learner's code failed."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)
              and f"{os.sep}torch{os.sep}" not in f.filename]
    if not frames:
        return ""
    last = frames[-1]
    in_cell = last.filename.startswith("<") or "ipykernel_" in last.filename   # a notebook cell's code
    where = f"line {last.lineno} of your cell" if in_cell else f"line {last.lineno} of {os.path.basename(last.filename)}"
    code = f": {last.line.strip()}" if last.line else ""
    return f"{where}{code}"


def call(fn: Callable, *args, **kwargs) -> dict:
    """Call the learner's ``fn``; return ``{"value", "error", "notes"}`` with plain values only.

    ``error`` is ``None`` or ``{"type", "message", "where"}`` (``where``: the learner's own line);
    ``notes`` are the warnings and stderr text the call produced (nbgrader would zero a cell for them).
    """
    if not callable(fn):
        return {"value": None, "notes": [],
                "error": {"type": "not callable", "message": type(fn).__name__, "where": ""}}
    err = io.StringIO()
    value, error = None, None
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        try:
            value = fn(*args, **kwargs)
        except Exception as e:  # the learner's own error, reported by the judge
            error = {"type": type(e).__name__, "message": str(e)[:2000], "where": _learner_frames(e)}
    notes, seen = [], set()
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.add(text)
            notes.append(f"your code emitted a warning (shown here, not on stderr): {text}")
    if err.getvalue().strip():
        notes.append(f"your code wrote to stderr: {err.getvalue().strip()[:300]}")
    return {"value": plain(value) if error is None else None, "error": error, "notes": notes}


def call_keep(fn: Callable, *args, **kwargs) -> tuple[dict, Any]:
    """:func:`call`, plus the raw value it returned (``None`` after an error), for a run step that must
    look further at it in the sandbox: a loss's ``requires_grad`` and ``backward()``, a model the learner
    built. Only the outcome (plain values) may go into the run step's outputs."""
    if not callable(fn):
        return call(fn, *args, **kwargs), None
    box: list = []

    def keep(*a, **k):
        box.append(fn(*a, **k))
        return box[0]

    return call(keep, *args, **kwargs), (box[0] if box else None)


def call_twice(fn: Callable, make_args: Callable[[], tuple]) -> tuple[dict, dict]:
    """Two calls on fresh copies of the same arguments (``make_args()`` builds them): the "same inputs give
    the same output" probe; :func:`same_again` judges it."""
    return call(fn, *make_args()), call(fn, *make_args())


@contextlib.contextmanager
def bind_into(fn: Callable, replacements: dict[str, Any]) -> Iterator[None]:
    """Temporarily bind ``replacements`` (name → object) in ``fn``'s globals, restoring them afterwards.

    Used where an exercise builds on the learner's earlier ones: checking it with the package's versions
    of those keeps one mistake from costing points twice.
    """
    g = getattr(fn, "__globals__", None)
    if not isinstance(g, dict):
        yield
        return
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


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run a tiny model on one CPU thread (thread start-up costs more than it saves on 8×8 images)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class Recorder(torch.nn.Module):
    """A tiny ε-model ``w·x_t + c·t/T`` that records every ``(x_t, t, y)`` it is called with.

    The stand-in model of the training and sampling checks: the judge sees which timesteps and inputs the
    learner's code fed the network, and can recompute its prediction from ``w`` and ``c``.
    """

    def __init__(self, T: int, w: float = 0.5, c: float = 0.3):
        super().__init__()
        self.T = T
        self.w = torch.nn.Parameter(torch.tensor(float(w)))
        self.c = torch.nn.Parameter(torch.tensor(float(c)))
        self.seen_t: list[torch.Tensor] = []
        self.seen_x: list[torch.Tensor] = []
        self.seen_y: list[torch.Tensor | None] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        t = torch.as_tensor(t)
        self.seen_t.append(t.detach().cpu().reshape(-1).clone())
        self.seen_x.append(x.detach().cpu().clone())
        self.seen_y.append(None if y is None else torch.as_tensor(y).detach().cpu().clone())
        tt = t.to(x.device).float().reshape(-1, *((1,) * (x.ndim - 1))) / self.T
        return self.w * x + self.c * tt

    def record(self) -> dict:
        """What the model saw, as plain values (for the outputs of a run step)."""
        return {"t": [t.clone() for t in self.seen_t], "x": [x.clone() for x in self.seen_x],
                "y": [None if y is None else y.clone() for y in self.seen_y]}


# ----------------------------------------------------------------------------------------------
# Step 3 helpers: read outcomes, compare, diagnose
# ----------------------------------------------------------------------------------------------
_SIZE_HINT = (" Hint: a per-step constant indexed by t has shape (B,); reshape it to (B, 1, 1, 1) "
              "with extract(a, t, x.shape) before it meets a (B, C, H, W) batch.")


_INDEX_HINT = (" Hint: timesteps are 0-indexed, t ∈ {0, …, T-1}, so a per-step table of length T is indexed "
               "by t itself: table[t - 1] fails or wraps around at t = 0, table[t + 1] at t = T-1.")


def value(r: Report, outcome: dict, what: str = "your function") -> Any:
    """The value of one :func:`call`, after printing its notes; fails with the error it recorded."""
    __tracebackhide__ = True  # noqa: F841
    for n in outcome.get("notes", ()):
        r.note(n)
    e = outcome.get("error")
    if e is None:
        return outcome.get("value")
    if e["type"] == "not callable":
        r.fail(f"expected a function, got {e['message']}.")
    where = f" (at {e['where']})" if e.get("where") else ""
    if e["type"] == "NotImplementedError":
        r.fail("still raises NotImplementedError: replace the `raise NotImplementedError()` line with your "
               "code, run that cell, then run this one again.")
    hint = ""
    if e["type"] == "RuntimeError" and "must match the size" in e["message"]:
        hint = _SIZE_HINT
    elif e["type"] == "IndexError" and "out of bounds" in e["message"]:
        hint = _INDEX_HINT
    r.fail(f"calling it raised {e['type']}{where}: {e['message']}.{hint}")


def type_name(v: Any) -> str:
    """The learner-facing type of a plain value (``{"__type__": …}`` placeholders report their type)."""
    if isinstance(v, dict) and "__type__" in v:
        return str(v["__type__"])
    return type(v).__name__


def as_tensor(r: Report, out: Any, what: str) -> torch.Tensor:
    __tracebackhide__ = True  # noqa: F841
    if not isinstance(out, torch.Tensor):
        r.fail(f"{what} should be a torch.Tensor; got {type_name(out)}. "
               f"Build it with torch operations (torch.linspace, torch.cumprod, …).")
    return out


def as_tensors(r: Report, out: Any, names: tuple[str, ...], fail_msg: str) -> list[torch.Tensor]:
    """A returned tuple of ``len(names)`` tensors, each checked by :func:`as_tensor` under its name; fails with
    ``fail_msg`` when ``out`` is not a tuple or list of that length."""
    __tracebackhide__ = True  # noqa: F841
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        r.fail(fail_msg)
    return [as_tensor(r, v, name) for v, name in zip(out, names)]


def close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if a.shape != b.shape:
        return False
    a64, b64 = a.detach().cpu().double(), b.detach().cpu().double()
    return bool(torch.isfinite(a64).all()) and torch.allclose(a64, b64, rtol=rtol, atol=atol)


def diagnose(r: Report, out: torch.Tensor, ref: torch.Tensor, mistakes: dict[str, torch.Tensor | None],
             rtol: float, atol: float, what: str) -> None:
    """Pass when ``out`` matches ``ref``; otherwise name the classic mistake it matches, or show where."""
    __tracebackhide__ = True  # noqa: F841
    if close(out, ref, rtol, atol):
        return
    for msg, cand in mistakes.items():
        if cand is not None and close(out, cand, rtol, atol):
            r.fail(msg)
    if not torch.isfinite(out.detach()).all():
        r.fail(f"{what} contains NaN or inf; look for a square root of a negative number or a "
               f"division by zero.")
    diff = (out.detach().cpu().double() - ref.detach().cpu().double()).abs()
    i = int(diff.flatten().argmax())
    idx = tuple(int(k) for k in torch.unravel_index(torch.tensor(i), diff.shape)) if diff.ndim else ()
    r.fail(f"{what} does not match the package: largest difference {float(diff.max()):.3g} at index "
           f"{idx} (yours {float(out.detach().cpu().double().flatten()[i]):.6g}, expected "
           f"{float(ref.double().flatten()[i]):.6g}). Re-read the formula in the markdown above.")


def check_shape_dtype(r: Report, out: torch.Tensor, shape, dtype, what: str, dtype_hint: str = "") -> None:
    __tracebackhide__ = True  # noqa: F841
    if tuple(out.shape) != tuple(shape):
        r.fail(f"{what} should have shape {tuple(shape)}; got {tuple(out.shape)}.")
    if dtype is not None and out.dtype != dtype:
        r.fail(f"{what} should have dtype {dtype}; got {out.dtype}.{dtype_hint}")


def same_again(r: Report, first: Any, again: Any, msg: str, *, rtol: float = 0.0, atol: float = 0.0,
               convert: Callable[[Any], Any] | None = None) -> None:
    """The "same inputs give the same output" verdict: fail with ``msg`` unless a second call with the same
    inputs (and generators seeded alike) gave what the first gave.

    Args:
        first: the first call's value (already judged).
        again: the second call: a :func:`call` outcome (its error, if any, is reported as such) or its value.
        msg: the failure message, which names the usual cause (fresh noise, an unused generator).
        rtol, atol: 0 and 0 (the default) ask for exact equality, dtype included; otherwise tensors and
            numbers are compared with ``torch.allclose`` / ``math.isclose`` at these tolerances (for results
            that are reproducible only up to round-off, e.g. a loss computed in another summation order).
        convert: applied to both values before comparing (``int`` for a mask's dtype, ``float`` for a loss
            returned as a number or a 0-d tensor); a value it cannot convert counts as different.
    """
    __tracebackhide__ = True  # noqa: F841
    second = value(r, again) if isinstance(again, dict) and "error" in again else again
    if convert is not None:
        try:
            first, second = convert(first), convert(second)
        except (AttributeError, TypeError, ValueError, RuntimeError):
            r.fail(msg)
    if not _equal(first, second, rtol, atol):
        r.fail(msg)


def _equal(a: Any, b: Any, rtol: float = 0.0, atol: float = 0.0) -> bool:
    exact = rtol == 0 and atol == 0
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape):
            return False
        if exact:
            return a.dtype == b.dtype and torch.equal(a, b)
        return torch.allclose(a.detach().double().cpu(), b.detach().double().cpu(), rtol=rtol, atol=atol)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k], rtol, atol) for k in a)
    if not exact and is_number(a) and is_number(b):
        return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol)
    return a == b


def as_index(r: Report, v: Any, shown: str) -> int | None:
    """An int timestep (or None) from the learner's answer; a bool, float or tensor fails (the exercises
    ask for a Python int: a one-element integer tensor is named as such, with the fix ``int(t)``)."""
    __tracebackhide__ = True  # noqa: F841
    if v is None:
        return None
    if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_floating_point() and v.dtype != torch.bool:
        r.fail(f"{shown} returned a tensor ({v!r}); return a Python int: int(t).")
    if isinstance(v, bool) or not isinstance(v, int):
        r.fail(f"{shown} should be an int timestep (or None); got {v!r} of type {type_name(v)}. "
               f"Convert with int(...).")
    return int(v)


def drop_rate_tolerance(p: float, n: int) -> float:
    """Five binomial standard deviations of a fraction of n draws (a false alarm about once in 3.5 million)."""
    return 5.0 * math.sqrt(p * (1.0 - p) / n) + 1e-12


def t_range_report(r: Report, ts: torch.Tensor, T: int) -> None:
    """Fail unless the drawn timesteps ``ts`` cover {0, …, T-1} uniformly (χ² test, far tail)."""
    __tracebackhide__ = True  # noqa: F841
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


# ----------------------------------------------------------------------------------------------
# Step 1 helpers: seeded inputs
# ----------------------------------------------------------------------------------------------
def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(shape, seed: int) -> torch.Tensor:
    """Seeded stand-in for images in [-1, 1]."""
    return torch.rand(shape, generator=gen(seed)) * 2 - 1


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"
