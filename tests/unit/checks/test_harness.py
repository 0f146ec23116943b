"""The shared check machinery of ``course_utils.checks._harness``: the "same inputs, same output" verdict."""
from __future__ import annotations

import pytest
import torch

from course_utils.checks import _harness as h


def verdict(first, again, **kw):
    """None when same_again passes, else its failure message."""
    r = h.Report("probe")
    try:
        h.same_again(r, first, again, "not reproducible", **kw)
    except AssertionError as e:
        return str(e)
    return None


def test_exact_by_default_dtype_included():
    x = torch.randn(3, 2)
    assert verdict(x, x.clone()) is None
    assert "not reproducible" in verdict(x, x + 1e-7)
    assert "not reproducible" in verdict(x, x.double())            # same numbers, another dtype
    assert "not reproducible" in verdict(x, x[:2])
    assert "not reproducible" in verdict(x, None)
    assert verdict({"mean": x, "var": x * 2}, {"mean": x.clone(), "var": x * 2}) is None
    assert "not reproducible" in verdict({"mean": x}, {"mean": x, "var": x})


def test_tolerances_and_conversion():
    x = torch.randn(100, dtype=torch.float64)
    assert verdict(x, x + 1e-9, rtol=1e-5, atol=1e-8) is None
    assert "not reproducible" in verdict(x, x + 1e-3, rtol=1e-5, atol=1e-8)
    assert verdict(0.5, 0.5 + 1e-12, rtol=1e-9) is None
    assert "not reproducible" in verdict(0.5, 0.6, rtol=1e-9)
    m = torch.tensor([1, 0, 1])
    assert verdict(m, m.bool(), convert=lambda v: v.long()) is None  # a bool mask and its int copy agree
    assert "not reproducible" in verdict(m, [1, 0, 1], convert=lambda v: v.long())   # not convertible: different
    assert verdict(torch.tensor(0.25), 0.25, convert=float) is None


def test_a_failed_second_call_reports_its_own_error():
    outcome = h.call(lambda: 1 / 0)
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        h.same_again(h.Report("probe"), 1.0, outcome, "not reproducible")
    assert verdict(2.0, h.call(lambda: 2.0)) is None
