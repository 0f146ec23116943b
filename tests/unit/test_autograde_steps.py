"""The grader's trusted steps on their own (no sandbox): planning test cells, judging untrusted outputs."""
from __future__ import annotations

import io
import time

import pytest
import torch

from course_utils import checks
from course_utils.autograde import judge, plan


def _nb(*cells):
    return {"cells": [{"cell_type": "code", "source": src, "metadata": {"nbgrader": meta}} for src, meta in cells]}


LOCKED = {"grade": False, "grade_id": "imports", "locked": True, "solution": False}
TEST = {"grade": True, "grade_id": "ex-tests", "locked": True, "points": 2, "solution": False}


def test_plan_reads_check_calls_subjects_and_parameters():
    nb = _nb(("import torch\nBUDGET = 1_000", LOCKED),
             ("check_q_sample(q_sample)\n### BEGIN HIDDEN TESTS\nimport course_utils.checks as _checks\n"
              "_checks.check_q_sample(lambda x0, t, a, e: q_sample(x0, t, a, e), T=50, shape=(2, 1, 4, 4),"
              " dtype=torch.float64, n=BUDGET)\n### END HIDDEN TESTS", TEST))
    calls = plan.plan_test_cells(nb)["ex-tests"]
    assert [c.key for c in calls] == ["ex-tests#0", "ex-tests#1"]
    assert calls[0].subjects == ("q_sample",) and calls[0].params == {}
    assert calls[1].subjects == ("lambda x0, t, a, e: q_sample(x0, t, a, e)",)
    assert calls[1].params == {"T": 50, "shape": (2, 1, 4, 4), "dtype": torch.float64, "n": 1000}


@pytest.mark.parametrize("src", ["assert f(1) == 2", "for s in range(3):\n    check_q_sample(q_sample, seed=s)",
                                 "check_q_sample(*args)", "x = check_q_sample(q_sample)"])
def test_plan_refuses_what_cannot_be_decided_outside(src):
    with pytest.raises(plan.PlanError, match="ex-tests"):
        plan.plan_test_cells(_nb((src, TEST)))


def test_grading_seed_shifts_unit_checks_but_not_the_assessment():
    unit = plan.PlannedCall("k#0", "k", "check_q_sample", ("q_sample",), {"seed": 3})
    a, b = plan.make_inputs(unit, 0), plan.make_inputs(unit, 1234)
    assert not torch.equal(a["x0"], b["x0"])
    fixed = plan.PlannedCall("a#0", "a", "check_assessment", ("guided_sample", "W"), {"seed": 2024})
    assert plan.make_inputs(fixed, 1234)["seed"] == 2024


def _inputs():
    return checks.get_check("check_q_sample").make()


@pytest.mark.parametrize("outputs", [
    {},                                              # the keys the judge expects are missing
    {"out": "not an outcome", "again": 3},
    {"out": {"value": torch.zeros(1), "error": None, "notes": [5]}, "again": {}},
    [1, 2, 3],
])
def test_malformed_outputs_fail_the_test_without_crashing_the_grader(outputs):
    v = judge.judge_call("check_q_sample", _inputs(), outputs)
    assert not v.passed and "✗ q_sample" in v.text


def test_outputs_that_are_not_plain_data_are_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "x.pt").write_bytes(pickle.dumps(Evil()))
    value, why = judge.load_outputs(tmp_path / "x.pt")
    assert value is None and "not plain data" in why
    (tmp_path / "link.pt").symlink_to(tmp_path / "x.pt")
    assert "regular file" in judge.load_outputs(tmp_path / "link.pt")[1]
    assert "no outputs were filed" in judge.load_outputs(tmp_path / "missing.pt")[1]
    buf = io.BytesIO()
    torch.save({"a": torch.ones(2)}, buf)
    (tmp_path / "ok.pt").write_bytes(buf.getvalue())
    assert torch.equal(judge.load_outputs(tmp_path / "ok.pt")[0]["a"], torch.ones(2))


def test_a_slow_judge_step_is_cut_off(monkeypatch):
    check = checks.get_check("check_q_sample")

    def slow(inputs, outputs):
        while True:
            time.sleep(0.01)

    monkeypatch.setattr(type(check), "judge", property(lambda self: slow), raising=False)
    t0 = time.perf_counter()
    v = judge.judge_call("check_q_sample", _inputs(), {"out": None}, timeout=0.5)
    assert not v.passed and "longer than" in v.text and time.perf_counter() - t0 < 5


def test_parallel_jobs_and_their_threads(monkeypatch):
    """jobs = 0 means one per CPU; several jobs share the CPUs out as OMP threads unless the grader set them."""
    from course_utils.autograde import pipeline

    monkeypatch.setattr(pipeline, "usable_cpus", lambda: 4)
    assert pipeline.resolve_jobs(0) == 4 and pipeline.resolve_jobs(3) == 3
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="jobs must be an int"):
            pipeline.resolve_jobs(bad)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert pipeline._sandbox_threads(1) is None
    assert pipeline._sandbox_threads(2) == 2 and pipeline._sandbox_threads(8) == 1
    assert dict(pipeline._sandbox_env(pipeline.Limits(), 2))["OMP_NUM_THREADS"] == "2"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert pipeline._sandbox_threads(2) is None
    assert dict(pipeline._sandbox_env(pipeline.Limits()))["OMP_NUM_THREADS"] == "1"
