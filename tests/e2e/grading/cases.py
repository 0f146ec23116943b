"""Adversarial and broken submissions of lesson 02 (11 points), each with the score it deserves.

Lesson 02's exercises and points: ex1-linear-betas 1, ex2-to-model-range 1, ex3-forward-step 2,
ex4-alphas-cumprod 1, ex5-q-sample 2, ex6-snr 2, ex7-monte-carlo 2 (ex7's check runs the learner's
loop with the reference forward_step, alphas_cumprod and q_sample, so each exercise is graded alone). Each case builds a submission from the released notebook
with every answer filled in from the solution, then breaks or cheats in one place.

``CASES[name] = Case(build, expected_score, expected_flag)``: ``build(release, solution) -> bytes`` (the
file as submitted), ``expected_flag`` a substring the grader's flags must contain (None: no flag).

The deserved score is what the answers earn on their own: patching torch, the checks or IPython inside
the sandbox earns nothing (the verdict is decided outside it), and code that attacks the grader, the
records or other submissions changes nothing but is flagged for review. ``COLLATERAL`` cases are graded in
one batch with ``INNOCENT`` submissions, whose scores must be the same as when graded alone.
``TARGETS`` holds the real paths of the grading run (the test fills them in before building), so the
attacks aim at the files that exist, not at guesses.
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
    flag: str | tuple[str, ...] | None
    what: str
    lost: tuple[str, ...] | None = None      # the test cells that must score 0 (None: only the total is judged)

    @property
    def flags(self) -> tuple[str, ...]:
        """The substrings the grader's flags must contain, each in some flag."""
        return () if self.flag is None else (self.flag,) if isinstance(self.flag, str) else tuple(self.flag)


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


def _replace_bodies(*edits: tuple[str, str, str]):
    """A build that replaces ``old`` by ``new`` in each (answer grade_id, old, new) of ``edits``."""
    def build(release, solution):
        nb = answered(release, solution)
        for gid, old, new in edits:
            cell = _cell(nb, gid)
            assert old in _src(cell), (gid, old)
            cell["source"] = _src(cell).replace(old, new)
        return _dump(nb)
    return build


def _replace_body(gid: str, old: str, new: str):
    return _replace_bodies((gid, old, new))


def _solution(release, solution):
    return _dump(answered(release, solution))


def _delete_test(nb: dict, gid: str = "ex5-q-sample") -> dict:
    nb["cells"] = [c for c in nb["cells"] if _meta(c).get("grade_id") != f"{gid}-tests"]
    return nb


def _move_test(nb: dict, gid: str = "ex5-q-sample") -> dict:
    i = next(i for i, c in enumerate(nb["cells"]) if _meta(c).get("grade_id") == f"{gid}-tests")
    cell = nb["cells"].pop(i)
    j = next(j for j, c in enumerate(nb["cells"]) if _meta(c).get("grade_id") == gid)
    nb["cells"].insert(j, cell)                       # above its answer: it would test nothing
    return nb


def _raise_points(nb: dict, gid: str = "ex5-q-sample") -> dict:
    _cell(nb, f"{gid}-tests")["metadata"]["nbgrader"]["points"] = 100
    return nb


def _tampered_tests(release, solution):
    """Three edits of three exercises' test cells in one notebook: each is repaired from the source on its own."""
    nb = _move_test(_delete_test(answered(release, solution), "ex5-q-sample"), "ex3-forward-step")
    return _dump(_raise_points(nb, "ex6-snr"))


# Three answers that return the wrong kind of tensor, in three exercises: each costs only its own points.
_bad_outputs = _replace_bodies(
    ("ex5-q-sample", "return (a_bar.sqrt()", "return float('nan') * (a_bar.sqrt()"),
    ("ex3-forward-step", "return torch.sqrt(1 - beta) * x_prev", "return (torch.sqrt(1 - beta) * x_prev).flatten(1)"),
    ("ex2-to-model-range", "return images.float() / 127.5 - 1.0", "return images.double() / 127.5 - 1.0"))


def _edit_test(release, solution):
    nb = answered(release, solution)
    _cell(nb, "ex5-q-sample-tests")["source"] = "pass  # tests removed"
    _cell(nb, "ex5-q-sample")["source"] = "def q_sample(x0, t, alphas_cumprod, noise):\n    return x0\n"
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
    "test_cells_tampered": Case(_tampered_tests, TOTAL, ("was deleted", "was moved", "metadata"),
                                "ex5's test cell deleted, ex3's moved above its answer, ex6's worth 100 points in "
                                "the metadata (each restored from the source and graded)", lost=()),
    "test_cell_edited": Case(_edit_test, TOTAL - 2, "locked cell was edited",
                             "ex5's tests replaced by `pass` and a wrong q_sample"),
    "test_cell_to_markdown": Case(_test_to_markdown, TOTAL - 2, "metadata",
                                  "ex5's test cell turned into markdown and a wrong q_sample"),
    "hard_coded_visible_answer": Case(
        _replace_body("ex4-alphas-cumprod", "return torch.cumprod(1.0 - betas, dim=0)",
                      "return torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, 10, dtype=torch.float64), 0)"),
        TOTAL - 1, None, "ex4 returns the T = 10 answer of the visible test for every input"),
    "checks_monkeypatched": Case(
        _edit("ex5-q-sample", lambda s: WRONG_Q_SAMPLE + "import course_utils.checks as cc\n"
              "cc.check_q_sample = lambda *a, **k: None\ncheck_q_sample = cc.check_q_sample\n"),
        TOTAL - 2, "review", "wrong q_sample, check helpers patched to pass"),
    "allclose_patched": Case(
        _edit("ex5-q-sample", lambda s: s + "\ntorch.allclose = lambda *a, **k: True\n"
              "torch.testing.assert_close = lambda *a, **k: None\n"),
        TOTAL, "review", "torch.allclose / assert_close patched; the answer itself is right, so it earns its "
        "points (judged outside) and is flagged"),
    "bad_outputs": Case(_bad_outputs, TOTAL - 5, None,
                        "q_sample returns NaN, forward_step flattens its output, to_model_range returns float64",
                        lost=("ex5-q-sample-tests", "ex3-forward-step-tests", "ex2-to-model-range-tests")),
    "wrong_device": Case(_replace_body("ex2-to-model-range", "return images.float() / 127.5 - 1.0",
                                       "return (images.float() / 127.5 - 1.0).to('meta')"),
                         TOTAL - 1, None, "to_model_range returns a tensor on the meta device"),
    "sys_exit": Case(_prepend("ex1-linear-betas", "import sys\nsys.exit(0)"), TOTAL - 1, None,
                     "sys.exit() in ex1's answer cell"),
    "kernel_killed": Case(_append("ex7-monte-carlo", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
                          TOTAL - 2, "kernel died", "ex7's answer kills its own kernel: ex1–ex6 were filed"),
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


# ---------------------------------------------------------------------------------------------------------
# Cheats the old static scan did not see. Each comes with a wrong answer to the last exercise (ex7, 2 points)
# and patches made after it, so whatever the patches break can only be ex7: the deserved score is TOTAL - 2.
# ---------------------------------------------------------------------------------------------------------
WRONG_MONTE_CARLO = ("def monte_carlo_moments(x0, t, betas, n_samples, generator=None):\n"
                     "    z = torch.zeros_like(x0)\n"
                     "    return {k: z for k in ('chain_mean', 'chain_var', 'closed_mean', 'closed_var')}\n")


def _wrong_monte_carlo_and(code: str):
    return _edit("ex7-monte-carlo", lambda s: WRONG_MONTE_CARLO + code + "\n")


TARGETS: dict[str, str] = {"out": "/nonexistent", "source": "/nonexistent", "submissions": "/nonexistent",
                           "repo_solutions": "/nonexistent"}

PATCHES = {
    "alias_patch": ("import torch as _t, importlib as _il\n_m = _il.import_module('course_utils.checks._harness')\n"
                    "_f = getattr(_t, 'allclose')\n_n = 'all' + 'close'\n_t.__setattr__(_n, lambda *a, **k: True)\n"
                    "_m.__setattr__('close', lambda *a, **k: True)",
                    "module aliases and __setattr__ make every comparison pass"),
    "dict_update": ("torch.__dict__.update(allclose=lambda *a, **k: True, equal=lambda *a, **k: True)\n"
                    "import course_utils.checks as _c\n"
                    "_c.__dict__.update({k: (lambda *a, **kw: None) for k in list(vars(_c)) if k.startswith('check_')})",
                    "module __dict__ updates replace the checks and torch's comparisons"),
    "type_setattr": ("type.__setattr__(torch.Tensor, '__eq__', lambda a, b: torch.ones((), dtype=torch.bool))\n"
                     "type.__setattr__(torch.Tensor, 'allclose', lambda *a, **k: True)",
                     "type.__setattr__ on torch.Tensor"),
    "code_swap": ("import course_utils.checks._harness as _h\n_h.close.__code__ = (lambda *a, **k: True).__code__\n"
                  "_h.Report.fail.__code__ = (lambda self, msg: None).__code__",
                  "a function's code object swapped (close, Report.fail)"),
    "tensor_subclass": ("class _Always(torch.Tensor):\n"
                        "    @classmethod\n"
                        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                        "        r = super().__torch_function__(func, types, args, kwargs or {})\n"
                        "        return True if getattr(func, '__name__', '') in ('allclose', 'equal') else r\n"
                        "_wrong = monte_carlo_moments\n"
                        "def monte_carlo_moments(x0, t, betas, n_samples, generator=None):\n"
                        "    return {k: v.as_subclass(_Always) for k, v in _wrong(x0, t, betas, n_samples).items()}",
                        "the answer returns a tensor subclass whose comparisons always pass"),
    "torch_function_mode": ("from torch.overrides import TorchFunctionMode\n"
                            "class _Yes(TorchFunctionMode):\n"
                            "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
                            "        if getattr(func, '__name__', '') in ('allclose', 'equal', 'isclose'):\n"
                            "            return True\n"
                            "        return func(*args, **(kwargs or {}))\n"
                            "_Yes().__enter__()",
                            "a torch function mode left on makes comparisons pass"),
    "ipython_hooks": ("ip = get_ipython()\n"
                      "ip.input_transformers_post.append(lambda lines: ['pass\\n'] if any('check_' in l for l in lines) else lines)\n"
                      "ip.events.register('post_run_cell', lambda result: setattr(result, 'error_in_exec', None))\n"
                      "ip.set_custom_exc((AssertionError, Exception), lambda *a, **k: None)\n"
                      "import sys\nsys.displayhook = lambda value: None",
                      "IPython input transformers, post-run events, custom exception handler, display hook"),
    "unparsable_magic": ("%config InlineBackend.figure_format = 'png'\n"
                         "torch.allclose = lambda *a, **k: True",
                         "a line magic makes the cell unparsable for the scan, which then sees nothing"),
}

for _name, (_code, _what) in PATCHES.items():
    CASES[_name] = Case(_wrong_monte_carlo_and(_code), TOTAL - 2, "review", f"wrong ex7 + {_what}")

# Reading the grader's private material: the source notebook (hidden tests and solutions)
_STEAL = (
    "import glob, json, os\n"
    "_found = []\n"
    "for _p in [TARGET_SOURCE, TARGET_REPO_SOLUTIONS]:\n"
    "    for _f in ([_p] if _p.endswith('.ipynb') else glob.glob(os.path.join(_p, '**', '*.ipynb'), recursive=True)):\n"
    "        try:\n"
    "            _nb = json.load(open(_f))\n"
    "        except Exception:\n"
    "            continue\n"
    "        for _c in _nb['cells']:\n"
    "            _s = ''.join(_c['source'])\n"
    "            if 'def q_sample' in _s and 'BEGIN SOLUTION' in _s:\n"
    "                _found.append(_s)\n"
    "if _found:\n"
    "    exec(_found[0].replace('### BEGIN SOLUTION', '').replace('### END SOLUTION', ''))\n"
)

# Delegating the answer to the package's reference
_DELEGATE_Q = (
    "from course_utils.diffusion import GaussianDiffusion as _GD\n"
    "_captured = _GD.q_sample            # a reference captured before grading starts\n"
    "def q_sample(x0, t, alphas_cumprod, noise):\n"
    "    prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])\n"
    "    d = _GD((1 - alphas_cumprod / prev).double().clamp(1e-8, 0.999))\n"
    "    return _captured(d, x0, t, noise=noise)\n"
)
_DELEGATE_BETAS = (
    "from course_utils import schedules as _s\n"
    "def linear_betas(T, beta_start=1e-4, beta_end=0.02):\n"
    "    return _s.linear_betas(T, beta_start, beta_end)\n"
)
_DELEGATE_CHECK_REFERENCE = "from course_utils.checks.lesson02 import reference_q_sample as q_sample\n"


def _with_targets(code: str) -> str:
    return (f"TARGET_OUT, TARGET_SOURCE, TARGET_SUBMISSIONS = {TARGETS['out']!r}, {TARGETS['source']!r}, "
            f"{TARGETS['submissions']!r}\nTARGET_REPO_SOLUTIONS = {TARGETS['repo_solutions']!r}\n" + code)


CASES["read_hidden_tests"] = Case(
    _edit("ex5-q-sample", lambda s: WRONG_Q_SAMPLE + _with_targets(_STEAL)), TOTAL - 2, "review",
    "wrong q_sample that looks for the source notebook (hidden tests, solutions) and runs its answer")
CASES["delegate_to_package"] = Case(_edit("ex5-q-sample", lambda s: _DELEGATE_Q), TOTAL - 2, None,
                                    "q_sample delegates to GaussianDiffusion.q_sample (captured earlier)")
CASES["delegate_schedule"] = Case(_edit("ex1-linear-betas", lambda s: _DELEGATE_BETAS), TOTAL - 1, None,
                                  "linear_betas delegates to course_utils.schedules.linear_betas")
CASES["delegate_check_reference"] = Case(_edit("ex5-q-sample", lambda s: _DELEGATE_CHECK_REFERENCE), TOTAL - 2,
                                         None, "q_sample is the check's own reference function")

# ---------------------------------------------------------------------------------------------------------
# Collateral: attacks on the records, the gradebook, the grader and other submissions (answers all right)
# ---------------------------------------------------------------------------------------------------------
_FILES_ATTACK = (
    "import glob, os, sqlite3, site, json\n"
    "def _try(f):\n"
    "    try:\n"
    "        f()\n"
    "    except Exception:\n"
    "        pass\n"
    "for _r in glob.glob(os.path.join(TARGET_OUT, '*.json')) + glob.glob('/tmp/**/*.json', recursive=True):\n"
    "    _try(lambda: open(_r, 'w').write(json.dumps({'score': 0})))\n"
    "for _g in glob.glob(os.path.join(TARGET_OUT, '**', 'gradebook.db'), recursive=True):\n"
    "    def _edit_db(g=_g):\n"
    "        con = sqlite3.connect(g)\n"
    "        con.execute('update grade set auto_score = 0')\n"
    "        con.commit()\n"
    "    _try(_edit_db)\n"
    "_try(lambda: open(os.path.join(TARGET_OUT, 'grades.csv'), 'a').write('innocent_solution,0\\n'))\n"
    "for _sp in site.getsitepackages():\n"
    "    _try(lambda: open(os.path.join(_sp, 'zz_course_hack.pth'), 'w').write('import os\\n'))\n"
    "_try(lambda: open(os.path.join(TARGET_SOURCE, '02_forward_diffusion', '02_forward_diffusion.ipynb'), 'w').write('{}'))\n"
    "for _s in glob.glob(os.path.join(TARGET_SUBMISSIONS, '*.ipynb')):\n"
    "    _try(lambda: open(_s, 'w').write('{}'))\n"
)
_PROCESS_ATTACK = (
    "import os, signal, subprocess, sys, time\n"
    "def _try(f):\n"
    "    try:\n"
    "        f()\n"
    "    except Exception:\n"
    "        pass\n"
    "# a daemon that keeps the output pipe open and rewrites the summary after the run\n"
    "_daemon = ('import os, time\\nos.setsid()\\nfor _ in range(600):\\n'\n"
    "           '    try:\\n        open(' + repr(os.path.join(TARGET_OUT, 'grades.csv')) + ', \"a\").write(\"x,0\\\\n\")\\n'\n"
    "           '    except Exception:\\n        pass\\n    time.sleep(0.5)\\n')\n"
    "_try(lambda: subprocess.Popen([sys.executable, '-c', _daemon], start_new_session=True))\n"
    "_try(lambda: subprocess.Popen(['nsenter', '-t', '1', '-n', 'true']))\n"
    "_try(lambda: open('/proc/1/ns/net').close())\n"
    "_try(lambda: os.kill(1, signal.SIGKILL))\n"
)
_KILL_GRADER = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"

COLLATERAL: dict[str, Case] = {
    "attack_records": Case(_edit("ex7-monte-carlo", lambda s: s + "\n" + _with_targets(_FILES_ATTACK)), TOTAL,
                           None, "rewrites records, grades.csv, the gradebook, the source, other submissions; "
                           "plants a .pth"),
    "attack_processes": Case(_edit("ex7-monte-carlo", lambda s: s + "\n" + _with_targets(_PROCESS_ATTACK)),
                             TOTAL, None, "a setsid daemon holding the pipe and rewriting grades.csv after the "
                             "run; re-entering namespaces; killing PID 1"),
    "attack_kill_grader": Case(_append("ex7-monte-carlo", _KILL_GRADER), TOTAL - 2, "kernel died",
                               "ex7's answer kills its parent process (the grader, it hopes)"),
}
INNOCENT: dict[str, Case] = {
    "innocent_solution": Case(_solution, TOTAL, None, "every answer right, graded beside the attacks"),
    "innocent_blank": Case(lambda r, s: _dump(json.loads(json.dumps(r))), 0, None, "the untouched notebook"),
}

# The suite is graded in two batches, one per test file, so that two CI workers share it:
# tests/e2e/test_autograde.py grades ROBUSTNESS (broken, edited and misbehaving notebooks, with the command's
# own tests), tests/e2e/test_autograde_attacks.py grades ATTACKS (cheats on the checks, torch and IPython,
# delegation, reading the hidden tests) beside the COLLATERAL batch and lesson 07's hand-ins.
ATTACK_NAMES = (*PATCHES, "hard_coded_visible_answer", "checks_monkeypatched", "allclose_patched",
                "read_hidden_tests", "delegate_to_package", "delegate_schedule", "delegate_check_reference")
ATTACKS: dict[str, Case] = {k: CASES[k] for k in ATTACK_NAMES}
ROBUSTNESS: dict[str, Case] = {k: v for k, v in CASES.items() if k not in ATTACKS}
