"""Phase 2, in the trusted process: read the filed outputs and decide each test cell.

This process never loads student code: outputs are read with ``torch.load(weights_only=True)`` (plain
tensors, numbers, strings and containers only) from regular files of bounded size (no symlinks), and each
call is decided by its check's judge step against inputs made here. A test cell earns its points when
every one of its calls passes; the judge's ✓/✗ lines are what the student's feedback shows.
"""
from __future__ import annotations

import contextlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Verdict", "judge_call", "load_outputs", "MAX_OUTPUT_BYTES"]

MAX_OUTPUT_BYTES = 256 * 1024 * 1024


@dataclass
class Verdict:
    passed: bool
    text: str                     # the ✓/✗ lines (what the feedback shows)


def load_outputs(path: Path):
    """The plain outputs filed at ``path``, or ``None`` with the reason when they cannot be trusted."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, "no outputs were filed for this test: the notebook stopped before it, or the cell " \
                     "that defines the function failed or never ran"
    if not stat.S_ISREG(st.st_mode):
        return None, "the outputs file is not a regular file (a link?); nothing was judged"
    if st.st_size > MAX_OUTPUT_BYTES:
        return None, f"the outputs file is {st.st_size / 1e6:.0f} MB (limit {MAX_OUTPUT_BYTES / 1e6:.0f} MB)"
    import torch
    try:
        with open(path, "rb") as f:
            return torch.load(f, weights_only=True, map_location="cpu"), None
    except Exception as err:  # noqa: BLE001 - anything that is not plain data
        return None, f"the filed outputs are not plain data ({type(err).__name__}); nothing was judged"


class JudgeTimeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float):
    """Interrupt a judge step that runs longer than ``seconds`` (outputs crafted to be slow to judge)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum, frame):
        raise JudgeTimeout()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def judge_call(check_name: str, inputs: dict, outputs, why_missing: str | None = None,
               timeout: float = 120.0) -> Verdict:
    """Run the check's judge step on ``outputs``; any exception other than ✗ is a failed test, not a crash,
    and a judge step that takes longer than ``timeout`` seconds fails the test."""
    from ..checks import CheckFailed, get_check

    check = get_check(check_name)
    name = check.name
    if outputs is None:
        return Verdict(False, f"✗ {name}: {why_missing}")
    if isinstance(outputs, dict) and "__subject_error__" in outputs:
        return Verdict(False, f"✗ {name}: the test could not get your function: {outputs['__subject_error__']}. "
                              "Run the cell that defines it (and fix its error) before the test.")
    if isinstance(outputs, dict) and "__run_error__" in outputs:
        return Verdict(False, f"✗ {name}: running your code for this test failed: {outputs['__run_error__']}")
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), _deadline(timeout):
            check.judge(inputs, outputs)
    except CheckFailed:
        return Verdict(False, buf.getvalue().strip())
    except JudgeTimeout:
        return Verdict(False, f"✗ {name}: judging your outputs took longer than {timeout:.0f} s; nothing was "
                              "judged (outputs crafted to be slow?)")
    except Exception as err:  # noqa: BLE001 - malformed outputs must not crash the grader
        text = buf.getvalue().strip()
        return Verdict(False, (text + "\n" if text else "") +
                       f"✗ {name}: the outputs of your code are not what this test expects "
                       f"({type(err).__name__}: {str(err)[:200]})")
    return Verdict(True, buf.getvalue().strip())
