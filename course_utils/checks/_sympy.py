"""Reading a learner's sympy expressions back without evaluating them.

A check's run step returns plain data, so a sympy answer travels as its ``sympy.srepr`` string (lesson 03's
complete-the-square exercise). The judge runs where the learner's code never ran and must not ``eval`` that
string: :func:`parse_srepr` walks its syntax tree and builds only sympy's own classes and constants.
"""
from __future__ import annotations

import ast
from typing import Any

__all__ = ["parse_srepr"]

_STRING_ARGS = {"Symbol", "Dummy", "Wild", "Float", "Function"}   # constructors whose first argument is a name
_MAX_SREPR = 1_000_000


def parse_srepr(text: str):
    """Rebuild a sympy expression from its ``sympy.srepr`` string without evaluating the string.

    Only calls of sympy's own classes (``Add``, ``Mul``, ``Pow``, ``Symbol('x', positive=True)``,
    ``Integer(2)``, ``log``, …), sympy's constants (``pi``, ``E``, ``I``, ``oo``, …) and number literals are
    accepted; a string literal only as the name given to ``Symbol``/``Dummy``/``Wild``/``Float``/``Function``.
    Raises ``ValueError`` on anything else.
    """
    import sympy as sp

    if not isinstance(text, str) or len(text) > _MAX_SREPR:
        raise ValueError(f"expected a sympy.srepr string of at most {_MAX_SREPR} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as e:
        raise ValueError(f"not a sympy.srepr string ({type(e).__name__})") from None

    def sympy_name(name: str):
        obj = getattr(sp, name, None)
        if name.startswith("_") or obj is None:
            raise ValueError(f"{name!r} is not a sympy name")
        if isinstance(obj, type) and issubclass(obj, sp.Basic):
            return obj                                   # a class: Add, Symbol, log, Piecewise, …
        if isinstance(obj, sp.Basic):
            return obj                                   # a constant: pi, E, I, oo, zoo, nan, true
        raise ValueError(f"{name!r} is not a sympy class or constant")

    def number(node) -> Any:
        if isinstance(node, ast.Constant) and (node.value is None or type(node.value) in (int, float, bool)):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = number(node.operand)
            if type(v) in (int, float):
                return -v if isinstance(node.op, ast.USub) else v
        raise ValueError(f"unexpected {type(node).__name__} in a sympy.srepr string")

    def build(node, depth: int = 0) -> Any:
        if depth > 400:
            raise ValueError("expression nested too deeply")
        if isinstance(node, ast.Name):
            return sympy_name(node.id)
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                func, fname = sympy_name(node.func.id), node.func.id
            elif isinstance(node.func, ast.Call):        # Function('f')(x): an undefined function applied
                func, fname = build(node.func, depth + 1), ""
            else:
                raise ValueError("unexpected call in a sympy.srepr string")
            if not callable(func) or isinstance(func, sp.Basic) and not isinstance(func, type):
                raise ValueError(f"{fname or 'that'} cannot be called")
            args = []
            for i, a in enumerate(node.args):
                if i == 0 and fname in _STRING_ARGS and isinstance(a, ast.Constant) and isinstance(a.value, str):
                    args.append(a.value)
                elif isinstance(a, ast.Starred):
                    raise ValueError("unexpected * in a sympy.srepr string")
                else:
                    args.append(build(a, depth + 1))
            kwargs = {}
            for kw in node.keywords:
                if kw.arg is None:
                    raise ValueError("unexpected ** in a sympy.srepr string")
                kwargs[kw.arg] = number(kw.value)
            return func(*args, **kwargs)
        if isinstance(node, ast.Tuple):
            return tuple(build(e, depth + 1) for e in node.elts)
        return number(node)

    return build(tree.body)
