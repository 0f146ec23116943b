"""Finding submissions and checking them against the released notebook, before anything runs.

Unreadable, empty, oversized and non-notebook files, another lesson's notebook and stripped nbgrader
metadata are reported (nbgrader would grade them 0 without a word); edited locked cells and edited
nbgrader metadata are flagged (the grader always runs the instructor's test cells, never the student's);
deleted or moved test cells are put back after their answer cell. Student code that looks like tampering
is flagged for review by :mod:`.scan` — advisory only: the verdict is decided outside the sandbox.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .scan import module_names, scan_for_tampering

MAX_NOTEBOOK_BYTES = 20_000_000


# ------------------------------------------------------------------------------------------------
# Finding and checking submissions
# ------------------------------------------------------------------------------------------------
def find_submissions(lesson: str, folder: str | os.PathLike) -> dict[str, Path]:
    """``student → notebook`` from nbgrader's layout or a flat folder of ``<student>.ipynb`` files.

    Raises:
        ValueError: the folder does not exist or holds no notebook in either layout.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"submissions folder {folder} does not exist; pass nbgrader's submitted/ folder "
                         "or a folder of <student>.ipynb files.")
    found: dict[str, Path] = {}
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        notebooks = sorted((student_dir / lesson).glob("*.ipynb")) if (student_dir / lesson).is_dir() else []
        if notebooks:
            preferred = student_dir / lesson / f"{lesson}.ipynb"
            found[student_dir.name] = preferred if preferred in notebooks else notebooks[0]
    for nb in sorted(folder.glob("*.ipynb")):
        found.setdefault(nb.stem, nb)
    if not found:
        raise ValueError(f"no submissions for {lesson} in {folder}: expected <student>/{lesson}/{lesson}.ipynb "
                         f"(nbgrader's layout) or <student>.ipynb files.")
    bad = [s for s in found if not re.fullmatch(r"[A-Za-z0-9_.@+-]+", s)]
    if bad:
        raise ValueError(f"student ids may use letters, digits and _.@+- only (nbgrader ids); rename {bad}.")
    return found


def _nbgrader_meta(cell) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def _src(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _test_cells(release: dict) -> list[str]:
    """The grade_ids of the autograded test cells, in notebook order."""
    from ..grading import graded_cells

    return [gid for gid, role in graded_cells(release).items() if role == "test"]


def _exercise_of_cells(release: dict) -> dict[str, str]:
    """answer grade_id → the grade_id of the first test cell after it (the test that grades it)."""
    out, pending = {}, []
    for cell in release["cells"]:
        meta = _nbgrader_meta(cell)
        if meta.get("solution") and not meta.get("grade"):
            pending.append(meta["grade_id"])
        elif meta.get("grade"):
            for gid in pending:
                out[gid] = meta["grade_id"]
            pending = []
    return out


@dataclass
class Prepared:
    """A submission ready to run (``notebook``), or why it cannot be (``fatal``), and what to review."""

    notebook: dict | None
    flags: list[str]
    fatal: str | None = None


def prepare_submission(path: Path, release: dict) -> Prepared:
    """Read a submission, repair what can be repaired and flag the rest (see the module docstring)."""
    from ..grading import check_submission

    flags: list[str] = []
    try:
        size = path.stat().st_size
    except OSError as err:
        return Prepared(None, [f"cannot read the file: {err}"], "unreadable")
    if size == 0:
        return Prepared(None, ["the file is empty"], "empty file")
    if size > MAX_NOTEBOOK_BYTES:
        return Prepared(None, [f"the file is {size / 1e6:.0f} MB (limit {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB); "
                               "clear its outputs and resubmit"], "too large")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no 'cells' list")
        import nbformat
        nbformat.validate(nbformat.from_dict(nb))
    except Exception as err:                                  # noqa: BLE001 - any malformed file
        return Prepared(None, [f"not a valid notebook ({type(err).__name__}: {str(err)[:120]})"],
                        "not a notebook")

    rel_cells_by_id = {_nbgrader_meta(c).get("grade_id"): c for c in release["cells"]
                       if _nbgrader_meta(c).get("grade_id")}
    check = check_submission(nb, release)
    release_ids = set(check.expected)
    present = {_nbgrader_meta(c).get("grade_id") for c in nb["cells"]} - {None}
    if present and not (present & release_ids):
        return Prepared(None, ["its graded cells belong to another lesson (none of this lesson's grade ids)"],
                        "wrong lesson")
    answers = [gid for gid, role in check.expected.items() if role == "answer"]
    if all(gid in check.missing for gid in answers):
        flags.append("nbgrader metadata stripped (answer cells carry no grade ids): nbgrader would grade "
                     "it 0 silently; ask for the answers in a fresh copy of the released notebook")

    # edited locked cells and edited nbgrader metadata: nbgrader restores both from its gradebook
    for cell in nb["cells"]:
        gid = _nbgrader_meta(cell).get("grade_id")
        ref = rel_cells_by_id.get(gid)
        if ref is None or not (_nbgrader_meta(ref).get("locked") or _nbgrader_meta(ref).get("grade")):
            continue
        meta, rmeta = _nbgrader_meta(cell), _nbgrader_meta(ref)
        if (meta.get("points"), meta.get("grade"), meta.get("solution"), cell.get("cell_type")) != (
                rmeta.get("points"), rmeta.get("grade"), rmeta.get("solution"), ref.get("cell_type")):
            flags.append(f"{gid}: its nbgrader metadata or cell type was edited (nbgrader grades with the "
                         "released points and cell)")
        elif _src(cell).strip() != _src(ref).strip():
            flags.append(f"{gid}: the locked cell was edited (nbgrader runs the released version)")

    # put back deleted test cells, and move moved ones back after their answer cell
    rel_cells = rel_cells_by_id
    exercise_of = _exercise_of_cells(release)
    tests = _test_cells(release)
    sub_ids = [_nbgrader_meta(c).get("grade_id") for c in nb["cells"]]
    repaired = False
    for test in tests:
        answers_of_test = [a for a, t in exercise_of.items() if t == test]
        anchor = max((sub_ids.index(a) for a in answers_of_test if a in sub_ids), default=None)
        where = sub_ids.index(test) if test in sub_ids else None
        if where is not None and (anchor is None or where > anchor):
            continue
        if anchor is None and not answers_of_test:
            continue
        if where is not None:
            del nb["cells"][where]
            sub_ids.pop(where)
            flags.append(f"test cell {test} was moved above its answer; put back after it")
            if anchor is not None and anchor > where:
                anchor -= 1
        else:
            flags.append(f"test cell {test} was deleted; restored from the released notebook")
        if anchor is None:
            continue                   # its answer is gone too: nothing to test (scores 0)
        nb["cells"].insert(anchor + 1, json.loads(json.dumps(rel_cells[test])))
        sub_ids.insert(anchor + 1, test)
        repaired = True
    if repaired:
        nb.setdefault("metadata", {})["course_utils_autograde"] = {"repaired": True}

    # student-written code that looks like tampering: flagged for a person, never scored here
    locked_source = "\n".join(_src(c) for c in release["cells"] if c.get("cell_type") == "code"
                              and (_nbgrader_meta(c).get("locked") or _nbgrader_meta(c).get("grade"))
                              and not _nbgrader_meta(c).get("solution"))
    protected = module_names(locked_source)
    for cell in nb["cells"]:
        meta = _nbgrader_meta(cell)
        if cell.get("cell_type") != "code" or meta.get("locked") or (meta.get("grade") and not meta.get("solution")):
            continue
        reasons = scan_for_tampering(_src(cell), protected)
        if reasons:
            where = meta.get("grade_id") or f"cell {nb['cells'].index(cell) + 1}"
            flags.append(f"review {where}: {'; '.join(reasons[:3])} (advisory: the score is decided outside "
                         "the sandbox)")
    return Prepared(nb, flags)


