"""``python -m course_utils.autograde``: the grading command (:func:`course_utils.autograde.pipeline.main`)."""
import sys

from .pipeline import main

sys.exit(main())
