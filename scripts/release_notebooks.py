#!/usr/bin/env python
"""Regenerate every student notebook (notebooks/) from its solution notebook (solutions/) with nbgrader.

    python scripts/release_notebooks.py            # regenerate notebooks/<lesson>/ for every lesson
    python scripts/release_notebooks.py 02_forward_diffusion      # only these lessons
    python scripts/release_notebooks.py 00_start_here             # only the start page (not graded)
    python scripts/release_notebooks.py --check    # exit 1 and list the differences when stale
    python scripts/release_notebooks.py --gradebook  # also record the lessons in gradebook.db
                                                   # (instructors: needed once before autograde)

Works from any directory. The lessons are those of the registry, :mod:`course_utils.lessons` (a folder of
solutions/ that is not registered is reported, and not released). What it does, per lesson folder ``solutions/<lesson>/``:

1. re-writes the "Open in Colab" badge and the Colab setup cell of each solution notebook (the cells
   tagged ``colab-badge`` / ``colab-setup``) from :mod:`course_utils.colab`, which holds the repository
   URL in one place;
2. runs ``nbgrader generate_assignment <lesson> --force --no-db`` in a temporary copy of the course (so
   the real gradebook is never touched and nbgrader finds ``nbgrader_config.py`` in its working
   directory), with this interpreter's ``bin/`` first on PATH;
3. replaces ``notebooks/<lesson>/`` with the result.

The start page (``solutions/00_start_here.ipynb``, not graded) gets its Colab cells and its lesson table
(the markdown cell tagged ``lesson-table``, written from :func:`course_utils.lessons.start_page_markdown`)
re-written in the solution too, and is copied to ``notebooks/`` without outputs.

With ``--gradebook`` it first runs ``nbgrader generate_assignment <lesson> --force`` in the repository
itself, which records every graded cell, its points and checksum in ``gradebook.db`` (what
``nbgrader autograde`` compares submissions with); the release in step 3 then overwrites notebooks/ with
the canonical output.

The output is deterministic (nbgrader adds no timestamps or random ids; cell ids come from the
solution notebook), so ``--check`` can compare bytes. ``--check`` changes nothing on disk: it reports
stale Colab cells in solutions/, notebooks that differ, files that should not be there, and student
folders without a solution.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
NOTEBOOKS = REPO / "notebooks"
CONFIG = REPO / "nbgrader_config.py"
START_PAGE = "00_start_here.ipynb"      # not graded: solutions/00_start_here.ipynb → notebooks/00_start_here.ipynb


def _registry():
    sys.path.insert(0, str(REPO))
    from course_utils import lessons as registry
    return registry


def lessons() -> list[str]:
    """The registered lessons' folders (course_utils.lessons), in order."""
    return [lesson.folder for lesson in _registry().LESSONS]


def unregistered() -> list[str]:
    """Folders of solutions/ that hold a notebook but are not in the registry."""
    known = set(lessons())
    return sorted(p.name for p in SOLUTIONS.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.ipynb")) and p.name not in known)


def sync_colab_cells(nb_path: Path, lesson: str, write: bool) -> bool:
    """Re-write the badge and setup cells from course_utils.colab; True when they were stale."""
    import nbformat

    sys.path.insert(0, str(REPO))
    from course_utils import colab

    nb = nbformat.read(nb_path, as_version=4)
    release_rel = f"{NOTEBOOKS.name}/{lesson}/{nb_path.name}"
    want = {colab.BADGE_TAG: colab.badge_markdown(release_rel), colab.SETUP_TAG: colab.setup_cell_source()}
    stale = False
    for cell in nb.cells:
        for tag, source in want.items():
            if tag in cell.metadata.get("tags", []) and cell.source != source:
                cell.source = source
                stale = True
    if stale and write:
        nbformat.write(nb, nb_path)
    return stale


LESSON_TABLE_TAG = "lesson-table"      # the start page's markdown cell written from course_utils.lessons


def release_start_page(check: bool) -> list[str]:
    """The start page: Colab cells and the lesson table synced (in the solution too, unless ``check``),
    outputs and run metadata cleared in the student copy (nothing to hide in it)."""
    import nbformat

    sys.path.insert(0, str(REPO))
    from course_utils import colab

    src = SOLUTIONS / START_PAGE
    if not src.exists():
        return []
    nb = nbformat.read(src, as_version=4)
    want = {colab.BADGE_TAG: (colab.badge_markdown(f"{NOTEBOOKS.name}/{START_PAGE}"),
                              "stale Colab badge/setup cell (see course_utils/colab.py)"),
            colab.SETUP_TAG: (colab.setup_cell_source(), "stale Colab badge/setup cell (see course_utils/colab.py)"),
            LESSON_TABLE_TAG: (_registry().start_page_markdown(), "stale lesson table (see course_utils/lessons.py)")}
    problems = []
    if not any(LESSON_TABLE_TAG in c.metadata.get("tags", []) for c in nb.cells):
        problems.append(f"no markdown cell tagged {LESSON_TABLE_TAG!r} for the lesson table: {src}")
    stale = False
    for cell in nb.cells:
        for tag, (source, what) in want.items():
            if tag in cell.metadata.get("tags", []) and cell.source != source:
                problems.append(f"{what}: {src}")
                cell.source = source
                stale = True
    if stale and not check:
        nbformat.write(nb, src)
        print(f"updated the generated cells of {src.relative_to(REPO)}")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "ExecuteTime"):
            cell.metadata.pop(key, None)
    text = nbformat.writes(nb) + "\n"
    target = NOTEBOOKS / START_PAGE
    if check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            problems.append(f"differs from its solution: {target}")
        return problems
    NOTEBOOKS.mkdir(exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"released {target.relative_to(REPO)}")
    return [p for p in problems if p.startswith("no markdown cell tagged")]


def _ignored(name: str) -> bool:
    """Never released: caches, and files a lesson writes when it runs (lesson 07's checkpoint, animations)."""
    return name in (".ipynb_checkpoints", "__pycache__") or name.endswith((".pyc", ".pt", ".pt.sha256", ".gif"))


def _nbgrader_env() -> dict:
    from course_utils.utils import tool_env
    return tool_env()                                     # the venv's `alembic` first on PATH


def record_in_gradebook(lesson_names: list[str]) -> None:
    """nbgrader generate_assignment in the repository root, with the database (see --gradebook)."""
    for lesson in lesson_names:
        proc = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", lesson, "--force",
                               "--log-level=WARN"], cwd=REPO, env=_nbgrader_env(), capture_output=True,
                              text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"nbgrader generate_assignment {lesson} failed (exit {proc.returncode})")
        print(f"recorded {lesson} in {REPO / 'gradebook.db'}")


def generate(source_root: Path, lesson_names: list[str], out: Path) -> None:
    """nbgrader generate_assignment for each lesson of ``source_root``, in a temporary course copy;
    the student folders end up under ``out``."""
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        course = Path(tmp)
        shutil.copy2(CONFIG, course / CONFIG.name)
        for lesson in lesson_names:
            shutil.copytree(source_root / lesson, course / SOLUTIONS.name / lesson,
                            ignore=lambda d, names: [n for n in names if _ignored(n)])
        # One nbgrader process for all of them: the course copy holds exactly these lessons, so the assignment
        # pattern "*" (nbgrader globs assignment ids) names them all; each process costs seconds to start.
        pattern = lesson_names[0] if len(lesson_names) == 1 else "*"
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", pattern, "--force", "--no-db",
               "--log-level=WARN"]
        proc = subprocess.run(cmd, cwd=course, env=_nbgrader_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"nbgrader generate_assignment {', '.join(lesson_names)} failed (exit {proc.returncode})")
        for lesson in lesson_names:
            if not (course / NOTEBOOKS.name / lesson).is_dir():
                raise SystemExit(f"nbgrader generate_assignment made no student folder for {lesson}")
            shutil.copytree(course / NOTEBOOKS.name / lesson, out / lesson)
            for nb in (out / lesson).rglob("*.ipynb"):
                _drop_run_metadata(nb)


def _drop_run_metadata(path: Path) -> None:
    """Remove per-run cell metadata (execution timestamps a notebook may have recorded when it ran):
    it would make the release differ between runs. nbgrader's checksums do not cover it."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        for key in ("execution", "ExecuteTime"):
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
    if changed:
        nbformat.write(nb, path)


def compare(generated: Path, committed: Path) -> list[str]:
    """Relative paths that differ between two lesson folders (missing, extra or changed)."""
    problems = []
    want = {p.relative_to(generated) for p in generated.rglob("*") if p.is_file()}
    have = {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()
            and not any(_ignored(part) for part in p.parts)} if committed.exists() else set()
    for rel in sorted(want - have):
        problems.append(f"missing: {committed / rel}")
    for rel in sorted(have - want):
        problems.append(f"not produced by the release command: {committed / rel}")
    for rel in sorted(want & have):
        if not filecmp.cmp(generated / rel, committed / rel, shallow=False):
            problems.append(f"differs from its solution: {committed / rel}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lessons", nargs="*", help="lesson folders of solutions/ (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when notebooks/ (or the Colab cells) are stale")
    parser.add_argument("--gradebook", action="store_true",
                        help="also record the lessons in the course's gradebook.db (before autograde)")
    args = parser.parse_args(argv)
    if args.check and args.gradebook:
        parser.error("--check changes nothing; it cannot be combined with --gradebook")
    start = Path(START_PAGE).stem
    with_start = not args.lessons or start in args.lessons
    names = [n for n in args.lessons if n != start] if args.lessons else lessons()
    unknown = [n for n in names if not (SOLUTIONS / n).is_dir()]
    if unknown:
        parser.error(f"no such lesson folder in {SOLUTIONS}: {', '.join(unknown)}")

    # A folder that is not in the registry is reported and not released (the registry is the list of lessons).
    stray = unregistered() if not args.lessons else [n for n in names if n not in set(lessons())]
    names = [n for n in names if n not in stray]
    problems: list[str] = [f"lesson folder not in the registry (add it to course_utils/lessons.py): {SOLUTIONS / n}"
                           for n in stray]
    with tempfile.TemporaryDirectory(prefix="release-src-") as tmp_src:
        if args.check:
            # Work on copies with the Colab cells synced, so the check sees what a release would produce.
            src = Path(tmp_src)
            for n in names:
                shutil.copytree(SOLUTIONS / n, src / n, ignore=lambda d, ns: [x for x in ns if _ignored(x)])
                for nb in sorted((src / n).glob("*.ipynb")):
                    if sync_colab_cells(nb, n, write=True):
                        problems.append(f"stale Colab badge/setup cell (see course_utils/colab.py): "
                                        f"{SOLUTIONS / n / nb.name}")
        else:
            for n in names:
                for nb in sorted((SOLUTIONS / n).glob("*.ipynb")):
                    if sync_colab_cells(nb, n, write=True):
                        print(f"updated the Colab cells of {nb.relative_to(REPO)}")
            if args.gradebook:
                record_in_gradebook(names)

        with tempfile.TemporaryDirectory(prefix="release-out-") as tmp_out:
            out = Path(tmp_out)
            if names:                                     # (nbgrader's environment imports torch: slow)
                generate(Path(tmp_src) if args.check else SOLUTIONS, names, out)
            for n in names:
                if args.check:
                    problems += compare(out / n, NOTEBOOKS / n)
                else:
                    target = NOTEBOOKS / n
                    if target.exists():
                        shutil.rmtree(target)
                    shutil.copytree(out / n, target)
                    print(f"released {target.relative_to(REPO)}/")

    if with_start:
        problems += release_start_page(check=args.check)
    if not args.lessons and NOTEBOOKS.exists():
        for d in sorted(p for p in NOTEBOOKS.iterdir() if p.is_dir() and not _ignored(p.name)):
            if d.name not in names:
                problems.append(f"student folder without a solution in {SOLUTIONS.name}/: {d}")
    if problems:
        print("\n".join(problems))
        if args.check:
            print("The student notebooks are stale: run `python scripts/release_notebooks.py` and commit "
                  "the result.")
        return 1
    if args.check:
        print(f"notebooks/ is up to date ({len(names)} lesson{'s' if len(names) != 1 else ''}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
