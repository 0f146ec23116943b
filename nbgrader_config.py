# nbgrader configuration: this repository is an nbgrader course directory.
#
#   solutions/<lesson>/<lesson>.ipynb   source (instructor notebooks, with solutions and hidden tests)
#   notebooks/<lesson>/<lesson>.ipynb   release (student notebooks; regenerate with
#                                       `python scripts/release_notebooks.py`, never edit by hand)
#   submitted/ autograded/ feedback/    nbgrader's working folders (git-ignored)
#   gradebook.db                        the gradebook (git-ignored)
#
# nbgrader reads this file only from the current directory: run nbgrader from the repository root,
# with the virtual environment's bin/ on PATH (nbgrader runs `alembic` from PATH).
import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)
_root = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = _root
c.CourseDirectory.course_id = "diffusion-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(_root, "gradebook.db")
# Folders never copied from solutions/<lesson>/ into the release.
# Files a lesson writes when it runs (lesson 04's animation, lesson 07's trained model) stay out too.
# Lesson 07's assessment_model.pt is NOT ignored: students hand it in with the notebook, so `submit` and
# `collect` must carry it to the instructor (grading never retrains). It never reaches a release: the release
# command (scripts/release_notebooks.py) copies no *.pt from solutions/.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "data", "*.gif"]

# Executing notebooks while autograding: the default 30 s per cell is too tight for a slow CPU.
c.Execute.timeout = 300
c.Execute.startup_timeout = 120
# Tracebacks without code context: a failing visible test line would otherwise show the hidden tests
# below it in the autograded notebook and the feedback. The checks' messages say what is wrong.
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--InteractiveShell.xmode=Minimal"]

# Any stderr output in a test cell scores it 0 even when every assert passes. The lessons' test cells
# are silent (course_utils.checks reports warnings on stdout); this removes the one harmless message a
# fresh machine may print while matplotlib builds its font cache.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"^Matplotlib is building the font cache"

# Feedback must not show the hidden tests (nbgrader shows them unless ClearHiddenTests is added).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]

# The student copy of an answer cell.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# JupyterHub with nbgrader's exchange: uncomment and set the shared exchange folder.
# c.Exchange.root = "/srv/nbgrader/exchange"
