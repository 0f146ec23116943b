"""An advisory scan of student-written cells: code that looks like tampering, flagged for a person.

It decides nothing. The verdict comes from the judge, in a process that never loaded the student's code
(:mod:`.judge`), so patching torch, the checks or IPython inside the sandbox changes no score. The scan
only points a reviewer at cells worth reading: patches of modules, rebinding names the tests use,
``exec``/``eval``/``setattr``-style dynamic code, imports of ``builtins``/``ctypes``/``gc``/``unittest.mock``,
access to code objects, IPython hooks — and cells that cannot be parsed at all (a magic, a syntax error),
which are flagged instead of being waved through. Ordinary idioms (``model.eval()``,
``from torch.nn import functional as F``, ``torch.backends.cudnn.benchmark = True``) are not flagged.
"""
from __future__ import annotations

import ast
import builtins

__all__ = ["scan_for_tampering", "module_names"]

_SANDBOXED_MODULES = {"torch", "numpy", "np", "course_utils", "checks", "builtins", "__builtins__", "sys",
                      "math", "einops", "nbgrader", "unittest", "pytest", "gc", "ctypes", "inspect", "types"}
_DYNAMIC_BUILTINS = {"exec", "eval", "compile", "__import__", "setattr", "delattr", "globals", "vars"}
_BUILTIN_NAMES = set(dir(builtins)) - {"_", "__doc__", "__name__", "__spec__", "__loader__", "__package__"}
_ALLOWED_PATCHES = ("torch.backends.", "plt.rcParams", "matplotlib.rcParams", "mpl.rcParams")
_SUSPECT_ATTRIBUTES = {"__code__", "__globals__", "__dict__", "__builtins__", "__setattr__", "__class__",
                       "__torch_function__", "__torch_dispatch__", "f_globals", "f_locals", "f_back"}
_IPYTHON_HOOKS = {"input_transformers_post", "input_transformers_cleanup", "ast_transformers", "events",
                  "set_custom_exc", "displayhook", "register_magic_function", "register_post_execute"}
_CONVENTIONAL_ALIASES = {("torch.nn.functional", "F"), ("torch.nn", "nn"), ("numpy", "np"),
                         ("matplotlib.pyplot", "plt"), ("functional", "F")}


def module_names(source: str) -> set[str]:
    """Names bound by imports in ``source`` (``import torch as t`` → t); empty if it does not parse."""
    names = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return names
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def _root_name(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _conventional(module: str | None, name: str, asname: str) -> bool:
    full = f"{module}.{name}" if module else name
    return (full, asname) in _CONVENTIONAL_ALIASES or (name, asname) in _CONVENTIONAL_ALIASES


def scan_for_tampering(source: str, protected: set[str]) -> list[str]:
    """Reasons a reviewer should read ``source`` (one student-written code cell); empty when none.

    Args:
        source: the cell's code.
        protected: names the locked cells import (the checks, torch, …): rebinding them is flagged.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return [f"the cell cannot be parsed as Python (line {err.lineno}: {err.msg}); a magic or invalid "
                "syntax hides its code from review"]
    modules = _SANDBOXED_MODULES | protected | module_names(source)
    reasons = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for tgt in targets:
            for t in (tgt.elts if isinstance(tgt, (ast.Tuple, ast.List)) else [tgt]):
                root = _root_name(t)
                if isinstance(t, (ast.Attribute, ast.Subscript)) and root in modules:
                    if ast.unparse(t).startswith(_ALLOWED_PATCHES):
                        continue
                    reasons.append(f"line {line}: assigns to {ast.unparse(t)} (patches a module)")
                elif isinstance(t, ast.Name) and (t.id in _BUILTIN_NAMES or t.id in protected):
                    reasons.append(f"line {line}: rebinds {t.id!r}, which the tests rely on")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and (
                node.name in protected or node.name in _BUILTIN_NAMES):
            reasons.append(f"line {line}: redefines {node.name!r}, which the tests rely on")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for a in node.names:
                if a.asname and a.asname in protected and a.asname != a.name.split(".")[-1] \
                        and not _conventional(module, a.name, a.asname):
                    reasons.append(f"line {line}: imports {a.name} as {a.asname!r}, a name the tests use")
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for m in mods:
                if m.split(".")[0] in ("builtins", "ctypes", "gc") or m.startswith(("unittest.mock", "torch.overrides",
                                                                                  "torch.utils._python_dispatch")):
                    reasons.append(f"line {line}: imports {m}")
        if isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in _DYNAMIC_BUILTINS:
                reasons.append(f"line {line}: calls {fn.id}()")
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            if name in ("patch", "monkeypatch", "patch_object"):
                reasons.append(f"line {line}: calls {name}() (mocking)")
            if name in _IPYTHON_HOOKS or (isinstance(fn, ast.Attribute) and fn.attr == "register"
                                          and _root_name(fn) == "get_ipython"):
                reasons.append(f"line {line}: installs an IPython hook ({ast.unparse(fn)})")
        if isinstance(node, ast.Attribute) and (node.attr in _SUSPECT_ATTRIBUTES or node.attr in _IPYTHON_HOOKS):
            reasons.append(f"line {line}: touches {ast.unparse(node)}")
        if isinstance(node, ast.ClassDef) and any("FunctionMode" in ast.unparse(b) or "DispatchMode" in ast.unparse(b)
                                                  for b in node.bases):
            reasons.append(f"line {line}: defines a torch function mode ({node.name})")
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            hit = [n for n in node.names if n in _BUILTIN_NAMES or n in protected]
            if hit:
                reasons.append(f"line {line}: declares {hit} global (rebinds names the tests use)")
    return list(dict.fromkeys(reasons))
