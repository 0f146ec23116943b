"""The instructor's grading command (course_utils.autograde) on the adversarial suite of tests/e2e/grading/.

One run grades every case of ``tests/e2e/grading/cases.py`` (lesson 02) with tight limits, from a private copy
of the source notebooks (the layout the README tells instructors to use); each case must get the score it
deserves and the flag a person needs. A second run grades the attacks on the records, the gradebook, the
grader and other submissions in one batch with innocent submissions, whose scores must not change, and
checks that every file the attacks aimed at is untouched afterwards. A re-run must grade nothing again
(idempotent), and a run after one record is removed grades only that one. nbgrader's own tools work on
the gradebook the grader wrote. The table case → expected → actual → seconds goes to
ci-artifacts/grading_cases.md.
"""
from __future__ import annotations

import csv
import hashlib
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
from course_utils.autograde import (Limits, find_submissions, grade_lesson, plan_test_cells, prepare_submission,
                                    scan_for_tampering)
from course_utils.autograde import sandbox
from grading import cases as grading_cases
from grading.cases import CASES, COLLATERAL, INNOCENT, LESSON, TARGETS, TOTAL

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "ci-artifacts"
LIMITS = Limits(cell_timeout=20, submission_timeout=240, memory_mb=6144, cpu_seconds=600)



def _need_sandbox() -> None:
    """Skip where bubblewrap cannot run (a learner's laptop); in CI (CI=true) that is a failure, not a skip."""
    ok, why = sandbox.available()
    if not ok:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(f"no sandbox here: {why}")


def _release_and_solution():
    release = json.loads((REPO / "notebooks" / LESSON / f"{LESSON}.ipynb").read_text())
    solution = json.loads((REPO / "solutions" / LESSON / f"{LESSON}.ipynb").read_text())
    return release, solution


def _private_source(tmp: Path) -> Path:
    """The instructor's private copy of the source notebooks (outside the released repository)."""
    src = tmp / "instructor" / "source"
    shutil.copytree(REPO / "solutions" / LESSON, src / LESSON)
    return src


def _build(cases: dict, folder: Path) -> None:
    release, solution = _release_and_solution()
    folder.mkdir(parents=True)
    for name, case in cases.items():
        (folder / f"{name}.ipynb").write_bytes(case.build(release, solution))


def _digests(paths) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def _grade_batch(tmp: Path, cases: dict, progress) -> dict:
    """Build ``cases`` (aimed at this run's real paths) and grade them in one batch from a private source copy."""
    source = _private_source(tmp)
    flat, out = tmp / "submissions", tmp / "out"
    TARGETS.update(out=str(out), source=str(source), submissions=str(flat), repo_solutions=str(REPO / "solutions"))
    _build(cases, flat)
    before = _digests([*flat.glob("*.ipynb"), *source.rglob("*.ipynb")])
    results = grade_lesson(LESSON, flat, REPO, out, LIMITS, progress=progress, source=source)
    return {"results": {r.student: r for r in results}, "out": out, "flat": flat, "source": source,
            "before": before}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    require_data()
    _need_sandbox()
    lines = []
    return {**_grade_batch(tmp_path_factory.mktemp("autograde"), CASES, lines.append), "log": lines}


@pytest.fixture(scope="module")
def collateral(tmp_path_factory):
    """The attacks on records, gradebook, grader and other submissions, graded with innocent ones."""
    require_data()
    _need_sandbox()
    batch = _grade_batch(tmp_path_factory.mktemp("collateral"), {**INNOCENT, **COLLATERAL}, lambda *_: None)
    out = batch["out"]
    batch["records"] = _digests([*out.glob("*.json"), out / "grades.csv", out / "work" / "gradebook.db"])
    time.sleep(3)                     # a daemon that outlived its sandbox would write now
    return batch


def test_every_case_gets_the_score_it_deserves_and_is_flagged(graded):
    results = graded["results"]
    rows, wrong = [], []
    for name, case in CASES.items():
        r = results[name]
        ok_score = r.score == case.expected and r.max_score == TOTAL
        ok_flag = (case.flag is None and not r.flags) or (case.flag is not None and any(
            case.flag in f for f in r.flags))
        rows.append(f"| {name} | {case.what} | {case.expected:g} | {r.score:g} | {r.seconds:.1f} | "
                    f"{'; '.join(r.flags)[:160] or '–'} |")
        if name == "network_access" and not _network_isolated(r):
            continue                      # judged by test_network_access_is_refused (skipped there, with why)
        if not (ok_score and ok_flag):
            wrong.append(f"{name}: expected {case.expected:g} (flag {case.flag!r}), got {r.score:g} "
                         f"flags {r.flags} tests {r.tests}\n    verdicts: "
                         + " | ".join(v[:200] for v in r.verdicts.values() if "✗" in v))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "grading_cases.md").write_text(
        f"# Adversarial grading suite (lesson 02, {TOTAL} points)\n\nsandbox: {results['solution'].sandbox}\n\n"
        "| case | what | expected | actual | seconds | flags |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n")
    print("\n" + "\n".join(rows))
    assert not wrong, "\n".join(wrong)


def _network_isolated(r) -> bool:
    return "network" in r.sandbox


def test_network_access_is_refused(graded):
    """The submission that opens a socket gets its deserved score, where the grader can cut the network."""
    r = graded["results"]["network_access"]
    if not _network_isolated(r):
        pytest.skip(f"network isolation is unavailable on this machine (sandbox: {r.sandbox!r}); "
                    "nothing to assert about the network case")
    case = CASES["network_access"]
    assert r.score == case.expected, f"network_access: expected {case.expected:g}, got {r.score:g}; {r.flags}"


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
    assert _digests([*collateral["flat"].glob("*.ipynb"), *collateral["source"].rglob("*.ipynb")]) == \
        collateral["before"]
    assert _digests([*out.glob("*.json"), out / "grades.csv", out / "work" / "gradebook.db"]) == \
        collateral["records"]
    with open(out / "grades.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(INNOCENT) | set(COLLATERAL)
    assert float(rows["innocent_solution"]["score"]) == TOTAL and float(rows["innocent_blank"]["score"]) == 0
    assert not any(Path(p, "zz_course_hack.pth").exists() for p in site.getsitepackages())


def test_innocent_scores_match_a_solo_run(collateral, graded):
    """The innocent solution scores the same beside the attacks as the solution does in the main batch."""
    assert collateral["results"]["innocent_solution"].tests == graded["results"]["solution"].tests


def test_summary_csv_lists_every_student_and_exercise(graded):
    with open(graded["out"] / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["student"] for r in rows} == set(CASES)
    assert "ex5-q-sample-tests" in rows[0] and "flags" in rows[0]
    by = {r["student"]: r for r in rows}
    assert by["solution"]["status"] == "graded" and float(by["solution"]["score"]) == TOTAL
    assert by["empty_file"]["status"] == "not gradable"
    assert by["checks_monkeypatched"]["ex5-q-sample-tests"] == "0"


def test_nbgrader_tools_work_on_the_gradebook(graded):
    """generate_feedback and export read the scores the judge decided; feedback hides the hidden tests."""
    work = graded["out"] / "work"
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
    assert exported["solution"] == TOTAL and exported["hard_coded_visible_answer"] == TOTAL - 1


def test_rerun_is_idempotent_and_resumes(graded):
    """Nothing is graded twice; a removed record (a run stopped half-way) is graded again, alone."""
    out, flat, source = graded["out"], graded["flat"], graded["source"]
    before = {p.name: p.read_text() for p in out.glob("*.json")}
    lines = []
    again = grade_lesson(LESSON, flat, REPO, out, LIMITS, progress=lines.append, source=source)
    assert all("already graded" in line for line in lines)
    assert {p.name: p.read_text() for p in out.glob("*.json")} == before
    assert [r.score for r in again] == [graded["results"][r.student].score for r in again]
    (out / "solution.json").unlink()
    lines = []
    grade_lesson(LESSON, flat, REPO, out, LIMITS, progress=lines.append, source=source)
    regraded = [line for line in lines if "already graded" not in line]
    assert len(regraded) == 1 and "] solution: 11/11" in regraded[0]


def test_command_line_prints_table_and_attention_list(graded, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "course_utils.autograde", LESSON, str(graded["flat"]),
                           "--course", str(REPO), "--source", str(graded["source"]), "--out", str(graded["out"]),
                           "--cell-timeout", "20", "--submission-timeout", "240", "--memory-mb", "6144",
                           "--cpu-seconds", "600"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "need attention" in proc.stdout and "empty_file: the file is empty" in proc.stdout
    assert "grades.csv" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "course_utils.autograde", "99_nope", str(tmp_path),
                          "--course", str(REPO)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no lesson '99_nope'" in bad.stderr


def test_refuses_untrusted_grading_without_a_sandbox(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "available", lambda: (False, "bubblewrap (bwrap) is not installed"))
    (tmp_path / "alice.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="--trusting"):
        grade_lesson(LESSON, tmp_path, REPO, tmp_path / "out", LIMITS)


def test_nbgrader_layout_and_bad_folders(tmp_path):
    (tmp_path / "alice" / LESSON).mkdir(parents=True)
    (tmp_path / "alice" / LESSON / f"{LESSON}.ipynb").write_text("{}")
    (tmp_path / "bob.ipynb").write_text("{}")
    assert set(find_submissions(LESSON, tmp_path)) == {"alice", "bob"}
    with pytest.raises(ValueError, match="does not exist"):
        find_submissions(LESSON, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no submissions"):
        find_submissions(LESSON, tmp_path / "empty")
    with pytest.raises(ValueError, match="positive int"):
        Limits(cell_timeout=0)


@pytest.mark.parametrize("src,flagged", [
    ("torch.allclose = lambda *a, **k: True", True),
    ("import course_utils.checks as c\nc.check_q_sample = print", True),
    ("check_q_sample = lambda fn: None", True),
    ("def check_q_sample(fn):\n    pass", True),
    ("import builtins\nbuiltins.len = lambda x: 0", True),
    ("exec('x = 1')", True),
    ("import os\nos.environ['COURSE_ASSESSMENT_THRESHOLD'] = '0'", True),
    ("AssertionError = Exception", True),
    ("from unittest.mock import patch", True),
    ("f.__code__ = g.__code__", True),
    ("get_ipython().events.register('post_run_cell', print)", True),
    ("this is not valid python !", True),                       # unparsable: flagged for review, never waved through
    ("%time x = 1", True),
    ("def q_sample(x0, t, a, noise):\n    out = x0.clone()\n    out[0] = 1\n    return out", False),
    ("torch.backends.cudnn.benchmark = True", False),
    ("import numpy as np\nx = np.zeros(3)\nx[1] = 2", False),
    ("class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.a = 1", False),
    ("from torch.nn import functional as F\ny = F.relu(x)", False),
    ("model.eval()\nwith torch.no_grad():\n    y = model(x)", False),
])
def test_tamper_scan(src, flagged):
    assert bool(scan_for_tampering(src, {"check_q_sample", "torch", "GaussianDiffusion", "F"})) is flagged


@pytest.mark.parametrize("notebook", sorted(str(p.relative_to(REPO)) for p in
                                            [*REPO.glob("notebooks/0*/*.ipynb"), *REPO.glob("solutions/0*/*.ipynb")]))
def test_scan_flags_nothing_in_the_course_notebooks(notebook):
    """No false positives: the released notebooks and the solutions, as the scan sees a submission."""
    nb = json.loads((REPO / notebook).read_text())
    meta = lambda c: c.get("metadata", {}).get("nbgrader", {})  # noqa: E731
    flagged = {}
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code" or meta(c).get("locked") or (meta(c).get("grade") and not meta(c).get("solution")):
            continue
        src = "".join(c["source"]).replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
        reasons = scan_for_tampering(src, {"check_q_sample", "torch", "F", "plt", "np"})
        if reasons:
            flagged[meta(c).get("grade_id") or i] = reasons
    assert not flagged, flagged


@pytest.mark.parametrize("lesson", sorted(p.name for p in REPO.glob("solutions/0*") if p.is_dir()))
def test_every_test_cell_can_be_decided_outside(lesson):
    """Every graded test cell of every lesson is made of check calls the grader can plan."""
    plans = plan_test_cells(json.loads((REPO / "solutions" / lesson / f"{lesson}.ipynb").read_text()))
    assert plans and all(plans.values()), plans


def test_prepare_restores_a_deleted_test_cell_after_its_answer():
    release, solution = _release_and_solution()
    raw = CASES["test_cell_deleted"].build(release, solution)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.ipynb"
        p.write_bytes(raw)
        prep = prepare_submission(p, release)
    ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in prep.notebook["cells"]]
    assert ids.index("ex5-q-sample-tests") == ids.index("ex5-q-sample") + 1
    assert any("was deleted" in f for f in prep.flags)


# ---------------------------------------------------------------- lesson 07: the notebook and its checkpoint
LESSON07 = "07_final_assessment"


def _finetuned_cfg16(path: Path, steps: int = 8) -> Path:
    """A checkpoint trained by the notebook's own recipe would take 15 minutes; a few more steps on the shipped
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
    _need_sandbox()

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
