"""What to run for each graded test cell: the instructor's check calls, read from the *source* notebook.

A test cell of the course is a sequence of check calls, ``check_q_sample(q_sample, T=50, seed=3)`` (or
``_checks.check_q_sample(...)`` in the hidden part). The grader never executes the test cell's text in the
student's process. It parses the cell here, in the trusted process:

* the **subject** — the positional arguments, e.g. ``q_sample`` or ``lambda x0, t, a, eps: q_sample(...)`` —
  is source text that the sandbox evaluates in the student's namespace;
* the **parameters** — the keyword arguments — are evaluated here (instructor code; ``torch``, ``math``
  and the literal constants that the notebook's locked cells assign, such as ``MAX_PARAMETERS = 600_000``,
  in scope), and the check's ``make`` step turns them into the inputs, with the seed shifted by a seed
  drawn at grading time, so that no answer can be hard-coded for the inputs the notebook shows.

A test cell that holds anything else (an ``assert``, a loop) cannot be decided outside the student's process
and is refused with the cell's id: such checks belong in a ``check_*`` function.
"""
from __future__ import annotations

import ast
import inspect
import math
from dataclasses import dataclass, field

__all__ = ["PlannedCall", "PlanError", "plan_test_cells", "make_inputs", "locked_constants"]

class PlanError(ValueError):
    """A test cell that the grader cannot split into check calls."""


@dataclass(frozen=True)
class PlannedCall:
    """One check call of one test cell."""

    key: str                      # "<test grade_id>#<k>": where its inputs and outputs are filed
    test: str                     # the test cell's grade_id
    check: str                    # "check_q_sample"
    subjects: tuple[str, ...]     # source of each positional argument (evaluated in the sandbox)
    params: dict = field(default_factory=dict)    # keyword arguments (evaluated here)


def _check_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Name) and f.id.startswith("check_"):
        return f.id
    if isinstance(f, ast.Attribute) and f.attr.startswith("check_") and isinstance(f.value, ast.Name):
        return f.attr
    return None


def _is_checks_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return all(a.name in ("course_utils.checks", "course_utils") for a in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.module in ("course_utils.checks", "course_utils") and all(
            a.name.startswith("check_") or a.name == "checks" for a in node.names)
    return False


def _source(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _meta(cell) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def locked_constants(nb: dict) -> dict:
    """``NAME = <literal>`` assignments at the top level of the locked, non-answer code cells."""
    out = {}
    for cell in nb["cells"]:
        meta = _meta(cell)
        if cell.get("cell_type") != "code" or not meta.get("locked") or meta.get("solution"):
            continue
        try:
            tree = ast.parse(_source(cell))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    out[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
    return out


def plan_test_cells(source_nb: dict) -> dict[str, list[PlannedCall]]:
    """``test grade_id → [PlannedCall, …]`` for every autograded test cell of the source notebook.

    Raises:
        PlanError: a test cell holds statements other than check calls and imports of the checks.
    """
    import torch

    scope = {"torch": torch, "math": math, **locked_constants(source_nb)}
    plans: dict[str, list[PlannedCall]] = {}
    for cell in source_nb["cells"]:
        meta = _meta(cell)
        if not meta.get("grade") or meta.get("solution") or cell.get("cell_type") != "code":
            continue
        gid = meta["grade_id"]
        src = _source(cell).replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", "")
        try:
            tree = ast.parse(src)
        except SyntaxError as err:
            raise PlanError(f"test cell {gid} does not parse: {err}") from None
        calls = []
        for node in tree.body:
            if _is_checks_import(node):
                continue
            name = _check_name(node.value) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) else None
            if name is None:
                raise PlanError(f"test cell {gid} holds `{ast.unparse(node)[:80]}`, which is not a check call: "
                                "the grader decides test cells outside the student's process, so every test "
                                "must be a course_utils.checks.check_* call")
            call = node.value
            if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
                raise PlanError(f"test cell {gid}: *args/**kwargs in a check call cannot be planned")
            subjects = tuple(ast.get_source_segment(src, a) or ast.unparse(a) for a in call.args)
            params = {k.arg: eval(compile(ast.Expression(k.value), f"<{gid}>", "eval"), dict(scope))  # noqa: S307
                      for k in call.keywords}
            calls.append(PlannedCall(f"{gid}#{len(calls)}", gid, name, subjects, params))
        plans[gid] = calls
    return plans


def make_inputs(call: PlannedCall, grading_seed: int, overrides: dict | None = None) -> dict:
    """The inputs of one planned call (the check's make step), its seed shifted by ``grading_seed`` (unless
    the check publishes a fixed seed) and ``overrides`` applied (the grader's own settings)."""
    from ..checks import get_check

    check = get_check(call.check)
    params = {**call.params, **(overrides or {})}
    sig = inspect.signature(check.make)
    if "seed" in sig.parameters and check.grading_seed:
        base = params.get("seed", sig.parameters["seed"].default)
        base = 0 if base is inspect.Parameter.empty else int(base)
        params["seed"] = (base + grading_seed) % (2 ** 31)
    return check.make(**params)
