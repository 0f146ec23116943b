"""What a learner gets: the JupyterLab of ``./course.sh open`` and the student notebooks as released.

* ``./course.sh open`` starts JupyterLab without nbgrader's instructor UI: the test starts it headless
  (``--no-browser``, a free port, no token), reads the page config JupyterLab serves at ``/lab`` and
  asks nbgrader's server endpoints; ``./course.sh instructor`` is the instructor's view.
* Every student notebook, left unanswered and run top to bottom, fails only in its exercise answer cells
  and their test cells: that is checked on the untouched notebook each lesson's end-to-end test already
  autogrades (``lesson_harness.LessonTests.test_untouched_student_notebook_fails_only_in_its_exercises``,
  rule ``lesson_harness.unexpected_errors``, tested here), so no notebook is executed twice.
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

from lesson_harness import unexpected_errors

REPO = Path(__file__).resolve().parents[2]


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
