"""Writing the trusted verdicts into nbgrader's gradebook and the autograded notebooks.

The scores come from the judge, not from nbgrader executing anything; this module records them where
nbgrader's own tools look, so ``nbgrader generate_feedback``, ``nbgrader export`` and the formgrader work on
the grading course (``<out>/work``) as after ``nbgrader autograde``. The autograded notebook is the
student's executed notebook with every test cell put back to the released text and its output replaced by
the judge's ✓/✗ lines.
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["COURSE_ID", "record_scores", "autograded_notebook"]

COURSE_ID = "diffusion-course"
MAX_TEXT = 20_000                 # characters kept per text output in the autograded notebook


def _meta(cell) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def _trim(outputs: list) -> list:
    kept = []
    for o in outputs:
        o = dict(o)
        if o.get("output_type") == "stream":
            text = "".join(o.get("text", "")) if isinstance(o.get("text"), list) else str(o.get("text", ""))
            o["text"] = text[:MAX_TEXT] + ("\n… (output cut by the grader)" if len(text) > MAX_TEXT else "")
        elif len(json.dumps(o)) > 2_000_000:
            o = {"output_type": "stream", "name": "stdout", "text": "(a large output was dropped by the grader)\n"}
        kept.append(o)
    return kept


def autograded_notebook(executed: dict | None, submitted: dict, release: dict, verdicts: dict[str, str]) -> dict:
    """The notebook nbgrader's feedback and formgrader show: the student's cells with their outputs, each
    test cell as released with the judge's text (``verdicts[test grade_id]``) as its output."""
    import nbformat

    nb = submitted
    if executed is not None:
        try:
            nbformat.validate(nbformat.from_dict(executed))
            nb = executed
        except Exception:  # noqa: BLE001 - an executed file the sandbox mangled: fall back to the submission
            nb = submitted
    nb = json.loads(json.dumps(nb))
    released = {_meta(c).get("grade_id"): c for c in release["cells"] if _meta(c).get("grade_id")}
    for cell in nb["cells"]:
        gid = _meta(cell).get("grade_id")
        ref = released.get(gid)
        if cell.get("cell_type") == "code":
            cell["outputs"] = _trim(cell.get("outputs", []))
        if ref is not None and _meta(ref).get("grade") and not _meta(ref).get("solution"):
            cell["source"] = ref["source"]
            cell["metadata"] = json.loads(json.dumps(ref["metadata"]))
            cell["cell_type"] = "code"
            cell.setdefault("execution_count", None)
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": verdicts.get(gid, "") + "\n"}]
    nb.setdefault("metadata", {})["course_utils_autograde"] = {"verdicts": "decided outside the sandbox"}
    return nb


def record_scores(course: Path, lesson: str, scores: dict[str, dict[str, float]]) -> None:
    """Put ``student → {test grade_id: points}`` into the course's gradebook as nbgrader's auto scores."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        for student, tests in scores.items():
            gb.update_or_create_student(student)
            try:
                gb.remove_submission(lesson, student)
            except MissingEntry:
                pass
            gb.add_submission(lesson, student)
            for test, points in tests.items():
                grade = gb.find_grade(test, lesson, lesson, student)
                grade.auto_score = float(points)
                grade.needs_manual_grade = False
            gb.db.commit()
