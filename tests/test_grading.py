"""course_utils.grading: a submission that lost its nbgrader metadata is detected and explained."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from course_utils.grading import check_submission, check_submitted, graded_cells, main



def cell(gid=None, **flags):
    meta = {} if gid is None else {"nbgrader": {"grade_id": gid, "grade": False, "solution": False,
                                                "locked": False, **flags}}
    return {"cell_type": "code", "metadata": meta, "source": "", "outputs": [], "execution_count": None}


RELEASE = {"cells": [cell(), cell("imports", locked=True), cell("ex1", solution=True),
                     cell("ex1-tests", grade=True, locked=True, points=1),
                     cell("essay", grade=True, solution=True, points=2), cell("task1", task=True)],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def stripped(nb, keep=()):
    nb = json.loads(json.dumps(nb))
    for c in nb["cells"]:
        if c["metadata"].get("nbgrader", {}).get("grade_id") not in keep:
            c["metadata"].pop("nbgrader", None)
    return nb


def test_graded_cells_roles():
    assert graded_cells(RELEASE) == {"ex1": "answer", "ex1-tests": "test", "essay": "manual", "task1": "task"}


def test_intact_submission_is_ok():
    r = check_submission(RELEASE, RELEASE)
    assert r.ok and not r.stripped and "ok (4 graded cells" in r.message()


def test_stripped_submission_is_reported():
    r = check_submission(stripped(RELEASE), RELEASE)
    assert not r.ok and r.stripped
    assert r.missing == ["ex1", "ex1-tests", "essay", "task1"]
    msg = r.message()
    assert "nbgrader metadata was stripped" in msg and "score them 0" in msg


def test_partly_stripped_or_changed_role_is_reported():
    r = check_submission(stripped(RELEASE, keep=("ex1-tests", "essay", "task1")), RELEASE)
    assert r.missing == ["ex1"] and not r.stripped and "1 of 4 graded cells" in r.message()
    flipped = json.loads(json.dumps(RELEASE))
    flipped["cells"][2]["metadata"]["nbgrader"]["solution"] = False        # no longer an answer cell
    assert check_submission(flipped, RELEASE).missing == ["ex1"]


def test_unreadable_submission(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    r = check_submission(bad, RELEASE)
    assert not r.ok and r.error and "cannot be read" in r.message()


def test_check_submitted_and_cli(tmp_path, capsys):
    (tmp_path / "notebooks" / "a1").mkdir(parents=True)
    (tmp_path / "notebooks" / "a1" / "a1.ipynb").write_text(json.dumps(RELEASE))
    for student, nb in (("ann", RELEASE), ("bob", stripped(RELEASE))):
        folder = tmp_path / "submitted" / student / "a1"
        folder.mkdir(parents=True)
        (folder / "a1.ipynb").write_text(json.dumps(nb))
    (tmp_path / "submitted" / "cy" / "a2").mkdir(parents=True)
    (tmp_path / "submitted" / "cy" / "a2" / "a2.ipynb").write_text(json.dumps(RELEASE))
    results = check_submitted(tmp_path)
    assert [(r.path.parts[-3], r.ok) for r in results] == [("ann", True), ("bob", False), ("cy", False)]
    assert "no released notebook" in results[2].message()
    assert [r.path.parts[-3] for r in check_submitted(tmp_path, ["a1"])] == ["ann", "bob"]
    assert main(["check", "--course", str(tmp_path), "a1"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM" in out and "bob" in out and "2 submissions checked, 1 with problems" in out
    assert main(["check", "--course", str(tmp_path / "nowhere")]) == 0


def test_cli_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "course_utils.grading", "check", "--course", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "no submitted notebooks" in proc.stdout


def test_not_a_notebook():
    with pytest.raises(ValueError, match="not a Jupyter notebook"):
        graded_cells({"foo": 1})
