"""What the learner-check tests (tests/unit/checks/test_lessonNN.py) share: run a check expecting ✓ or ✗, and
drive its three steps apart as the grader does — make the inputs, round-trip them through torch.save /
torch.load(weights_only=True), run the learner's code under the grader's own block
(:func:`course_utils.autograde.kernel.blocked`, not a copy), round-trip the outputs, judge."""
from __future__ import annotations

import contextlib
import io

import pytest
import torch

from course_utils.autograde.kernel import _resolve, blocked
from course_utils.checks import CheckFailed

__all__ = ["run", "fails", "round_trip", "separates", "blocked", "resolve"]

resolve = _resolve
"""``"course_utils.diffusion.GaussianDiffusion.q_sample"`` → the function; the grader's own resolver."""


def run(check, *args, **kwargs):
    """Run a check expected to pass; it must return None."""
    assert check(*args, **kwargs) is None


def fails(capsys, check, *args, match: str, **kwargs) -> str:
    """Run a check expected to fail with ``match`` in its message; returns what it printed."""
    with pytest.raises(AssertionError, match=match):
        check(*args, **kwargs)
    out = capsys.readouterr()
    assert out.err == "", "checks must never write to stderr"
    assert "✗" in out.out
    return out.out


def round_trip(obj):
    """``obj`` after torch.save → torch.load(weights_only=True), as the grader carries inputs and outputs."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def separates(capsys, check, params, right, wrong, match, subjects_extra=(), *, ticks=None, block=True):
    """The check's steps work apart: ``right`` passes (✓, judge returns None) and ``wrong`` fails with ``match``.

    Each answer goes make(**params) → round trip → run(inputs, subject, *subjects_extra) → round trip →
    judge, and nothing but stdout is written. ``right``/``wrong`` is one subject, or a tuple of the
    subjects ``run`` takes (spread into it). ``ticks``: how many ✓ the right answer prints (None: at least
    one). ``block``: run the learner's code under the grader's :func:`blocked`; False only where the test's
    right answer *is* the package's answer (which the block makes raise, by design).
    """
    for subject, want in ((right, None), (wrong, match)):
        subjects = subject if isinstance(subject, tuple) else (subject,)
        inputs = round_trip(check.make(**params))
        with blocked(check) if block else contextlib.nullcontext():     # run never needs the package's answer
            outputs = round_trip(check.run(inputs, *subjects, *subjects_extra))
        if want is None:
            assert check.judge(inputs, outputs) is None
            out = capsys.readouterr()
            assert out.err == "" and "✗" not in out.out
            assert (out.out.count("✓") == ticks) if ticks is not None else ("✓" in out.out), out.out
        else:
            with pytest.raises(CheckFailed, match=want):
                check.judge(inputs, outputs)
            out = capsys.readouterr()
            assert out.err == "" and "✗" in out.out

