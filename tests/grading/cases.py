"""Adversarial and broken submissions of lesson 02 (11 points), each with the score it deserves.

Lesson 02's exercises and points: ex1-linear-betas 1, ex2-to-model-range 1, ex3-forward-step 2,
ex4-alphas-cumprod 1, ex5-q-sample 2, ex6-snr 2, ex7-monte-carlo 2 (ex7's check runs the learner's
loop with the reference forward_step, alphas_cumprod and q_sample, so each exercise is graded alone). Each case builds a submission from the released notebook
with every answer filled in from the solution, then breaks or cheats in one place.

``CASES[name] = Case(build, expected_score, expected_flag)``: ``build(release, solution) -> bytes`` (the
file as submitted), ``expected_flag`` a substring the grader's flags must contain (None: no flag).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import nbformat

from lesson_harness import make_submission

LESSON = "02_forward_diffusion"
TOTAL = 11


@dataclass
class Case:
    build: Callable[[dict, dict], bytes]
    expected: float
    flag: str | None
    what: str


def _meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def _src(cell) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def answered(release: dict, solution: dict) -> dict:
    """The released notebook with every answer cell filled in from the solution (markers removed)."""
    rel, sol = (nbformat.reads(json.dumps(nb), as_version=4) for nb in (release, solution))
    answers = {_meta(c)["grade_id"] for c in sol.cells if _meta(c).get("solution")}
    return json.loads(json.dumps(make_submission(rel, sol, answers)))


def _cell(nb: dict, gid: str) -> dict:
    return next(c for c in nb["cells"] if _meta(c).get("grade_id") == gid)


def _dump(nb: dict) -> bytes:
    return json.dumps(nb, indent=1).encode()


def _edit(gid: str, fn: Callable[[str], str]):
    def build(release, solution):
        nb = answered(release, solution)
        cell = _cell(nb, gid)
        cell["source"] = fn(_src(cell))
        return _dump(nb)
    return build


def _append(gid: str, code: str):
    return _edit(gid, lambda s: s + "\n" + code + "\n")


def _prepend(gid: str, code: str):
    """``code`` first in the answer cell: when it fails, nothing after it in that cell is defined."""
    return _edit(gid, lambda s: code + "\n" + s)


def _replace_body(gid: str, old: str, new: str):
    def fn(s):
        assert old in s, (gid, old)
        return s.replace(old, new)
    return _edit(gid, fn)


def _solution(release, solution):
    return _dump(answered(release, solution))


def _delete_test(release, solution):
    nb = answered(release, solution)
    nb["cells"] = [c for c in nb["cells"] if _meta(c).get("grade_id") != "ex5-q-sample-tests"]
    return _dump(nb)


def _move_test(release, solution):
    nb = answered(release, solution)
    i = next(i for i, c in enumerate(nb["cells"]) if _meta(c).get("grade_id") == "ex5-q-sample-tests")
    cell = nb["cells"].pop(i)
    j = next(j for j, c in enumerate(nb["cells"]) if _meta(c).get("grade_id") == "ex5-q-sample")
    nb["cells"].insert(j, cell)                       # above its answer: it would test nothing
    return _dump(nb)


def _edit_test(release, solution):
    nb = answered(release, solution)
    _cell(nb, "ex5-q-sample-tests")["source"] = "pass  # tests removed"
    _cell(nb, "ex5-q-sample")["source"] = "def q_sample(x0, t, alphas_cumprod, noise):\n    return x0\n"
    return _dump(nb)


def _raise_points(release, solution):
    nb = answered(release, solution)
    _cell(nb, "ex5-q-sample-tests")["metadata"]["nbgrader"]["points"] = 100
    return _dump(nb)


def _test_to_markdown(release, solution):
    nb = answered(release, solution)
    cell = _cell(nb, "ex5-q-sample-tests")
    cell["cell_type"] = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    _cell(nb, "ex5-q-sample")["source"] = "def q_sample(x0, t, alphas_cumprod, noise):\n    return x0\n"
    return _dump(nb)


def _stripped(release, solution):
    nb = answered(release, solution)
    for cell in nb["cells"]:
        for key in ("nbgrader", "editable", "deletable"):
            cell["metadata"].pop(key, None)
    return _dump(nb)


def _other_lesson(release, solution):
    nb = answered(release, solution)
    for cell in nb["cells"]:
        meta = _meta(cell)
        if meta.get("grade_id"):
            meta["grade_id"] = "l03-" + meta["grade_id"]
    return _dump(nb)


WRONG_Q_SAMPLE = "def q_sample(x0, t, alphas_cumprod, noise):\n    return x0 + noise\n"

CASES: dict[str, Case] = {
    "solution": Case(_solution, TOTAL, None, "every answer right"),
    "infinite_loop": Case(_prepend("ex6-snr", "while True:\n    pass"), TOTAL - 2, "cell timeout",
                          "ex6's cell never ends (interrupted by the cell timeout)"),
    "exception_in_one_answer": Case(_replace_body("ex1-linear-betas", "return torch.linspace",
                                                  "raise RuntimeError('oops')\n    return torch.linspace"),
                                    TOTAL - 1, None, "ex1 raises; the others are still graded"),
    "test_cell_deleted": Case(_delete_test, TOTAL, "was deleted", "ex5's test cell deleted (restored, graded)"),
    "test_cell_moved": Case(_move_test, TOTAL, "was moved", "ex5's test cell moved above its answer"),
    "test_cell_edited": Case(_edit_test, TOTAL - 2, "locked cell was edited",
                             "ex5's tests replaced by `pass` and a wrong q_sample"),
    "points_raised": Case(_raise_points, TOTAL, "metadata", "ex5's test cell worth 100 points in the metadata"),
    "test_cell_to_markdown": Case(_test_to_markdown, TOTAL - 2, "metadata",
                                  "ex5's test cell turned into markdown and a wrong q_sample"),
    "hard_coded_visible_answer": Case(
        _replace_body("ex4-alphas-cumprod", "return torch.cumprod(1.0 - betas, dim=0)",
                      "return torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, 10, dtype=torch.float64), 0)"),
        TOTAL - 1, None, "ex4 returns the T = 10 answer of the visible test for every input"),
    "checks_monkeypatched": Case(
        _edit("ex5-q-sample", lambda s: WRONG_Q_SAMPLE + "import course_utils.checks as cc\n"
              "cc.check_q_sample = lambda *a, **k: None\ncheck_q_sample = cc.check_q_sample\n"),
        TOTAL - 2, "tampers", "wrong q_sample, check helpers patched to pass"),
    "allclose_patched": Case(
        _edit("ex5-q-sample", lambda s: s + "\ntorch.allclose = lambda *a, **k: True\n"
              "torch.testing.assert_close = lambda *a, **k: None\n"),
        TOTAL - 2, "tampers", "torch.allclose / assert_close patched (the answer itself is right)"),
    "nan_returned": Case(_replace_body("ex5-q-sample", "return (a_bar.sqrt()", "return float('nan') * (a_bar.sqrt()"),
                         TOTAL - 2, None, "q_sample returns NaN"),
    "wrong_shape": Case(_replace_body("ex3-forward-step", "return torch.sqrt(1 - beta) * x_prev",
                                      "return (torch.sqrt(1 - beta) * x_prev).flatten(1)"),
                        TOTAL - 2, None, "forward_step flattens its output"),
    "wrong_dtype": Case(_replace_body("ex2-to-model-range", "return images.float() / 127.5 - 1.0",
                                      "return images.double() / 127.5 - 1.0"),
                        TOTAL - 1, None, "to_model_range returns float64"),
    "wrong_device": Case(_replace_body("ex2-to-model-range", "return images.float() / 127.5 - 1.0",
                                       "return (images.float() / 127.5 - 1.0).to('meta')"),
                         TOTAL - 1, None, "to_model_range returns a tensor on the meta device"),
    "sys_exit": Case(_prepend("ex1-linear-betas", "import sys\nsys.exit(0)"), TOTAL - 1, None,
                     "sys.exit() in ex1's answer cell"),
    "kernel_killed": Case(_append("ex7-monte-carlo", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
                          0, "kernel died", "the answer kills its own kernel"),
    "huge_output": Case(_append("ex1-linear-betas", "print('x' * 50_000_000)"), TOTAL, None,
                        "50 MB printed by an answer cell"),
    "memory_hog": Case(_prepend("ex6-snr", "hog = bytearray(64 * 1024 ** 3)"), TOTAL - 2, None,
                       "ex6 allocates 64 GB (stopped by the memory limit)"),
    "network_access": Case(_prepend("ex6-snr", "import urllib.request\n"
                                   "urllib.request.urlopen('https://pypi.org', timeout=5)"),
                           TOTAL - 2, None, "ex6 downloads from the internet (no network when sandboxed)"),
    "corrupted_json": Case(lambda r, s: _solution(r, s)[:-200], 0, "not a valid notebook", "truncated JSON"),
    "empty_file": Case(lambda r, s: b"", 0, "empty", "an empty file"),
    "other_lesson": Case(_other_lesson, 0, "another lesson", "a notebook of another lesson"),
    "metadata_stripped": Case(_stripped, 0, "metadata stripped", "nbgrader metadata stripped by another editor"),
}
