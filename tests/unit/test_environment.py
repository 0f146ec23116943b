"""The start page (notebooks/00_start_here.ipynb) and the environment check behind it."""
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import environment
from course_utils import lessons as registry
from course_utils.data import DataNotFoundError

REPO = Path(__file__).resolve().parents[2]
START = REPO / "solutions" / "00_start_here.ipynb"


def test_report_covers_torch_device_data_and_fixes(capsys):
    items = environment.print_environment_report()
    names = [it.name for it in items]
    assert names[:3] == ["python", "torch", "device"] and "data" in names and "metric" in names
    out = capsys.readouterr().out
    assert "torch" in out and ("GPU" in out or "CPU only" in out)


def test_missing_data_names_the_three_ways_to_get_it(monkeypatch, capsys):
    def missing(*a, **k):
        raise DataNotFoundError("no data")
    monkeypatch.setattr("course_utils.data.load_fashion_mnist", missing)
    items = {it.name: it for it in environment.print_environment_report()}
    assert items["data"].status == "missing"
    fix = items["data"].fix
    assert "python -m course_utils.data prepare" in fix and "dataset-fashion-mnist" in fix and "COURSE_DATA_DIR" in fix
    assert "Fix first: data" in capsys.readouterr().out


def test_no_gpu_says_what_changes(monkeypatch):
    import torch
    monkeypatch.setattr("course_utils.utils.get_device", lambda d="auto": torch.device("cpu"))
    dev = {it.name: it for it in environment.environment_report()}["device"]
    assert dev.status == "warn" and "CPU mode" in dev.detail and "16 px" in dev.detail
    # the long CPU step is the registry's: lesson 07's training, with the minutes the start page states
    assert dev.detail.endswith("lesson 07's training takes ≈ 14 min")
    assert environment.LESSONS is registry.LESSONS


def test_start_page_lists_every_lesson_with_times_and_links():
    nb = nbformat.read(START, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    lessons = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
    listed = re.findall(r"\]\((\d\d_[a-z_]+)/\1\.ipynb\)", text)
    assert set(lessons) <= set(listed), f"lessons missing from the start page: {set(lessons) - set(listed)}"
    assert [lesson.folder for lesson in environment.LESSONS] == listed
    for folder in lessons:
        assert (REPO / "notebooks" / folder / f"{folder}.ipynb").exists()
    assert "CPU (min)" in text and "GPU (min)" in text
    assert nb.cells[0].metadata.get("tags") == ["colab-badge"] and "notebooks/00_start_here.ipynb" in nb.cells[0].source
    assert "colab-setup" in nb.cells[1].metadata.get("tags", [])


def test_start_page_text_agrees_with_its_table():
    """The prose once said "a few minutes each" next to a table of "< 1", then "under two minutes" where lesson 04
    took 2½ (idle, two threads) to 4 (one thread): it now states the measured table."""
    text = "\n".join(c.source for c in nbformat.read(START, as_version=4).cells if c.cell_type == "markdown")
    assert "a few minutes each" not in text
    assert ("lessons 01, 02, 03, 06 and 09 each run top to bottom in about a minute or less, lesson 05\n  in 1–1½ "
            "minutes, lesson 04, which trains a model and samples with 1000 steps, in 1½–2 and lesson 08 in 1½–2½") in text
    minutes = {lesson.id: lesson.cpu_minutes for lesson in registry.LESSONS if not lesson.cpu_is_training}
    # what the sentence summarises (measured: python -m bench.course_runtime, see course_utils/lessons.py)
    assert minutes == {"01": "< 1", "02": "< 1", "03": "< 1", "04": "1½–2", "05": "1–1½", "06": "1", "08": "1½–2½", "09": "< 1"}


def test_open_command_lands_on_the_start_page():
    sh = (REPO / "course.sh").read_text()
    assert "/lab/tree/00_start_here.ipynb" in sh and (REPO / "notebooks" / "00_start_here.ipynb").exists()
    released = nbformat.read(REPO / "notebooks" / "00_start_here.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in released.cells if c.cell_type == "code")


def test_start_page_runs_under_nbval(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-current-env", str(START)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
