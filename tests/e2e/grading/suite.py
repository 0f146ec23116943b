"""What both halves of the adversarial grading suite share (tests/e2e/test_autograde.py grades the robustness
cases, tests/e2e/test_autograde_attacks.py the attacks): the limits, the private source copy, building and
grading one batch, and the table of case → expected → actual → seconds written to ci-artifacts/."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from course_utils.autograde import Limits, grade_lesson
from course_utils.autograde import sandbox
from grading.cases import LESSON, TARGETS, TOTAL

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "ci-artifacts"
LIMITS = Limits(cell_timeout=10, submission_timeout=240, memory_mb=6144, cpu_seconds=600)


def need_sandbox() -> None:
    """Skip where bubblewrap cannot run (a learner's laptop); in CI (CI=true) that is a failure, not a skip."""
    ok, why = sandbox.available()
    if not ok:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(f"no sandbox here: {why}")


def release_and_solution():
    release = json.loads((REPO / "notebooks" / LESSON / f"{LESSON}.ipynb").read_text())
    solution = json.loads((REPO / "solutions" / LESSON / f"{LESSON}.ipynb").read_text())
    return release, solution


def private_source(tmp: Path) -> Path:
    """The instructor's private copy of the source notebooks (outside the released repository)."""
    src = tmp / "instructor" / "source"
    shutil.copytree(REPO / "solutions" / LESSON, src / LESSON)
    return src


def build(cases: dict, folder: Path) -> None:
    release, solution = release_and_solution()
    folder.mkdir(parents=True)
    for name, case in cases.items():
        (folder / f"{name}.ipynb").write_bytes(case.build(release, solution))


def digests(paths) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def grade_batch(tmp: Path, cases: dict, progress, jobs: int = 1) -> dict:
    """Build ``cases`` (aimed at this run's real paths) and grade them in one batch from a private source copy,
    ``jobs`` submissions at a time."""
    source = private_source(tmp)
    flat, out = tmp / "submissions", tmp / "out"
    TARGETS.update(out=str(out), source=str(source), submissions=str(flat), repo_solutions=str(REPO / "solutions"))
    build(cases, flat)
    before = digests([*flat.glob("*.ipynb"), *source.rglob("*.ipynb")])
    results = grade_lesson(LESSON, flat, REPO, out, LIMITS, progress=progress, source=source, jobs=jobs)
    return {"results": {r.student: r for r in results}, "out": out, "flat": flat, "source": source,
            "before": before}


def network_isolated(r) -> bool:
    return "network" in r.sandbox


def case_table(part: str, cases: dict, results: dict) -> list[str]:
    """Write ci-artifacts/grading_cases_<part>.md (one row per case) and return what did not get the score
    and flag it deserves."""
    rows, wrong = [], []
    for name, case in cases.items():
        r = results[name]
        ok_score = r.score == case.expected and r.max_score == TOTAL
        ok_flag = (not case.flags and not r.flags) or (case.flags and all(
            any(want in f for f in r.flags) for want in case.flags))
        if case.lost is not None:          # which test cells lost their points, not only how many points
            ok_score &= {t for t, v in r.tests.items() if v == 0} == set(case.lost)
        rows.append(f"| {name} | {case.what} | {case.expected:g} | {r.score:g} | {r.seconds:.1f} | "
                    f"{'; '.join(r.flags)[:160] or '–'} |")
        if name == "network_access" and not network_isolated(r):
            continue                      # judged by test_network_access_is_refused (skipped there, with why)
        if not (ok_score and ok_flag):
            wrong.append(f"{name}: expected {case.expected:g} (flag {case.flag!r}), got {r.score:g} "
                         f"flags {r.flags} tests {r.tests}\n    verdicts: "
                         + " | ".join(v[:200] for v in r.verdicts.values() if "✗" in v))
    ARTIFACTS.mkdir(exist_ok=True)
    sandbox_line = next(iter(results.values())).sandbox
    (ARTIFACTS / f"grading_cases_{part}.md").write_text(
        f"# Adversarial grading suite, {part} (lesson 02, {TOTAL} points)\n\nsandbox: {sandbox_line}\n\n"
        "| case | what | expected | actual | seconds | flags |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n")
    print("\n" + "\n".join(rows))
    return wrong
