"""The grading command (course_utils.autograde) on the cheats of the adversarial suite (tests/e2e/grading/):
patching the checks, torch or IPython inside the sandbox, delegating to the package's answers, hard-coding the
visible answers, reading the hidden tests. Each must get the score its answers deserve and the flag a person
needs (table: ci-artifacts/grading_cases_attacks.md). Also here: the attacks on the records, the gradebook,
the grader and other submissions, graded in one batch beside innocent submissions whose scores must not
change; nbgrader's tools on the gradebook the grader wrote; lesson 07's hand-ins with their checkpoints.

The broken and misbehaving notebooks and the command's own behaviour (re-runs, the command line, the scan)
are in tests/e2e/test_autograde.py; the two files grade in parallel on two CI workers.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_data
from grading.cases import ATTACKS, COLLATERAL, INNOCENT, LESSON, TOTAL
from grading.suite import case_table, digests, grade_batch, need_sandbox

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    require_data()
    need_sandbox()
    return grade_batch(tmp_path_factory.mktemp("attacks"), ATTACKS, lambda *_: None)


@pytest.fixture(scope="module")
def collateral(tmp_path_factory):
    """The attacks on records, gradebook, grader and other submissions, graded with innocent ones."""
    require_data()
    need_sandbox()
    batch = grade_batch(tmp_path_factory.mktemp("collateral"), {**INNOCENT, **COLLATERAL}, lambda *_: None)
    out = batch["out"]
    batch["records"] = digests([*out.glob("*.json"), out / "grades.csv", out / "work" / "gradebook.db"])
    time.sleep(3)                     # a daemon that outlived its sandbox would write now
    return batch


def test_every_attack_gets_the_score_its_answers_deserve_and_is_flagged(attacked):
    wrong = case_table("attacks", ATTACKS, attacked["results"])
    assert not wrong, "\n".join(wrong)


def test_collateral_attacks_change_nothing_but_their_own_record(collateral):
    results = collateral["results"]
    wrong = []
    for name, case in {**INNOCENT, **COLLATERAL}.items():
        r = results[name]
        if r.score != case.expected or (case.flag and not any(case.flag in f for f in r.flags)):
            wrong.append(f"{name}: expected {case.expected:g} (flag {case.flag!r}), got {r.score:g} {r.flags}")
    assert not wrong, "\n".join(wrong)
    out = collateral["out"]
    # nothing the attacks aimed at changed: submissions, the source, the records written after the run
    assert digests([*collateral["flat"].glob("*.ipynb"), *collateral["source"].rglob("*.ipynb")]) == \
        collateral["before"]
    assert digests([*out.glob("*.json"), out / "grades.csv", out / "work" / "gradebook.db"]) == \
        collateral["records"]
    with open(out / "grades.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(INNOCENT) | set(COLLATERAL)
    assert float(rows["innocent_solution"]["score"]) == TOTAL and float(rows["innocent_blank"]["score"]) == 0
    assert not any(Path(p, "zz_course_hack.pth").exists() for p in site.getsitepackages())


def test_innocent_scores_match_a_solo_run(collateral, attacked):
    """The innocent solution scores the same beside the collateral attacks as each right answer does in the
    attacks batch, test cell by test cell (every exercise but the one each attack got wrong)."""
    innocent = collateral["results"]["innocent_solution"].tests
    for name, r in attacked["results"].items():
        for test, points in r.tests.items():
            if points:                                   # a right answer earns the same points in both batches
                assert innocent[test] == points, (name, test)
    assert all(any(r.tests[t] for r in attacked["results"].values()) for t in innocent)


def test_nbgrader_tools_work_on_the_gradebook(attacked):
    """generate_feedback and export read the scores the judge decided; feedback hides the hidden tests."""
    work = attacked["out"] / "work"
    from course_utils.utils import tool_env
    env = tool_env({"PYTHONWARNINGS": "ignore"})
    fb = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", LESSON, "--student",
                         "hard_coded_visible_answer", "--force"], cwd=work, env=env, capture_output=True,
                        text=True, timeout=300)
    assert fb.returncode == 0, fb.stdout + fb.stderr
    html = (work / "feedback" / "hard_coded_visible_answer" / LESSON / f"{LESSON}.html").read_text()
    assert "check_q_sample" in html and "✓ q_sample" in html and "✗ alphas_cumprod" in html
    assert "HIDDEN TESTS" not in html and "_checks.check" not in html
    ex = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(work / "export.csv")],
                        cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert ex.returncode == 0, ex.stdout + ex.stderr
    with open(work / "export.csv", newline="") as f:
        exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
    assert exported["hard_coded_visible_answer"] == TOTAL - 1 and exported["delegate_to_package"] == TOTAL - 2


# ---------------------------------------------------------------- lesson 07: the notebook and its checkpoint
LESSON07 = "07_final_assessment"


def _finetuned_cfg16(path: Path, steps: int = 8) -> Path:
    """A checkpoint trained by the notebook's own recipe would take 14 minutes; a few more steps on the shipped
    cfg16 give a model that is trained, passes, and is not a copy (it is flagged as derived, for review)."""
    import torch
    from course_utils.checkpoints import save_checkpoint
    from course_utils.data import load_fashion_mnist
    from course_utils.pretrained import load_pretrained
    from course_utils.train import TrainConfig, train

    model, diffusion, meta = load_pretrained("cfg16")
    data = load_fashion_mnist(train=True, image_size=16, limit=512)
    torch.manual_seed(1)
    result = train(model, diffusion, data, TrainConfig(steps=steps, batch_size=32, lr=1e-5, warmup_steps=1,
                                                       seed=1, log_every=steps, progress=False))
    return save_checkpoint(path, result.ema_model, diffusion.cpu(), {"steps": meta.get("steps", 0) + steps,
                                                                      "command": "test"})


def test_lesson07_handed_in_with_its_checkpoint_grades_full_marks(tmp_path):
    """The README's instructor command, no environment variables: the full solution and its trained checkpoint
    get 12/12 without retraining; a hand-in of the shipped cfg16 itself gets the 7 unit points only."""
    require_data()
    need_sandbox()

    from lesson_harness import make_submission
    import nbformat

    release = nbformat.read(REPO / "notebooks" / LESSON07 / f"{LESSON07}.ipynb", as_version=4)
    solution = nbformat.read(REPO / "solutions" / LESSON07 / f"{LESSON07}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"] for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    subs = tmp_path / "submitted"
    for student in ("alice", "copier"):
        folder = subs / student / LESSON07
        folder.mkdir(parents=True)
        nbformat.write(make_submission(release, solution, answers), folder / f"{LESSON07}.ipynb")
    _finetuned_cfg16(subs / "alice" / LESSON07 / "assessment_model.pt")
    from course_utils.pretrained import checkpoint_path
    shutil.copyfile(checkpoint_path("cfg16"), subs / "copier" / LESSON07 / "assessment_model.pt")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    out = tmp_path / "grading"
    proc = subprocess.run([sys.executable, "-m", "course_utils.autograde", LESSON07, str(subs), "--course",
                           str(REPO), "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    alice = json.loads((out / "alice.json").read_text())
    copier = json.loads((out / "copier.json").read_text())
    assert (alice["score"], alice["max_score"]) == (12, 12), (alice["flags"], alice["verdicts"])
    assert "PASSED" in alice["verdicts"]["assessment"] and "NOT" not in alice["verdicts"]["assessment"]
    assert any("similar" in f for f in alice["flags"])                  # derived from cfg16: for review
    assert (copier["score"], copier["tests"]["assessment"]) == (7, 0), copier["flags"]
    assert any("copy of the course's shipped checkpoint 'cfg16'" in f for f in copier["flags"])


def test_handed_in_checkpoints_are_verified_before_anything_runs(tmp_path):
    from course_utils.autograde import handin
    from course_utils.checkpoints import save_checkpoint
    from course_utils.diffusion import GaussianDiffusion
    from course_utils.models import UNet, UNetConfig
    from course_utils.pretrained import checkpoint_path
    from course_utils.schedules import linear_betas

    assert not handin.verify_checkpoint(None, 600_000).ok
    d = GaussianDiffusion(linear_betas(10))
    uncond = save_checkpoint(tmp_path / "u.pt", UNet(UNetConfig(channels=(8, 16))), d, {})
    assert any("unconditional" in p for p in handin.verify_checkpoint(uncond, 600_000).problems)
    big = save_checkpoint(tmp_path / "b.pt", UNet(UNetConfig(channels=(64, 128), num_classes=10)), d, {})
    assert any("over the budget" in p for p in handin.verify_checkpoint(big, 600_000).problems)
    ok = save_checkpoint(tmp_path / "ok.pt", UNet(UNetConfig(channels=(8, 16), num_classes=10)), d, {})
    assert handin.verify_checkpoint(ok, 600_000).ok
    assert any("copy" in p for p in handin.verify_checkpoint(checkpoint_path("cfg16"), 600_000).problems)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert any("not a course checkpoint" in p for p in handin.verify_checkpoint(tmp_path / "junk.pt", 600_000).problems)
    (tmp_path / "link.pt").symlink_to(ok)
    assert any("regular file" in p for p in handin.verify_checkpoint(tmp_path / "link.pt", 600_000).problems)
