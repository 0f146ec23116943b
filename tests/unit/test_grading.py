"""course_utils.grading: a submission that lost its nbgrader metadata is detected and explained; and
course_utils.assessment, lesson 07's class-agreement grade (re-exported by course_utils.grading)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from course_utils.grading import check_submission, check_submitted, graded_cells, main


def cell(gid=None, **flags):
    meta = {} if gid is None else {"nbgrader": {"grade_id": gid, "grade": False, "solution": False,
                                                "locked": False, **flags}}
    return {"cell_type": "code", "metadata": meta, "source": "", "outputs": [], "execution_count": None}


RELEASE = {"cells": [cell(), cell("imports", locked=True), cell("ex1", solution=True),
                     cell("ex1-tests", grade=True, locked=True, points=1),
                     cell("essay", grade=True, solution=True, points=2), cell("task1", task=True)],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def stripped(nb, keep=()):
    nb = json.loads(json.dumps(nb))
    for c in nb["cells"]:
        if c["metadata"].get("nbgrader", {}).get("grade_id") not in keep:
            c["metadata"].pop("nbgrader", None)
    return nb


def test_graded_cells_roles():
    assert graded_cells(RELEASE) == {"ex1": "answer", "ex1-tests": "test", "essay": "manual", "task1": "task"}


def test_intact_submission_is_ok():
    r = check_submission(RELEASE, RELEASE)
    assert r.ok and not r.stripped and "ok (4 graded cells" in r.message()


def test_stripped_submission_is_reported():
    r = check_submission(stripped(RELEASE), RELEASE)
    assert not r.ok and r.stripped
    assert r.missing == ["ex1", "ex1-tests", "essay", "task1"]
    msg = r.message()
    assert "nbgrader metadata was stripped" in msg and "score them 0" in msg


def test_partly_stripped_or_changed_role_is_reported():
    r = check_submission(stripped(RELEASE, keep=("ex1-tests", "essay", "task1")), RELEASE)
    assert r.missing == ["ex1"] and not r.stripped and "1 of 4 graded cells" in r.message()
    flipped = json.loads(json.dumps(RELEASE))
    flipped["cells"][2]["metadata"]["nbgrader"]["solution"] = False        # no longer an answer cell
    assert check_submission(flipped, RELEASE).missing == ["ex1"]


def test_unreadable_submission(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    r = check_submission(bad, RELEASE)
    assert not r.ok and r.error and "cannot be read" in r.message()


def test_check_submitted_and_cli(tmp_path, capsys):
    (tmp_path / "notebooks" / "a1").mkdir(parents=True)
    (tmp_path / "notebooks" / "a1" / "a1.ipynb").write_text(json.dumps(RELEASE))
    for student, nb in (("ann", RELEASE), ("bob", stripped(RELEASE))):
        folder = tmp_path / "submitted" / student / "a1"
        folder.mkdir(parents=True)
        (folder / "a1.ipynb").write_text(json.dumps(nb))
    (tmp_path / "submitted" / "cy" / "a2").mkdir(parents=True)
    (tmp_path / "submitted" / "cy" / "a2" / "a2.ipynb").write_text(json.dumps(RELEASE))
    results = check_submitted(tmp_path)
    assert [(r.path.parts[-3], r.ok) for r in results] == [("ann", True), ("bob", False), ("cy", False)]
    assert "no released notebook" in results[2].message()
    assert [r.path.parts[-3] for r in check_submitted(tmp_path, ["a1"])] == ["ann", "bob"]
    assert main(["check", "--course", str(tmp_path), "a1"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM" in out and "bob" in out and "2 submissions checked, 1 with problems" in out
    assert main(["check", "--course", str(tmp_path / "nowhere")]) == 0


def test_cli_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "course_utils.grading", "check", "--course", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "no submitted notebooks" in proc.stdout


def test_not_a_notebook():
    with pytest.raises(ValueError, match="not a Jupyter notebook"):
        graded_cells({"foo": 1})


# ---------------------------------------------------------------- lesson 07: assess_class_agreement
def test_grading_re_exports_the_assessment_where_the_notebooks_import_it():
    from course_utils import assessment, grading

    assert grading.assess_class_agreement is assessment.assess_class_agreement
    assert grading.AssessmentResult is assessment.AssessmentResult
    assert {"assess_class_agreement", "AssessmentResult"} <= set(grading.__all__)


@pytest.fixture(scope="module")
def _tiny_cfg_model():
    import torch

    from course_utils.diffusion import GaussianDiffusion
    from course_utils.models import UNet, UNetConfig
    from course_utils.schedules import linear_betas

    torch.manual_seed(0)
    model = UNet(UNetConfig(channels=(8, 16), num_classes=10)).eval()
    torch.nn.init.normal_(model.conv_out.weight, std=0.05)        # not the all-zero untrained output
    return model, GaussianDiffusion(linear_betas(50))


@pytest.fixture(scope="module")
def _test_images():
    from conftest import require_data

    require_data()
    from course_utils.data import load_fashion_mnist

    return load_fashion_mnist(train=False, image_size=16, limit=2000)


def _real_sampler(data, respect_labels: bool):
    """A stand-in sampler returning real test images: of the requested class, or in data-set order."""
    import torch

    def sampler(model, diffusion, labels, w, num_steps, generator):
        if not respect_labels:
            return data.images[:labels.shape[0]].clone()
        pools = {c: data.images[data.labels == c] for c in range(10)}
        seen = torch.zeros(10, dtype=torch.long)
        out = []
        for c in labels.tolist():
            out.append(pools[c][seen[c]])
            seen[c] += 1
        return torch.stack(out)
    return sampler


def test_assessment_is_deterministic_for_a_seed(_tiny_cfg_model):
    from course_utils.assessment import assess_class_agreement

    model, diffusion = _tiny_cfg_model
    a = assess_class_agreement(model, diffusion, per_class=3, num_steps=3, seed=5, threshold=0.5)
    b = assess_class_agreement(model, diffusion, per_class=3, num_steps=3, seed=5, threshold=0.5)
    assert (a.agreement, a.per_class, a.passed) == (b.agreement, b.per_class, b.passed)
    assert a.samples == 30 and set(a.per_class) == set(range(10)) and a.seconds > 0
    assert "pass mark 50%" in a.table()


def test_assessment_passes_images_of_the_requested_class_and_fails_a_label_ignoring_sampler(
        _tiny_cfg_model, _test_images):
    from course_utils.assessment import assess_class_agreement

    model, diffusion = _tiny_cfg_model
    good = assess_class_agreement(model, diffusion, _real_sampler(_test_images, True), per_class=20)
    bad = assess_class_agreement(model, diffusion, _real_sampler(_test_images, False), per_class=20)
    assert good.passed and good.agreement >= 0.9
    assert not bad.passed and bad.agreement < 0.3
    assert "NOT PASSED" in bad.table() and "PASSED" in good.table()


def test_assessment_rejects_an_unconditional_model_and_bad_arguments(_tiny_cfg_model):
    import torch

    from course_utils.assessment import assess_class_agreement
    from course_utils.models import UNet, UNetConfig

    model, diffusion = _tiny_cfg_model
    with pytest.raises(ValueError, match="unconditional"):
        assess_class_agreement(UNet(UNetConfig(channels=(8, 16))), diffusion, per_class=1, num_steps=1)
    for kwargs, match in [({"per_class": 0}, "per_class"), ({"w": float("nan")}, "guidance weight"),
                          ({"threshold": 1.5}, "threshold"), ({"seed": "0"}, "seed"),
                          ({"sampler": "ddim"}, "sampler"), ({"num_steps": 2.0}, "num_steps")]:
        with pytest.raises(ValueError, match=match):
            assess_class_agreement(model, diffusion, **{"per_class": 1, "num_steps": 1, **kwargs})
    with pytest.raises(ValueError, match=r"must return 10 grey 16×16 images"):
        assess_class_agreement(model, diffusion, lambda *a, **k: torch.zeros(10, 1, 8, 8), per_class=1)
