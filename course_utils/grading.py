"""Instructor helpers around nbgrader: find submissions that would grade silently to 0.

A submitted notebook whose nbgrader cell metadata was stripped — re-saved by a tool that drops cell
metadata, or its cells pasted into a new notebook — autogrades without any error: nbgrader finds no
answer or test cells, records every grade as ``None`` and the total as 0. :func:`check_submission`
compares a submission with the released notebook and names the graded cells (by ``grade_id``) it lost;
:func:`check_submitted` does that for every file in the course's ``submitted/`` folder.

Command line (from the course root, before ``nbgrader autograde``)::

    python -m course_utils.grading check                      # every assignment in submitted/
    python -m course_utils.grading check 02_forward_diffusion # one assignment

It prints one line per submission and exits with status 1 when any submission lost graded cells.
This module does not need nbgrader. Lesson 07's class-agreement grade lives in :mod:`course_utils.assessment`;
``assess_class_agreement`` and ``AssessmentResult`` are re-exported here, where the notebooks import them.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .assessment import AssessmentResult, assess_class_agreement  # noqa: F401  (re-exported: notebooks import it here)

__all__ = ["graded_cells", "check_submission", "check_submitted", "SubmissionCheck", "main",
           "AssessmentResult", "assess_class_agreement"]


def _cells(nb) -> list[dict]:
    if isinstance(nb, (str, Path)):
        with open(nb, encoding="utf-8") as f:
            nb = json.load(f)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a Jupyter notebook (no 'cells' list).")
    return nb["cells"]


def graded_cells(nb) -> dict[str, str]:
    """``grade_id → role`` of the cells nbgrader scores or restores in a notebook (path or dict).

    Roles: ``"answer"`` (an autograded answer cell), ``"test"`` (a locked test cell with points),
    ``"manual"`` (a manually graded answer) and ``"task"``. Read-only cells are not listed: losing their
    metadata does not change a grade.
    """
    out: dict[str, str] = {}
    for cell in _cells(nb):
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        gid = meta.get("grade_id")
        if not gid:
            continue
        if meta.get("task"):
            out[gid] = "task"
        elif meta.get("grade") and meta.get("solution"):
            out[gid] = "manual"
        elif meta.get("grade"):
            out[gid] = "test"
        elif meta.get("solution"):
            out[gid] = "answer"
    return out


@dataclass
class SubmissionCheck:
    """What :func:`check_submission` found.

    Attributes:
        path: the submitted notebook.
        expected: grade_id → role, from the released notebook.
        missing: grade_ids of the released notebook with no cell carrying that id (and role) in the
            submission.
        error: why the submission could not be read at all, else None.
    """

    path: Path
    expected: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing

    @property
    def stripped(self) -> bool:
        """True when every graded cell lost its metadata (the whole notebook was stripped)."""
        return bool(self.expected) and len(self.missing) == len(self.expected)

    def message(self) -> str:
        if self.error:
            return f"{self.path}: cannot be read ({self.error}); nbgrader will fail or score it 0."
        if not self.missing:
            return f"{self.path}: ok ({len(self.expected)} graded cells present)."
        what = ("its nbgrader metadata was stripped" if self.stripped else
                f"{len(self.missing)} of {len(self.expected)} graded cells lost their nbgrader metadata "
                f"or were deleted")
        return (f"{self.path}: {what} ({', '.join(self.missing)}). nbgrader autograde would not complain: "
                f"it would record these grades as None and score them 0. Usually the notebook was saved by "
                f"a tool that drops cell metadata, or its cells were pasted into a new notebook. Ask for the "
                f"answers in a fresh copy of the released notebook (or restore the cells' metadata), then "
                f"autograde again.")


def check_submission(submission, release) -> SubmissionCheck:
    """Compare a submitted notebook with the released one (paths, or notebooks as dicts)."""
    path = Path(submission) if isinstance(submission, (str, Path)) else Path("<notebook>")
    expected = graded_cells(release)
    try:
        present = graded_cells(submission)
    except (OSError, ValueError) as err:        # json.JSONDecodeError is a ValueError
        return SubmissionCheck(path, expected, sorted(expected), error=f"{type(err).__name__}: {err}")
    missing = [gid for gid, role in expected.items() if present.get(gid) != role]
    return SubmissionCheck(path, expected, missing)


def check_submitted(course_root=".", assignments=None, release_directory: str = "notebooks",
                    submitted_directory: str = "submitted") -> list[SubmissionCheck]:
    """Check every ``submitted/<student>/<assignment>/<notebook>.ipynb`` against its released notebook.

    Args:
        course_root: the nbgrader course directory (holding ``nbgrader_config.py``).
        assignments: assignment names to check (default: all found under ``submitted/``).
        release_directory, submitted_directory: as in ``nbgrader_config.py`` (``notebooks``, ``submitted``).
    Returns:
        one :class:`SubmissionCheck` per submitted notebook, sorted by path.
    """
    root = Path(course_root)
    results = []
    for nb in sorted((root / submitted_directory).glob("*/*/*.ipynb")):
        assignment = nb.parent.name
        if assignments and assignment not in assignments:
            continue
        release = root / release_directory / assignment / nb.name
        if not release.exists():
            results.append(SubmissionCheck(nb, error=f"no released notebook {release} to compare with"))
            continue
        results.append(check_submission(nb, release))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.grading", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check", help="find submissions whose nbgrader metadata was stripped")
    p.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    p.add_argument("--course", default=".", help="the course root (default: the current directory)")
    args = parser.parse_args(argv)
    results = check_submitted(args.course, args.assignments or None)
    if not results:
        print(f"no submitted notebooks under {Path(args.course) / 'submitted'}")
        return 0
    for r in results:
        print(("ok      " if r.ok else "PROBLEM ") + r.message())
    bad = sum(not r.ok for r in results)
    print(f"{len(results)} submissions checked, {bad} with problems.")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
