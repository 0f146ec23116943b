"""Checks for the learners' exercises: their function against the package's, on seeded inputs.

Each ``check_*`` runs the learner's function on seeded inputs, compares the result with ``course_utils``
and prints ``✓ …`` or ``✗ …`` with the classic mistake named (see :mod:`course_utils.checks._harness`
for the three steps every check is made of). One module per lesson; this package re-exports them all, so
``from course_utils.checks import check_q_sample`` works in every notebook.
"""
from __future__ import annotations

from . import _harness, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08, lesson09
from ._harness import REGISTRY, Check, CheckFailed, get_check
from .lesson01 import *  # noqa: F401,F403
from .lesson02 import *  # noqa: F401,F403
from .lesson03 import *  # noqa: F401,F403
from .lesson04 import *  # noqa: F401,F403
from .lesson05 import *  # noqa: F401,F403
from .lesson06 import *  # noqa: F401,F403
from .lesson07 import *  # noqa: F401,F403
from .lesson08 import *  # noqa: F401,F403
from .lesson09 import *  # noqa: F401,F403

_LESSONS = (lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08, lesson09)

__all__ = sorted(set().union(*(m.__all__ for m in _LESSONS)) | {"REGISTRY", "Check", "CheckFailed", "get_check"})
