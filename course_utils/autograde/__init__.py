"""Grade a folder of submissions for one lesson: every submission sandboxed, every verdict decided outside.

Command line, from the course root (the folder holding ``nbgrader_config.py``)::

    python -m course_utils.autograde 02_forward_diffusion path/to/submissions
    python -m course_utils.autograde 07_final_assessment submitted/ --source ~/private/solutions

``path/to/submissions`` is nbgrader's layout (``<student>/<lesson>/<lesson>.ipynb``) or a flat folder of
``<student>.ipynb`` files; ``--source`` is the folder of the instructor's source notebooks (with the hidden
tests; default ``<course>/solutions``). Results go to ``grading/<lesson>/``: ``grades.csv``, one JSON record
per student, the autograded notebooks, and a grading course (``work/``) whose gradebook holds the scores
for ``nbgrader generate_feedback``, ``nbgrader export`` and the formgrader.

The pipeline, one module a step: :mod:`.submissions` (check and repair the file; :mod:`.scan` flags code
to review, advisory only), :mod:`.plan` (the test cells' check calls, inputs made from a grading-time seed),
:mod:`.sandbox` + :mod:`.runner` + :mod:`.kernel` (phase 1: run the student's notebook and the check calls
in bubblewrap as uid 65534, no network, limits, a deadline; the package's answer is blocked), :mod:`.judge`
(phase 2: decide each test from plain outputs, in a process that never loaded student code),
:mod:`.gradebook` (record in nbgrader's gradebook), :mod:`.pipeline` (the loop, records, summary).
"""
from __future__ import annotations

from .pipeline import Limits, SubmissionResult, grade_lesson, main, write_summary
from .plan import PlanError, plan_test_cells
from .scan import scan_for_tampering
from .submissions import find_submissions, prepare_submission

__all__ = ["Limits", "SubmissionResult", "grade_lesson", "main", "write_summary", "find_submissions",
           "prepare_submission", "scan_for_tampering", "plan_test_cells", "PlanError"]
