"""What a learner gets: the JupyterLab of ``./course.sh open`` and the student notebooks as released.

* ``./course.sh open`` starts JupyterLab without nbgrader's instructor UI: the test starts it headless
  (``--no-browser``, a free port, no token), reads the page config JupyterLab serves at ``/lab`` and
  asks nbgrader's server endpoints; ``./course.sh instructor`` is the instructor's view.
* Every student notebook (``notebooks/0[1-7]*/*.ipynb``), left unanswered and run top to bottom, fails
  only in its exercise answer cells (``raise NotImplementedError``) and their test cells — the cells with
  nbgrader metadata ``solution`` or ``grade`` — and nowhere else: every demo cell falls back to the
  package's version of an unanswered exercise, so a learner sees every figure from the first run.
  Slow (minutes per lesson); run one lesson with ``-k 02_forward``. Fast mode as in
  ``tests/test_lesson0*.py`` (``course_utils.lessons``' environment of each lesson), one thread.
  The lessons in ``NO_FALLBACK_YET`` are skipped, each with the cells that still need a fallback.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course_utils import lessons

REPO = Path(__file__).resolve().parents[2]
STUDENT_NOTEBOOKS = sorted(REPO.glob("notebooks/0[1-7]*/*.ipynb"))
CELL_TIMEOUT = 900          # seconds per cell: a lesson's sampling cells take minutes on a loaded 2-core CPU

# Lessons whose student notebook still fails outside its exercises when nothing is answered (issue 16),
# skipped (not xfailed: no CI time is spent on them) until their demo cells fall back to the package's
# version. Cell numbers are those of the student notebook in notebooks/.
NO_FALLBACK_YET = {
    "04_training_sampling": "cells 11, 13 and 21 need the learner's trained model and sampling loop; a "
                            "fallback that re-executes them with the package's takes more than 10 minutes",
    "07_final_assessment": "cells 20, 21 and 26 (the project's training and figures) need the learner's "
                           "model by design",
}


def lesson_env(folder: str, tmp: Path) -> dict[str, str]:
    """One thread, quiet warnings and the data folder, then the lesson's fast-mode environment with its test
    settings, from the registry (``course_utils.lessons``, as tests/test_lesson0*.py run it)."""
    env = {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "COURSE_DATA_DIR": os.environ.get("COURSE_DATA_DIR", str(REPO / "data"))}
    env.update(lessons.get(folder[:2]).environment(tmp, tests=True))
    return env


def unexpected_errors(nb) -> list[str]:
    """The code cells of an executed notebook that raised although they are neither an exercise's answer
    cell nor a test cell (nbgrader ``solution`` / ``grade``)."""
    bad = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") or meta.get("grade"):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                bad.append(f"cell {i} ({first[:60]!r}): {out.get('ename')}: {str(out.get('evalue'))[:200]}")
    return bad


def test_the_error_rule_itself():
    nb = nbformat.v4.new_notebook()
    err = {"output_type": "error", "ename": "NotImplementedError", "evalue": "", "traceback": []}
    answer = nbformat.v4.new_code_cell("raise NotImplementedError()", outputs=[err])
    answer.metadata["nbgrader"] = {"solution": True, "grade_id": "ex1"}
    test = nbformat.v4.new_code_cell("check(f)", outputs=[err])
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "ex1-tests", "points": 1}
    demo = nbformat.v4.new_code_cell("model = SmallUNet()\nplot(model)", outputs=[err])
    nb.cells = [answer, test]
    assert unexpected_errors(nb) == []
    nb.cells.append(demo)
    assert unexpected_errors(nb) == ["cell 2 ('model = SmallUNet()'): NotImplementedError: "]


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[p.parent.name for p in STUDENT_NOTEBOOKS])
def test_unanswered_student_notebook_fails_only_in_exercise_cells(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    if path.parent.name in NO_FALLBACK_YET:
        pytest.skip(f"issue 16, no fallback yet: {NO_FALLBACK_YET[path.parent.name]}")
    pytest.importorskip("torch")
    if not (Path(lesson_env(path.parent.name, tmp_path)["COURSE_DATA_DIR"]) / "FashionMNIST").exists():
        pytest.skip("FashionMNIST is not prepared (./course.sh setup)")
    for key, value in lesson_env(path.parent.name, tmp_path).items():
        monkeypatch.setenv(key, value)              # the kernel inherits this process's environment
    work = tmp_path / path.parent.name
    work.mkdir()
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(work)}}).execute()
    answer_cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert answer_cells, "no exercise cells: is this a student notebook?"
    bad = unexpected_errors(nb)
    assert not bad, f"{path.relative_to(REPO)}: cells outside the exercises fail when nothing is answered:\n" \
        + "\n".join(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, ""


@pytest.mark.slow
def test_course_open_hides_nbgrader_instructor_ui(tmp_path):
    """The learner's server: nbgrader's lab extension is installed but disabled in /lab's page config,
    and its server extensions (formgrader, assignment list, validate, courses) are not loaded."""
    port = _free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(REPO / "course.sh"), "open", "--no-browser", f"--port={port}",
                             "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.open_browser=False"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base, deadline, status, page = f"http://127.0.0.1:{port}", time.time() + 180, 0, ""
        while time.time() < deadline and proc.poll() is None:
            try:
                status, page = _get(base + "/lab")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        assert status == 200, f"./course.sh open did not serve /lab (exit {proc.poll()})"
        m = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
        config = json.loads(m.group(1))
        installed = [e["name"] for e in config["federated_extensions"]]
        assert "@jupyter/nbgrader" in installed          # so that "disabled" below means something
        assert "@jupyter/nbgrader" in config["disabledExtensions"], config["disabledExtensions"]
        for endpoint in ("/formgrader", "/assignments", "/courses"):
            assert _get(base + endpoint)[0] == 404, f"nbgrader's {endpoint} is served to the learner"
        assert _get(base + "/api/contents/00_start_here.ipynb")[0] == 200    # the learner's root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
