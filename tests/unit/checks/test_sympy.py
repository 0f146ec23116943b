"""course_utils.checks._sympy: sympy answers read back from their srepr strings without evaluating them."""
from __future__ import annotations

import pytest
import sympy as sp

from course_utils.checks._sympy import parse_srepr


def test_parse_srepr_rebuilds_assumptions_functions_and_constants():
    b, x = sp.Symbol("b", positive=True), sp.Symbol("x", real=True)
    f = sp.Function("f")
    for e in (b * x ** 2 - sp.Rational(3, 7) * sp.pi + sp.I * sp.log(b) + sp.oo, f(x) + sp.exp(-x), sp.Float(0.25) * b):
        back = parse_srepr(sp.srepr(e))
        assert back == e and back.free_symbols == e.free_symbols
    assert parse_srepr(sp.srepr(b)).is_positive and parse_srepr(sp.srepr(x)).is_real


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo hacked')",
    "log('__import__(\"os\").system(\"echo hacked\")')",
    "Symbol.__subclasses__()",
    "Add(Symbol('x'), [1])",
    "sympify('x')",
    "Symbol('x', positive=open('f'))",
    "Integer(*[1])",
])
def test_srepr_reader_refuses_anything_but_sympy_constructors(text):
    with pytest.raises(ValueError):
        parse_srepr(text)


def test_parse_srepr_refuses_non_strings_and_huge_strings():
    with pytest.raises(ValueError, match="srepr string"):
        parse_srepr(3)
    with pytest.raises(ValueError, match="at most"):
        parse_srepr("Integer(1)" + " " * 1_000_001)
