"""The widgets in a real JupyterLab, driven by headless Chromium (Debian's package) through Playwright.

A module fixture starts JupyterLab from this venv on a free loopback port with a random token, on a
temporary copy of the solution notebooks. For each lesson with a widget the test opens the notebook,
runs every cell from the Run menu, moves the widget's slider to several positions through its
readout (as a learner typing a value), screenshots the widget's image after each move and asserts that
the image changed, that the page shows no widget error ("Error displaying widget", "Model not
found"), the console no JavaScript error and no cell anything on stderr (but the lines BENIGN_STDERR
names, with their reasons). The lessons and their moves come from the registry (course_utils.lessons).
Screenshots and a summary (slider positions, changed or not) go to ci-artifacts/browser/, whose paths
are printed.

The kernels run with COURSE_GRADING=1 (the demonstrations at the grader's sizes: fewer samples and steps,
the same widget code); the learner's CPU sizes are executed by each lesson's nbval test.

Chromium missing: skipped locally, a failure in CI (`./course.sh test` installs it as root).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import IN_CI, require_data
from course_utils.lessons import LESSONS
from course_utils.utils import GRADING_ENV

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "ci-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"

# lesson → the moves a learner makes on the notebook's last widget (its last slider / dropdown), from the
# registry (course_utils.lessons, Lesson.browser_moves): ("start", None): the first screenshot only;
# ("type", v): type v into the slider's readout; ("key", k): press k on the slider's handle;
# ("select", label): choose label in the dropdown. The image must change after every move.
SCRUBBERS = {lesson.folder: list(lesson.browser_moves) for lesson in LESSONS if lesson.browser_moves}
# Console messages that are not JavaScript errors of the course: external images (the Colab badge) offline.
BENIGN_CONSOLE = ("Failed to load resource", "ERR_NAME_NOT_RESOLVED", "ERR_INTERNET_DISCONNECTED")
# stderr lines a cell may print that are no error of the course, each with its reason. Nothing else may
# reach stderr: a warning, a traceback (JupyterLab renders errors as stderr too) or a progress bar on
# stderr would also cost a learner the points of a test cell under nbgrader.
BENIGN_STDERR = (
    # matplotlib, imported for the first time on a clean machine (CI), builds its font cache once
    "Matplotlib is building the font cache; this may take a moment.",
)


def stderr_problems(texts: list[str]) -> list[str]:
    """The stderr outputs' lines that are not in BENIGN_STDERR (blank lines ignored)."""
    return [f"stderr output: {line.strip()}" for text in texts for line in text.splitlines()
            if line.strip() and not any(line.strip().startswith(b) for b in BENIGN_STDERR)]


def test_benign_stderr_filter_keeps_every_other_line():
    texts = ["Matplotlib is building the font cache; this may take a moment.\n",
             "Traceback (most recent call last):\n  File ...\nValueError: bad\n", "\n",
             "UserWarning: something\n"]
    assert stderr_problems(texts) == ["stderr output: Traceback (most recent call last):",
                                      "stderr output: File ...", "stderr output: ValueError: bad",
                                      "stderr output: UserWarning: something"]
    assert stderr_problems([]) == [] and stderr_problems(BENIGN_STDERR) == []


def _require_browser():
    try:
        import playwright  # noqa: F401
    except ImportError as err:
        if IN_CI:
            pytest.fail(f"CI must have Playwright (requirements.txt): {err}")
        pytest.skip("playwright is not installed")
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail("CI must have Debian's chromium (`./course.sh test` installs it when run as root).")
        pytest.skip("chromium is not installed (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require_browser()
    require_data()
    root = tmp_path_factory.mktemp("lab")
    for lesson in SCRUBBERS:
        shutil.copytree(REPO / "solutions" / lesson, root / lesson,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.gif"))
    settings = root / ".lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell (JupyterLab 4 windowing would leave off-screen cells undrawn)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (root / ".jupyter-config" / "labconfig").mkdir(parents=True)
    (root / ".jupyter-config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / ".jupyter-config"),
               JUPYTERLAB_SETTINGS_DIR=str(root / ".lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / ".lab-workspaces"),
               COURSE_DATA_DIR=os.environ.get("COURSE_DATA_DIR", str(REPO / "data")), PYTHONWARNINGS="ignore",
               # the grader's demonstration sizes (course_utils.utils.run_mode): the same widgets and the same
               # code paths with fewer samples and steps; nbval runs every notebook at the learner's CPU sizes
               **GRADING_ENV)
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (root / "lab.log").read_text()[-3000:])
            time.sleep(1)
    try:
        yield {"url": url, "token": token, "root": root}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                               "--disable-dev-shm-usage"])
        yield b
        b.close()


def _run_all(page, url, token, notebook):
    # a workspace of its own, reset: JupyterLab would otherwise reopen the previous lesson's tab too,
    # and Run All or the locators below could act on the wrong notebook
    workspace = Path(notebook).stem
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={token}")
    # generous limits: in CI another pytest worker autogrades a lesson on the same 2 cores
    page.wait_for_selector(".jp-Notebook", timeout=600_000)
    page.wait_for_function("() => document.body.innerText.includes('Python 3 (ipykernel) | Idle')",
                           timeout=600_000)
    page.wait_for_timeout(2000)
    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click("li.lm-Menu-item:has-text('Run All Cells')")
    page.wait_for_timeout(2000)
    page.wait_for_function("""() => { const ps = [...document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];
        return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent)); }""", timeout=1_200_000)


@pytest.mark.parametrize("lesson", sorted(SCRUBBERS))
def test_widget_responds_in_jupyterlab(lab, browser, lesson):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" and not any(b in m.text for b in BENIGN_CONSOLE) else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    t0 = time.perf_counter()
    _run_all(page, lab["url"], lab["token"], f"{lesson}/{lesson}.ipynb")
    ran = time.perf_counter() - t0
    errors_in_cells = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    image = page.locator(".widget-image").last
    readout = page.locator(".widget-slider .widget-readout").last
    image.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    handle = page.locator(".widget-slider .noUi-handle").last
    picker = page.locator(".widget-dropdown select").last
    shots, summary = [], []
    for i, (action, value) in enumerate(SCRUBBERS[lesson]):
        before = readout.text_content().strip()
        if action == "type":
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(str(value))
            page.keyboard.press("Enter")
            page.wait_for_function("([el, v]) => el.textContent.trim() === String(v)",
                                   arg=[readout.element_handle(), value], timeout=30_000)
        elif action == "key":
            handle.focus()
            page.keyboard.press(value)
            page.wait_for_function("([el, v]) => el.textContent.trim() !== v",
                                   arg=[readout.element_handle(), before], timeout=30_000)
        elif action == "select":
            picker.select_option(label=value)
        page.wait_for_timeout(1500)                # the kernel re-renders one PNG; the front end swaps it
        state = readout.text_content().strip() + (f", class {picker.input_value()}" if picker.count() else "")
        path = ARTIFACTS / f"{lesson}_{i}_{action}.png"
        shots.append(image.screenshot(path=str(path)))
        changed = None if i == 0 else shots[-1] != shots[-2]
        summary.append({"move": f"{action} {value}" if value is not None else action, "slider": state,
                        "screenshot": str(path.relative_to(REPO)), "changed": changed})
        print(f"\n[browser] {lesson}: {action} {value} → slider {state}: {path} (image changed: {changed})")
    page.screenshot(path=str(ARTIFACTS / f"{lesson}_page.png"), full_page=False)
    body = page.locator("body").inner_text()
    for marker in ("Error displaying widget", "Model not found", "Failed to render"):
        if marker in body:
            problems.append(f"the page shows {marker!r}")
    stderr_texts = errors_in_cells.all_inner_texts()
    problems += stderr_problems(stderr_texts)
    (ARTIFACTS / f"{lesson}.json").write_text(json.dumps({"lesson": lesson, "run_all_seconds": round(ran, 1),
                                                          "moves": summary, "problems": problems,
                                                          "stderr_outputs": len(stderr_texts)}, indent=1))
    page.close()
    assert not problems, problems
    assert all(m["changed"] for m in summary[1:]), f"the image did not change on every move: {summary}"
