"""Where the course lives, for Google Colab: the one place that holds the repository URL.

Every notebook starts with two cells written from this module:

* an "Open in Colab" badge (:func:`badge_markdown`), and
* a setup cell (:func:`setup_cell_source`) that, **only inside Colab**, installs ``course_utils`` from
  the repository with ``pip install --no-deps`` (Colab's own torch, torchvision, numpy, matplotlib and
  ipywidgets 7 are never reinstalled), installs the few light dependencies Colab lacks, and turns on
  Colab's custom widget manager. Outside Colab the cell does nothing.

The setup cell runs *before* ``course_utils`` is importable, so it cannot read :data:`REPO_URL` at run
time; the URL has to be written into the cell. To keep it in one place anyway,
``scripts/release_notebooks.py`` re-writes both cells (found by their cell tags :data:`BADGE_TAG` and
:data:`SETUP_TAG`) in every solution notebook from the templates below before it generates the student
notebooks, and ``scripts/release_notebooks.py --check`` fails when a committed copy is stale. To move the
repository, edit :data:`GITHUB_REPO` / :data:`BRANCH` here and run the release command.
"""
from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["GITHUB_REPO", "BRANCH", "REPO_URL", "PIP_SPEC", "LIGHT_DEPS", "BADGE_TAG", "SETUP_TAG",
           "colab_url", "badge_markdown", "setup_cell_source"]

GITHUB_REPO = "diffusion-course/diffusion-course"   # owner/name on GitHub
BRANCH = "main"                                     # the branch Colab opens and pip installs from
REPO_URL = f"https://github.com/{GITHUB_REPO}"
PIP_SPEC = f"course_utils @ git+{REPO_URL}.git@{BRANCH}"
# Dependencies of course_utils that Colab may not ship; installed only when missing. The heavy ones
# (torch, torchvision, numpy, matplotlib, ipywidgets, sympy, tqdm) are always there and never touched.
LIGHT_DEPS = ("einops", "torchmetrics")

BADGE_TAG = "colab-badge"
SETUP_TAG = "colab-setup"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook_path: str) -> str:
    """The Colab address that opens ``notebook_path`` (relative to the repository root) from GitHub."""
    path = PurePosixPath(str(notebook_path).replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"notebook_path must be relative to the repository root; got {notebook_path!r}.")
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/{path}"


def badge_markdown(notebook_path: str) -> str:
    """Markdown of the "Open in Colab" badge for the *student* notebook at ``notebook_path``."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook_path)})"


def setup_cell_source() -> str:
    """Source of the first code cell of every notebook (see the module docstring)."""
    deps = ", ".join(repr(d) for d in LIGHT_DEPS)
    return f'''\
# Colab only: install course_utils from the course repository (keeping Colab's own torch) and turn on
# Colab's widget manager. Outside Colab this cell does nothing. (Written from course_utils/colab.py.)
import os, sys
if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
    import importlib.util, subprocess
    if importlib.util.find_spec("course_utils") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "{PIP_SPEC}"], check=True)
    missing = [m for m in ({deps},) if importlib.util.find_spec(m) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
    from google.colab import output
    output.enable_custom_widget_manager()'''
