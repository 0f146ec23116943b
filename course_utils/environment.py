"""The start page's environment check: what this machine can run, and the fix for each problem.

``print_environment_report()`` prints one line per item (✓ / ! / ✗) with what to do when something is
missing; ``environment_report()`` returns the same items for tests and tools::

    python -m course_utils.environment
"""
from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass

from . import lessons as _lessons

__all__ = ["Item", "environment_report", "print_environment_report", "LESSONS"]


@dataclass
class Item:
    name: str
    status: str            # "ok", "warn" (works, with a limitation) or "missing"
    detail: str
    fix: str = ""


# The lessons (folder, title, minutes, …) live in course_utils.lessons; LESSONS is kept here by its old name.
LESSONS = _lessons.LESSONS


def _training_note() -> str:
    """The CPU warning's "lesson 07's training takes ≈ 14 min", from the lessons whose CPU time is training."""
    return "; ".join(f"lesson {lesson.id}'s training takes {lesson.cpu_minutes} min"
                     for lesson in LESSONS if lesson.cpu_is_training)


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception:                                      # noqa: BLE001 - any import failure
        return None


def environment_report() -> list[Item]:
    """Check Python, torch and the device, the data, the widgets, the shipped files; one Item each."""
    items: list[Item] = []
    py = platform.python_version()
    items.append(Item("python", "ok" if sys.version_info >= (3, 10) else "missing", py,
                      "" if sys.version_info >= (3, 10) else "the course needs Python ≥ 3.10"))
    torch_v = _version("torch")
    if torch_v is None:
        items.append(Item("torch", "missing", "not installed",
                          "run `./course.sh setup` (or `pip install -r requirements.txt`) and restart the kernel"))
        return items
    import torch

    from .utils import get_device, in_colab
    items.append(Item("torch", "ok", torch_v))
    dev = get_device("auto")
    if dev.type == "cuda":
        items.append(Item("device", "ok", f"GPU: {torch.cuda.get_device_name(dev)} — the lessons use their "
                          "GPU sizes (full training runs, more samples)"))
    elif dev.type == "mps":
        items.append(Item("device", "ok", "Apple GPU (mps) — the lessons run their GPU sizes where mps supports them"))
    else:
        fix = ("in Colab: Runtime → Change runtime type → GPU, then rerun" if in_colab() else
               "nothing to do: every lesson has a CPU mode")
        items.append(Item("device", "warn", f"CPU only ({torch.get_num_threads()} threads) — lessons run in CPU "
                          "mode: 16 px images, short training runs, shipped checkpoints where a full run "
                          f"would take too long; {_training_note()}", fix))
    from .data import DataNotFoundError, load_fashion_mnist
    try:
        ds = load_fashion_mnist(train=False, image_size=16, limit=8)
        items.append(Item("data", "ok", f"FashionMNIST found ({tuple(ds.images.shape)} test batch loads)"))
    except DataNotFoundError:
        items.append(Item("data", "missing", "FashionMNIST not found",
                          "three ways: (1) online, run `python -m course_utils.data prepare` (torchvision "
                          "downloads it); (2) offline on Debian/Ubuntu, `sudo apt-get install "
                          "dataset-fashion-mnist` then `python -m course_utils.data prepare`; (3) copy the "
                          "four idx files into DIR/FashionMNIST/raw/ and set COURSE_DATA_DIR=DIR"))
    except Exception as err:                               # noqa: BLE001 - report, don't crash the page
        items.append(Item("data", "missing", f"FashionMNIST could not be read ({type(err).__name__}: {err})",
                          "delete the data folder and run `python -m course_utils.data prepare` again"))
    w = _version("ipywidgets")
    if w is None:
        items.append(Item("widgets", "missing", "ipywidgets not installed", "pip install ipywidgets"))
    else:
        items.append(Item("widgets", "ok", f"ipywidgets {w}" + (" (Colab's widget manager is enabled by "
                                                                "each notebook's first cell)" if in_colab() else "")))
    try:
        from .metrics import load_classifier
        load_classifier()
        items.append(Item("metric", "ok", "the shipped FashionMNIST classifier matches its sha256"))
    except Exception as err:                               # noqa: BLE001
        items.append(Item("metric", "missing", f"the shipped classifier did not load ({err})",
                          "reinstall course_utils (pip install -e .) or run `python scripts/train_classifier.py`"))
    try:
        from .pretrained import RECIPES, checkpoint_path
        have = [n for n in RECIPES if checkpoint_path(n).exists()]
        status = "ok" if len(have) == len(RECIPES) else "warn"
        items.append(Item("checkpoints", status, f"shipped checkpoints present: {have or 'none'}",
                          "" if status == "ok" else "`python -m course_utils.pretrained build` rebuilds them"))
    except Exception as err:                               # noqa: BLE001
        items.append(Item("checkpoints", "warn", f"could not list the checkpoints ({err})"))
    nbg = _version("nbgrader")
    # a learner's install (./course.sh open, Colab) has no nbgrader on purpose: not a problem to report
    items.append(Item("nbgrader", "ok", f"nbgrader {nbg}" if nbg else "not installed (not needed to learn: the checks "
                      "in each notebook work without it; ./course.sh instructor installs it)"))
    return items


def print_environment_report() -> list[Item]:
    """Print the report (stdout) and return its items."""
    marks = {"ok": "✓", "warn": "!", "missing": "✗"}
    items = environment_report()
    for it in items:
        print(f"{marks[it.status]} {it.name:<12} {it.detail}")
        if it.fix:
            print(f"  {'':<12} → {it.fix}")
    bad = [it.name for it in items if it.status == "missing"]
    print("\nEverything needed is in place." if not bad else f"\nFix first: {', '.join(bad)}.")
    return items


if __name__ == "__main__":
    print_environment_report()
