"""Inside the student's kernel, in the sandbox: run one planned check call and file its plain outputs.

The runner (:mod:`.runner`) replaces each test cell by calls to :func:`grade_call`. Nothing here decides
a score: the outputs go to a file that the trusted judge reads with ``weights_only=True``. While the
student's code runs, the package's own answer to that exercise (the check's ``reference`` and the
functions in its ``blocks``) is unavailable — also through a reference captured earlier or a method of an
argument, because the function's code itself is swapped — and says so; it is restored afterwards, so the
lesson's other cells still run.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import types

__all__ = ["grade_call", "blocked"]


def _resolve(dotted: str):
    """``"course_utils.diffusion.GaussianDiffusion.q_sample"`` → the plain function object."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = obj.__dict__[attr] if isinstance(obj, type) and attr in obj.__dict__ else getattr(obj, attr)
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        return obj
    raise ImportError(dotted)


def _raiser(dotted: str, exercise: str) -> types.CodeType:
    """Code that raises, for a function whose own globals it will run in (so it names only builtins)."""
    msg = (f"{dotted} is not available while your {exercise} is graded: the exercise is to write it "
           f"yourself, so your code may not call the package's answer.")
    ns: dict = {}
    exec(f"def blocked(*args, **kwargs):\n    raise RuntimeError({msg!r})\n", ns)   # noqa: S102
    return ns["blocked"].__code__


@contextlib.contextmanager
def blocked(check):
    """Make the check's reference and the functions it names in ``blocks`` raise, for the duration."""
    names = list(getattr(check, "blocks", ()) or ())
    targets = []
    ref = getattr(check, "reference", None)
    if isinstance(ref, types.FunctionType):
        targets.append((f"{ref.__module__}.{ref.__qualname__}", ref))
    for dotted in names:
        try:
            fn = _resolve(dotted)
        except (ImportError, AttributeError, KeyError):
            continue
        if isinstance(fn, types.FunctionType):
            targets.append((dotted, fn))
    saved, seen = [], set()
    for dotted, fn in targets:
        if id(fn) in seen:                        # the reference may also be named in blocks
            continue
        seen.add(id(fn))
        code = fn.__code__
        try:
            fn.__code__ = _raiser(dotted, check.name)
        except (TypeError, ValueError):           # a closure's code cannot be swapped: leave it
            continue
        saved.append((fn, code))
    try:
        yield
    finally:
        for fn, code in reversed(saved):
            fn.__code__ = code


def grade_call(key: str, check_name: str, subjects, folder: str) -> None:
    """Evaluate the subjects (a thunk), run the check's run step on the filed inputs, file the outputs."""
    import torch

    from ..checks import get_check

    check = get_check(check_name)
    fname = key.replace("#", "__")
    inputs = torch.load(os.path.join(folder, "inputs", f"{fname}.pt"), weights_only=True)
    with blocked(check):
        try:
            subject = subjects()
        except Exception as e:          # the name is not defined, or the expression fails
            outputs = {"__subject_error__": f"{type(e).__name__}: {e}"[:2000]}
        else:
            try:
                outputs = check.run(inputs, *subject)
            except Exception as e:      # noqa: BLE001 - a run step that could not handle the subject
                outputs = {"__run_error__": f"{type(e).__name__}: {e}"[:2000]}
    torch.save(outputs, os.path.join(folder, "outputs", f"{fname}.pt"))
    print(f"recorded {key}")
