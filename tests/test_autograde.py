"""The instructor's grading command (course_utils.autograde) on the adversarial suite of tests/grading/.

One run grades every case of ``tests/grading/cases.py`` (lesson 02) with tight limits; each case must
get the score it deserves and the flag a person needs. A second run must grade nothing again
(idempotent), and a run after one record is removed grades only that one. The table
case → expected → actual → seconds is written to ci-artifacts/grading_cases.md.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_data
from course_utils.autograde import Limits, find_submissions, grade_lesson, prepare_submission, scan_for_tampering
from grading.cases import CASES, LESSON, TOTAL

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "ci-artifacts"
LIMITS = Limits(cell_timeout=20, submission_timeout=240, memory_mb=6144, cpu_seconds=600)


def _release_and_solution():
    release = json.loads((REPO / "notebooks" / LESSON / f"{LESSON}.ipynb").read_text())
    solution = json.loads((REPO / "solutions" / LESSON / f"{LESSON}.ipynb").read_text())
    return release, solution


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    require_data()
    tmp = tmp_path_factory.mktemp("autograde")
    release, solution = _release_and_solution()
    flat = tmp / "submissions"
    flat.mkdir()
    for name, case in CASES.items():
        (flat / f"{name}.ipynb").write_bytes(case.build(release, solution))
    out = tmp / "out"
    lines = []
    results = grade_lesson(LESSON, flat, REPO, out, LIMITS, progress=lines.append)
    return {"results": {r.student: r for r in results}, "out": out, "flat": flat, "log": lines}


def test_every_case_gets_the_score_it_deserves_and_is_flagged(graded):
    results = graded["results"]
    rows, wrong = [], []
    for name, case in CASES.items():
        r = results[name]
        expected = case.expected
        ok_score = r.score == expected and r.max_score == TOTAL
        ok_flag = (case.flag is None and not r.flags) or (case.flag is not None and any(
            case.flag in f for f in r.flags))
        rows.append(f"| {name} | {case.what} | {case.expected:g} | {r.score:g} | {r.seconds:.1f} | "
                    f"{'; '.join(r.flags)[:160] or '–'} |")
        if name == "network_access" and not _network_isolated(r):
            continue                      # judged by test_network_access_is_refused (skipped there, with why)
        if not (ok_score and ok_flag):
            wrong.append(f"{name}: expected {case.expected:g} (flag {case.flag!r}), got {r.score:g} "
                         f"flags {r.flags} tests {r.tests}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "grading_cases.md").write_text(
        f"# Adversarial grading suite (lesson 02, {TOTAL} points)\n\nsandbox: {results['solution'].sandbox}\n\n"
        "| case | what | expected | actual | seconds | flags |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n")
    print("\n" + "\n".join(rows))
    assert not wrong, "\n".join(wrong)


def _network_isolated(r) -> bool:
    return "no network" in r.sandbox


def test_network_access_is_refused(graded):
    """The submission that opens a socket gets its deserved score, where the grader can cut the network."""
    r = graded["results"]["network_access"]
    if not _network_isolated(r):
        pytest.skip(f"network isolation is unavailable on this machine (sandbox: {r.sandbox!r}); "
                    "nothing to assert about the network case")
    case = CASES["network_access"]
    assert r.score == case.expected, f"network_access: expected {case.expected:g}, got {r.score:g}; {r.flags}"
    assert case.flag is None or any(case.flag in f for f in r.flags), r.flags


def test_summary_csv_lists_every_student_and_exercise(graded):
    import csv
    with open(graded["out"] / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["student"] for r in rows} == set(CASES)
    assert "ex5-q-sample-tests" in rows[0] and "flags" in rows[0]
    by = {r["student"]: r for r in rows}
    assert by["solution"]["status"] == "graded" and float(by["solution"]["score"]) == TOTAL
    assert by["empty_file"]["status"] == "not gradable"
    assert by["checks_monkeypatched"]["ex5-q-sample-tests"] == "0"


def test_rerun_is_idempotent_and_resumes(graded):
    """Nothing is graded twice; a removed record (a run stopped half-way) is graded again, alone."""
    out, flat = graded["out"], graded["flat"]
    before = {p.name: p.read_text() for p in out.glob("*.json")}
    lines = []
    again = grade_lesson(LESSON, flat, REPO, out, LIMITS, progress=lines.append)
    assert all("already graded" in line for line in lines)
    assert {p.name: p.read_text() for p in out.glob("*.json")} == before
    assert [r.score for r in again] == [graded["results"][r.student].score for r in again]
    (out / "solution.json").unlink()
    lines = []
    grade_lesson(LESSON, flat, REPO, out, LIMITS, progress=lines.append)
    regraded = [line for line in lines if "already graded" not in line]
    assert len(regraded) == 1 and "] solution: 11/11" in regraded[0]


def test_command_line_prints_table_and_attention_list(graded, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "course_utils.autograde", LESSON, str(graded["flat"]),
                           "--course", str(REPO), "--out", str(graded["out"]), "--cell-timeout", "20",
                           "--submission-timeout", "240", "--memory-mb", "6144", "--cpu-seconds", "600"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "need attention" in proc.stdout and "empty_file: the file is empty" in proc.stdout
    assert "grades.csv" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "course_utils.autograde", "99_nope", str(tmp_path),
                          "--course", str(REPO)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no lesson '99_nope'" in bad.stderr


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
    ("def q_sample(x0, t, a, noise):\n    out = x0.clone()\n    out[0] = 1\n    return out", False),
    ("torch.backends.cudnn.benchmark = True", False),
    ("import numpy as np\nx = np.zeros(3)\nx[1] = 2", False),
    ("class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.a = 1", False),
    ("this is not python", False),
])
def test_tamper_scan(src, flagged):
    assert bool(scan_for_tampering(src, {"check_q_sample", "torch", "GaussianDiffusion"})) is flagged


def test_prepare_restores_a_deleted_test_cell_after_its_answer():
    release, solution = _release_and_solution()
    raw = CASES["test_cell_deleted"].build(release, solution)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.ipynb"
        p.write_bytes(raw)
        prep = prepare_submission(p, release)
    ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in prep.notebook["cells"]]
    assert ids.index("ex5-q-sample-tests") == ids.index("ex5-q-sample") + 1
    assert any("was deleted" in f for f in prep.flags)
