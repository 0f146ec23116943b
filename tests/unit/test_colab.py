"""course_utils.colab: the repository URL lives in one place, and the notebooks' first cell installs the
package only inside Colab, without touching Colab's torch."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from course_utils import colab

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "solutions").glob("*/*.ipynb")) + sorted((REPO / "notebooks").glob("*/*.ipynb"))


def run_setup_cell(monkeypatch, in_colab: bool, have=("torch",)):
    """Execute the setup cell with subprocess.run recorded; returns (pip commands, widget manager calls)."""
    calls, enabled = [], []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(list(cmd)))
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if in_colab:
        google = types.ModuleType("google")
        google_colab = types.ModuleType("google.colab")
        google_colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(True))
        google.colab = google_colab
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", google_colab)
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: real(name, *a) if name in have else None)
    exec(compile(colab.setup_cell_source(), "<colab-setup>", "exec"), {})
    return calls, enabled


def test_setup_cell_does_nothing_outside_colab(monkeypatch):
    assert run_setup_cell(monkeypatch, in_colab=False) == ([], [])


def test_setup_cell_in_colab_installs_without_deps_and_enables_widgets(monkeypatch):
    calls, enabled = run_setup_cell(monkeypatch, in_colab=True, have=("torch", "einops"))
    assert enabled == [True]
    assert calls[0][-1] == colab.PIP_SPEC and "--no-deps" in calls[0]
    assert calls[0][:3] == [sys.executable, "-m", "pip"]
    assert calls[1][-1:] == ["torchmetrics"]                # only what is missing; einops is there
    assert len(calls) == 2
    assert not any("torch" == a or a.startswith(("torch=", "torch>", "torchvision")) for c in calls for a in c)


def test_setup_cell_in_colab_skips_what_is_installed(monkeypatch):
    calls, enabled = run_setup_cell(monkeypatch, in_colab=True,
                                    have=("course_utils", "einops", "torchmetrics"))
    assert calls == [] and enabled == [True]


def test_badge_points_at_the_student_notebook():
    url = colab.colab_url("notebooks/02_forward_diffusion/02_forward_diffusion.ipynb")
    assert url == (f"https://colab.research.google.com/github/{colab.GITHUB_REPO}/blob/{colab.BRANCH}/"
                   "notebooks/02_forward_diffusion/02_forward_diffusion.ipynb")
    assert colab.badge_markdown("notebooks/a/a.ipynb").startswith("[![Open In Colab](")
    with pytest.raises(ValueError):
        colab.colab_url("/abs/path.ipynb")
    with pytest.raises(ValueError):
        colab.colab_url("../outside.ipynb")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(REPO)) for p in NOTEBOOKS])
def test_url_only_in_the_generated_cells(path):
    """Each notebook opens with the badge and the setup cell, and mentions the repository nowhere else."""
    nb = nbformat.read(path, as_version=4)
    assert colab.BADGE_TAG in nb.cells[0].metadata.get("tags", [])
    assert colab.SETUP_TAG in nb.cells[1].metadata.get("tags", []) and nb.cells[1].cell_type == "code"
    assert nb.cells[1].source == colab.setup_cell_source()
    assert colab.GITHUB_REPO in nb.cells[0].source
    assert not any(colab.GITHUB_REPO in c.source for c in nb.cells[2:])


def test_url_only_in_colab_py():
    hits = [p for p in (REPO / "course_utils").rglob("*.py") if colab.GITHUB_REPO in p.read_text(encoding="utf-8")]
    assert hits == [REPO / "course_utils" / "colab.py"]


# ---------------------------------------------------------------- Colab readiness of every notebook
ALL_NOTEBOOKS = NOTEBOOKS + sorted((REPO / "solutions").glob("*.ipynb")) + sorted((REPO / "notebooks").glob("*.ipynb"))
# What a notebook may import: the course, torch and friends, ipywidgets core, matplotlib and the stdlib
# (every module here exists in Colab or is installed by the setup cell; no front-end extension needed).
ALLOWED_IMPORTS = {"course_utils", "torch", "torchvision", "einops", "numpy", "matplotlib", "ipywidgets", "IPython",
                   "tqdm", "sympy", "torchmetrics", "google"} | set(sys.stdlib_module_names)


def _student_path(path: Path) -> str:
    rel = path.relative_to(REPO)
    return str(Path("notebooks", *rel.parts[1:])) if rel.parts[0] == "solutions" else str(rel)


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=[str(p.relative_to(REPO)) for p in ALL_NOTEBOOKS])
def test_notebook_is_colab_ready(path):
    """Badge → this notebook's own student path; no .cuda(), absolute paths, nbgrader or widget extensions."""
    import ast
    import re

    nb = nbformat.read(path, as_version=4)
    assert colab.colab_url(_student_path(path)) in nb.cells[0].source, "the badge must open this notebook"
    assert nb.cells[1].source == colab.setup_cell_source()
    for src in _code(nb)[1:]:
        assert ".cuda(" not in src, "use .to(device) with device = get_device('auto'), never .cuda()"
        assert not re.search(r"^\s*%(matplotlib\s+(widget|ipympl|notebook)|pip|conda)", src, re.M), src[:200]
        tree = ast.parse(re.sub(r"^(\s*)[%!]", r"\1#", src, flags=re.M))   # IPython magics are not Python
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for m in mods:
                    top = m.split(".")[0]
                    assert top in ALLOWED_IMPORTS, f"{path.name} imports {m}: not available in Colab without an install"
                    assert top != "nbgrader", "notebooks must not need nbgrader at run time"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                v = node.value
                assert not re.match(r"^(/(home|root|usr|tmp|work|Users|mnt|data)\b|[A-Za-z]:\\\\|~/)", v), \
                    f"{path.name} uses an absolute path {v!r}; use paths relative to the notebook"


WIDGET_MODULES = sorted((REPO / "course_utils" / "widgets").glob("*.py"))


def test_package_has_no_unconditional_cuda():
    package = sorted((REPO / "course_utils").rglob("*.py"))
    assert REPO / "course_utils" / "widgets" / "_base.py" in package          # subpackages are searched too
    for py in package:
        assert ".cuda(" not in py.read_text(encoding="utf-8"), f"{py.relative_to(REPO)} calls .cuda()"


@pytest.mark.parametrize("path", WIDGET_MODULES, ids=[p.name for p in WIDGET_MODULES])
def test_widgets_use_core_ipywidgets_only(path):
    import ast
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {(a.name if isinstance(n, ast.Import) else n.module or "").split(".")[0]
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                and not getattr(n, "level", 0) for a in n.names}             # relative imports: the package
    assert imported <= ALLOWED_IMPORTS | {""}, f"widgets/{path.name} imports {imported - ALLOWED_IMPORTS}"
    assert not imported & {"ipympl", "bqplot", "plotly", "ipycanvas", "ipyvolume", "jupyter_bokeh", "anywidget"}


def test_every_widget_module_is_read():
    assert {p.name for p in WIDGET_MODULES} >= {"__init__.py", "_base.py", "denoiser.py", "forward_diffusion.py",
                                               "guidance.py", "posterior.py", "reverse_trajectory.py"}
