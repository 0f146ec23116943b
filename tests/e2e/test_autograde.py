"""The instructor's grading command (course_utils.autograde) on the robustness half of the adversarial suite
of tests/e2e/grading/ (the cheats are in tests/e2e/test_autograde_attacks.py; the two files grade in
parallel on two CI workers).

One run grades the broken, edited and misbehaving lesson 02 notebooks of ``grading.cases.ROBUSTNESS`` (an
infinite loop, a killed kernel, a huge output, a memory hog, a socket, deleted, moved or edited test cells,
raised points, unreadable or stripped files, …) with tight limits, from a private copy of the source notebooks
(the layout the README tells instructors to use); each case must get the score it deserves and the flag a
person needs, graded two at a time (``jobs=2``). A re-run must grade nothing again (idempotent), and a run after one record is removed grades
only that one; the command line prints the table and the attention list. The table case → expected →
actual → seconds goes to ci-artifacts/grading_cases_robustness.md. Also here: the static scan, the planner
and the submission finder, which need no sandbox.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_data
from course_utils.autograde import (Limits, find_submissions, grade_lesson, plan_test_cells, prepare_submission,
                                    scan_for_tampering)
from course_utils.autograde import sandbox
from grading.cases import LESSON, ROBUSTNESS, TOTAL
from grading.suite import LIMITS, case_table, grade_batch, need_sandbox, network_isolated, release_and_solution

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    require_data()
    need_sandbox()
    lines = []
    # two at a time, as the command does on two cores: a hog or a killed kernel beside a sound notebook must
    # not cost that notebook a point
    return {**grade_batch(tmp_path_factory.mktemp("autograde"), ROBUSTNESS, lines.append, jobs=2), "log": lines}


def test_every_case_gets_the_score_it_deserves_and_is_flagged(graded):
    """The broken, edited and misbehaving notebooks (the attacks are graded by test_autograde_attacks.py)."""
    wrong = case_table("robustness", ROBUSTNESS, graded["results"])
    assert not wrong, "\n".join(wrong)


def test_network_access_is_refused(graded):
    """The submission that opens a socket gets its deserved score, where the grader can cut the network."""
    r = graded["results"]["network_access"]
    if not network_isolated(r):
        pytest.skip(f"network isolation is unavailable on this machine (sandbox: {r.sandbox!r}); "
                    "nothing to assert about the network case")
    case = ROBUSTNESS["network_access"]
    assert r.score == case.expected, f"network_access: expected {case.expected:g}, got {r.score:g}; {r.flags}"


def test_summary_csv_lists_every_student_and_exercise(graded):
    with open(graded["out"] / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["student"] for r in rows} == set(ROBUSTNESS)
    assert "ex5-q-sample-tests" in rows[0] and "flags" in rows[0]
    by = {r["student"]: r for r in rows}
    assert by["solution"]["status"] == "graded" and float(by["solution"]["score"]) == TOTAL
    assert by["empty_file"]["status"] == "not gradable"
    assert by["bad_outputs"]["ex5-q-sample-tests"] == "0" and by["bad_outputs"]["ex1-linear-betas-tests"] == "1"


def test_rerun_is_idempotent_and_resumes(graded):
    """Nothing is graded twice; a removed record (a run stopped half-way) is graded again, alone."""
    out, flat, source = graded["out"], graded["flat"], graded["source"]
    before = {p.name: p.read_text() for p in out.glob("*.json")}
    lines = []
    again = grade_lesson(LESSON, flat, REPO, out, LIMITS, progress=lines.append, source=source)
    assert all("already graded" in line for line in lines)
    assert {p.name: p.read_text() for p in out.glob("*.json")} == before
    assert [r.score for r in again] == [graded["results"][r.student].score for r in again]
    (out / "solution.json").unlink()
    lines = []
    grade_lesson(LESSON, flat, REPO, out, LIMITS, progress=lines.append, source=source)
    regraded = [line for line in lines if "already graded" not in line]
    assert len(regraded) == 1 and "] solution: 11/11" in regraded[0]


def test_command_line_prints_table_and_attention_list(graded, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "course_utils.autograde", LESSON, str(graded["flat"]),
                           "--course", str(REPO), "--source", str(graded["source"]), "--out", str(graded["out"]),
                           # the suite's limits, so that the command finds every record current and re-grades none
                           "--cell-timeout", str(LIMITS.cell_timeout), "--submission-timeout",
                           str(LIMITS.submission_timeout), "--memory-mb", str(LIMITS.memory_mb),
                           "--cpu-seconds", str(LIMITS.cpu_seconds)], capture_output=True, text=True, timeout=600)
    assert "already graded" in proc.stdout, proc.stdout[-2000:]
    assert proc.returncode == 0, proc.stderr
    assert "need attention" in proc.stdout and "empty_file: the file is empty" in proc.stdout
    assert "grades.csv" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "course_utils.autograde", "99_nope", str(tmp_path),
                          "--course", str(REPO)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no lesson '99_nope'" in bad.stderr


def test_refuses_untrusted_grading_without_a_sandbox(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "available", lambda: (False, "bubblewrap (bwrap) is not installed"))
    (tmp_path / "alice.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="--trusting"):
        grade_lesson(LESSON, tmp_path, REPO, tmp_path / "out", LIMITS)


def test_nbgrader_layout_and_bad_folders(tmp_path):
    (tmp_path / "alice" / LESSON).mkdir(parents=True)
    (tmp_path / "alice" / LESSON / f"{LESSON}.ipynb").write_text("{}")
    (tmp_path / "bob.ipynb").write_text("{}")
    assert set(find_submissions(LESSON, tmp_path)) == {"alice", "bob"}
    with pytest.raises(ValueError, match="does not exist"):
        find_submissions(LESSON, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no submissions"):
        find_submissions(LESSON, tmp_path / "empty")
    with pytest.raises(ValueError, match="positive int"):
        Limits(cell_timeout=0)


@pytest.mark.parametrize("src,flagged", [
    ("torch.allclose = lambda *a, **k: True", True),
    ("import course_utils.checks as c\nc.check_q_sample = print", True),
    ("check_q_sample = lambda fn: None", True),
    ("def check_q_sample(fn):\n    pass", True),
    ("import builtins\nbuiltins.len = lambda x: 0", True),
    ("exec('x = 1')", True),
    ("import os\nos.environ['COURSE_ASSESSMENT_THRESHOLD'] = '0'", True),
    ("AssertionError = Exception", True),
    ("from unittest.mock import patch", True),
    ("f.__code__ = g.__code__", True),
    ("get_ipython().events.register('post_run_cell', print)", True),
    ("this is not valid python !", True),                       # unparsable: flagged for review, never waved through
    ("%time x = 1", True),
    ("def q_sample(x0, t, a, noise):\n    out = x0.clone()\n    out[0] = 1\n    return out", False),
    ("torch.backends.cudnn.benchmark = True", False),
    ("import numpy as np\nx = np.zeros(3)\nx[1] = 2", False),
    ("class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.a = 1", False),
    ("from torch.nn import functional as F\ny = F.relu(x)", False),
    ("model.eval()\nwith torch.no_grad():\n    y = model(x)", False),
])
def test_tamper_scan(src, flagged):
    assert bool(scan_for_tampering(src, {"check_q_sample", "torch", "GaussianDiffusion", "F"})) is flagged


@pytest.mark.parametrize("notebook", sorted(str(p.relative_to(REPO)) for p in
                                            [*REPO.glob("notebooks/0*/*.ipynb"), *REPO.glob("solutions/0*/*.ipynb")]))
def test_scan_flags_nothing_in_the_course_notebooks(notebook):
    """No false positives: the released notebooks and the solutions, as the scan sees a submission."""
    nb = json.loads((REPO / notebook).read_text())
    meta = lambda c: c.get("metadata", {}).get("nbgrader", {})  # noqa: E731
    flagged = {}
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code" or meta(c).get("locked") or (meta(c).get("grade") and not meta(c).get("solution")):
            continue
        src = "".join(c["source"]).replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
        reasons = scan_for_tampering(src, {"check_q_sample", "torch", "F", "plt", "np"})
        if reasons:
            flagged[meta(c).get("grade_id") or i] = reasons
    assert not flagged, flagged


@pytest.mark.parametrize("lesson", sorted(p.name for p in REPO.glob("solutions/0*") if p.is_dir()))
def test_every_test_cell_can_be_decided_outside(lesson):
    """Every graded test cell of every lesson is made of check calls the grader can plan."""
    plans = plan_test_cells(json.loads((REPO / "solutions" / lesson / f"{lesson}.ipynb").read_text()))
    assert plans and all(plans.values()), plans


def test_prepare_restores_a_deleted_test_cell_after_its_answer():
    """ex5's test cell deleted and ex3's moved above its answer: both are put back right after their answers."""
    release, solution = release_and_solution()
    raw = ROBUSTNESS["test_cells_tampered"].build(release, solution)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.ipynb"
        p.write_bytes(raw)
        prep = prepare_submission(p, release)
    ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in prep.notebook["cells"]]
    assert ids.index("ex5-q-sample-tests") == ids.index("ex5-q-sample") + 1
    assert ids.index("ex3-forward-step-tests") == ids.index("ex3-forward-step") + 1
    assert any("was deleted" in f for f in prep.flags) and any("was moved" in f for f in prep.flags)


