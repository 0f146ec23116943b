"""The wheel that `pip install` (Colab's setup cell) builds holds every subpackage and every shipped asset.

The wheel is built from a copy of the files a clean clone has (pyproject.toml, README.md, LICENSE and
course_utils/), so the working tree gets no build/ or egg-info folder, with ``--no-build-isolation`` (the
venv's setuptools; offline, an isolated build could not fetch one).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "course_utils"
ASSET_SUFFIXES = (".pt", ".sha256", ".json")


def source_subpackages() -> set[str]:
    """Every folder of course_utils/ with an __init__.py, as a dotted name (course_utils, course_utils.checks, …)."""
    return {".".join(init.parent.relative_to(REPO).parts) for init in PACKAGE.rglob("__init__.py")
            if "__pycache__" not in init.parts}


def source_assets() -> set[str]:
    """Every shipped asset (.pt, .sha256, .json) under course_utils/, as a path inside the wheel."""
    return {p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and p.name.endswith(ASSET_SUFFIXES) and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    pytest.importorskip("setuptools")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    shutil.copytree(PACKAGE, src / "course_utils", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("course_utils-*.whl"))
    assert len(wheels) == 1, [p.name for p in out.iterdir()]
    with zipfile.ZipFile(wheels[0]) as zf:
        return set(zf.namelist())


def test_the_source_tree_has_the_subpackages_and_assets_we_expect():
    """Guards the two walks below: they find the packages and files that exist today."""
    assert {"course_utils", "course_utils.checks", "course_utils.widgets"} <= source_subpackages()
    assert {"course_utils/assets/ddpm16.pt", "course_utils/assets/cfg16.pt.sha256",
            "course_utils/assets/fashion_classifier.json"} <= source_assets()


@pytest.mark.slow                    # builds a wheel: 15–120 s on a loaded 2-core machine
def test_wheel_holds_every_subpackage(wheel_names):
    for pkg in sorted(source_subpackages()):
        init = pkg.replace(".", "/") + "/__init__.py"
        assert init in wheel_names, f"{pkg} is missing from the wheel: pyproject.toml must find it"
    modules = {p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert not modules - wheel_names, f"modules missing from the wheel: {sorted(modules - wheel_names)}"


@pytest.mark.slow                    # builds a wheel: 15–120 s on a loaded 2-core machine
def test_wheel_holds_every_asset(wheel_names):
    missing = source_assets() - wheel_names
    assert not missing, f"assets missing from the wheel (package-data in pyproject.toml): {sorted(missing)}"


@pytest.mark.slow                    # builds a wheel: 15–120 s on a loaded 2-core machine
def test_wheel_holds_no_bytecode_or_tests(wheel_names):
    assert not [n for n in wheel_names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in wheel_names if n.startswith(("tests/", "solutions/", "notebooks/", "bench/"))]


def test_every_markdown_file_the_package_cites_is_in_the_repository():
    """diffusion.py and models.py say "see STYLE.md": the file must exist (at the repository root)."""
    import re

    cited = {m for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
             for m in re.findall(r"\b([\w./-]+\.md)\b", p.read_text(encoding="utf-8"))}
    assert "STYLE.md" in cited
    missing = sorted(m for m in cited if not (REPO / m).exists())
    assert not missing, f"course_utils cites {missing}, which the repository does not have"


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            names.add(line.split("==")[0].split(">=")[0].strip().lower())
    return names


def test_learner_requirements_hold_what_the_lessons_need_and_nothing_for_instructors():
    """`./course.sh open` installs requirements-learner.txt: every dependency of the package and JupyterLab,
    no grading, test or benchmark tool; requirements.txt (what CI installs) builds on it."""
    import tomllib

    learner = _requirement_names(REPO / "requirements-learner.txt")
    full = REPO / "requirements.txt"
    assert "-r requirements-learner.txt" in full.read_text().splitlines()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    package = {d.split(">")[0].split("<")[0].split("=")[0].strip().lower() for d in deps}
    assert package <= learner and {"jupyterlab", "ipykernel"} <= learner
    assert not learner & {"nbgrader", "pytest", "nbval", "playwright", "diffusers", "hypothesis", "pytest-xdist"}
    assert not learner & _requirement_names(full)                 # each pin is written once


MAX_MODULE_LINES = 700      # the restructure's rule: a module a newcomer can read in one sitting


def test_no_module_of_the_package_is_over_the_line_limit():
    """Each module of course_utils/ stays at most MAX_MODULE_LINES long (split by lesson or by job when it grows)."""
    sizes = {p.relative_to(REPO).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert len(sizes) > 30, sorted(sizes)
    too_long = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"
