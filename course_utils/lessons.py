"""The course's lessons, in one place: every lesson's facts live in one :class:`Lesson` entry of ``LESSONS``.

The start page's lesson table, the README's lesson table, the environment check, the benchmarks
(``bench/course_runtime.py``), the release script and the tests read this registry instead of keeping
their own copies. A lesson's graded points and its exercises are not typed here: they are read from the
nbgrader metadata of its solution notebook (:meth:`Lesson.exercises`, :meth:`Lesson.points`).

Adding a lesson (say 08, text-to-image) takes five things:

1. its notebook, ``solutions/08_text_to_image/08_text_to_image.ipynb`` (answer cells, each followed by
   its locked test cell with points; ``./course.sh release`` makes the student copy in ``notebooks/``);
2. its checks module, ``course_utils/checks/lesson08.py`` (re-exported by ``course_utils/checks/__init__.py``);
3. its widget module under ``course_utils/widgets/`` (if the lesson has a widget);
4. ONE entry below, in ``LESSONS``: id, folder, title, the two one-line summaries, CPU/GPU minutes, and
   where they apply its fast-mode environment, checkpoints and browser-test moves;
5. its tests, ``tests/e2e/test_lesson08.py``: ``class TestLesson08(LessonTests): spec = LessonSpec.from_registry(
   "08", one_right=..., visible_marker=...)`` (``tests/lesson_harness.py``), plus the lesson's own cases.

Then run ``./course.sh release`` (it rewrites the start page's table) and paste the output of
``python -m course_utils.lessons readme`` over the README's lesson table (a test compares them).

Command line::

    python -m course_utils.lessons              # one line per lesson: id, folder, points, minutes
    python -m course_utils.lessons readme       # the README's lesson table (Markdown)
    python -m course_utils.lessons start-page   # the start page's lesson section (Markdown)

Importing this module needs only the standard library (the release script and Colab import it).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Union

__all__ = ["Lesson", "CheckpointFile", "ScratchFile", "LESSONS", "get", "read_exercises", "escape_cell",
           "start_page_markdown", "readme_table", "START_PAGE", "REPO", "main"]

REPO = Path(__file__).resolve().parents[1]          # the course repository (an editable install's checkout)
START_PAGE = "00_start_here"                        # solutions/00_start_here.ipynb: not a lesson, not graded
MOVES = ("start", "type", "key", "select")          # the browser test's vocabulary (see Lesson.browser_moves)


@dataclass(frozen=True)
class CheckpointFile:
    """An environment value: the path of the shipped checkpoint ``name`` (``course_utils.pretrained``)."""

    name: str


@dataclass(frozen=True)
class ScratchFile:
    """An environment value: a file ``name`` in a scratch folder that the caller chooses (a temp dir)."""

    name: str


EnvValue = Union[str, CheckpointFile, ScratchFile]


@dataclass(frozen=True)
class Lesson:
    """One lesson's facts.

    Attributes:
        id: two digits, "02"; lessons are numbered in the order they are taken.
        folder: ``<id>_<name>``, e.g. "02_forward_diffusion": ``solutions/<folder>/<folder>.ipynb``.
        title: as the start page and the README name it, e.g. "Forward diffusion".
        summary: the start page's "what you do" (one line; ``|`` is escaped when rendered).
        builds: the README's "what you build" (one line).
        cpu_minutes, gpu_minutes: the time a top-to-bottom run takes, as the tables state it, measured on
            a 2-core CPU (``bench/results/course_runtime_cpu.json``) and an H100-class GPU.
        cpu_is_training: the CPU time is the lesson's training run (lesson 07): the table says
            "≈ 14 (training)" and the environment check warns about it.
        status: the README's status column ("ready").
        needs_data: the notebook reads FashionMNIST (its tests skip locally when the data is missing).
        checkpoints: the shipped checkpoints (``course_utils.pretrained``) the notebook loads.
        fast_env: the environment of the lesson's fast (CPU, smoke-test) run, used by the tests and the
            benchmarks: values are strings, :class:`CheckpointFile` or :class:`ScratchFile`.
        test_env: what the lesson's test runs add on a shared 2-core machine (not a learner's setting).
        browser_moves: the moves the browser test makes on the notebook's last widget, in order:
            ("start", None) the first screenshot only; ("type", v) type v into the slider's readout;
            ("key", k) press k on the slider's handle; ("select", label) choose label in the dropdown.
    """

    id: str
    folder: str
    title: str
    summary: str
    builds: str
    cpu_minutes: str
    gpu_minutes: str
    cpu_is_training: bool = False
    status: str = "ready"
    needs_data: bool = True
    checkpoints: tuple[str, ...] = ()
    fast_env: Mapping[str, EnvValue] = field(default_factory=dict, hash=False)
    test_env: Mapping[str, str] = field(default_factory=dict, hash=False)
    browser_moves: tuple[tuple[str, object], ...] = ()

    def __post_init__(self):
        if not re.fullmatch(r"\d\d", str(self.id)):
            raise ValueError(f"a lesson id is two digits, e.g. '08'; got {self.id!r}.")
        if not re.fullmatch(rf"{self.id}_[a-z0-9_]+", str(self.folder)):
            raise ValueError(f"lesson {self.id}'s folder must be '{self.id}_<lowercase_name>' (its notebook is "
                             f"solutions/<folder>/<folder>.ipynb); got {self.folder!r}.")
        for name in ("title", "summary", "builds", "cpu_minutes", "gpu_minutes", "status"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or "\n" in value:
                raise ValueError(f"lesson {self.id}'s {name} must be one non-empty line of text (a table "
                                 f"cell); got {value!r}.")
        for move in self.browser_moves:
            if not (isinstance(move, tuple) and len(move) == 2 and move[0] in MOVES):
                raise ValueError(f"lesson {self.id}'s browser_moves must be (action, value) pairs with action "
                                 f"one of {MOVES}; got {move!r}.")
        for key, value in {**self.fast_env, **self.test_env}.items():
            if not isinstance(value, (str, CheckpointFile, ScratchFile)):
                raise ValueError(f"lesson {self.id}'s environment variable {key} must be a str, CheckpointFile "
                                 f"or ScratchFile; got {value!r}.")
        object.__setattr__(self, "checkpoints", tuple(self.checkpoints))
        object.__setattr__(self, "fast_env", MappingProxyType(dict(self.fast_env)))
        object.__setattr__(self, "test_env", MappingProxyType(dict(self.test_env)))

    # ------------------------------------------------------------------ paths and notebook facts
    def notebook(self, root: str | os.PathLike | None = None, release: bool = False) -> Path:
        """``<root>/solutions/<folder>/<folder>.ipynb`` (``release=True``: the student copy in notebooks/)."""
        base = Path(root) if root is not None else REPO
        return base / ("notebooks" if release else "solutions") / self.folder / f"{self.folder}.ipynb"

    def exercises(self, root: str | os.PathLike | None = None) -> dict[str, tuple[str, float]]:
        """answer cell grade_id → (its test cell grade_id, points), read from the solution notebook."""
        return dict(read_exercises(self.notebook(root)))

    def points(self, root: str | os.PathLike | None = None) -> float:
        """The lesson's graded points: the sum over its test cells, read from the solution notebook."""
        return sum(p for _, p in read_exercises(self.notebook(root)).values())

    @property
    def cpu_label(self) -> str:
        """The CPU column as the tables print it, e.g. "< 1" or "≈ 14 (training)"."""
        return f"{self.cpu_minutes} (training)" if self.cpu_is_training else self.cpu_minutes

    def environment(self, scratch: str | os.PathLike | None = None, tests: bool = False) -> dict[str, str]:
        """The fast-mode environment as strings: checkpoints resolved to their paths, scratch files put in
        ``scratch`` (default: the system's temp dir); ``tests=True`` adds :attr:`test_env`."""
        folder = Path(scratch) if scratch is not None else Path(tempfile.gettempdir())
        out: dict[str, str] = {}
        for key, value in {**self.fast_env, **(self.test_env if tests else {})}.items():
            if isinstance(value, CheckpointFile):
                from .pretrained import checkpoint_path
                value = str(checkpoint_path(value.name))
            elif isinstance(value, ScratchFile):
                value = str(folder / value.name)
            out[key] = value
        return out


@functools.lru_cache(maxsize=64)
def _read_exercises(path: str, mtime_ns: int) -> tuple[tuple[str, str, float], ...]:
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path} is not a Jupyter notebook (no 'cells' list).")
    out: list[list] = []
    answer: str | None = None
    for cell in nb["cells"]:
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        gid = meta.get("grade_id")
        if not gid or meta.get("task"):
            continue
        if meta.get("solution") and not meta.get("grade"):
            if answer is not None:
                raise ValueError(f"{path}: the answer cell {answer!r} has no test cell after it (each answer "
                                 f"cell is followed by the locked test cell that grades it).")
            answer = gid
        elif meta.get("grade"):
            points = meta.get("points")
            if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
                raise ValueError(f"{path}: the test cell {gid!r} must have positive nbgrader points; "
                                 f"got {points!r}.")
            if answer is None:
                raise ValueError(f"{path}: the test cell {gid!r} does not follow an answer cell (put it after "
                                 f"the answer cell it grades).")
            out.append([answer, gid, int(points) if float(points).is_integer() else float(points)])
            answer = None
    if answer is not None:
        raise ValueError(f"{path}: the answer cell {answer!r} has no test cell after it (each answer cell is "
                         f"followed by the locked test cell that grades it).")
    return tuple(tuple(x) for x in out)


def read_exercises(path: str | os.PathLike) -> dict[str, tuple[str, float]]:
    """answer grade_id → (test grade_id, points) of a notebook: each locked test cell with points grades
    the answer cell before it (nbgrader metadata). Cached until the file changes.

    Raises:
        FileNotFoundError: no notebook at ``path`` (an installed package has no solutions/).
        ValueError: not a notebook, a test cell without an answer before it, an answer without a test, or
            a test cell without positive points.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no notebook {path}: a lesson's points are read from its solution notebook, "
                                f"which only the course repository has (not an installed package).")
    return {a: (t, p) for a, t, p in _read_exercises(str(path.resolve()), path.stat().st_mtime_ns)}


# ---------------------------------------------------------------------------------------- the registry
# CPU minutes: measured by `python -m bench.course_runtime --no-grading` on an idle 2-core CPU, with two torch
# threads and with one (OMP_NUM_THREADS=1): "2–3" is 2 minutes on two threads, 3 on one (2026-12-02: 04 118 s
# and 171 s, 05 52 s and 78 s (both re-measured after their CPU sizes shrank), 06 46 s and 57 s, 01 23 s and 27 s, 02 16 s and 18 s, 03 15 s and 17 s; 2026-12-03: 08 91 s and 137 s,
# on an AMD EPYC VM). 2026-12-03, another VM (Intel Xeon, 2 logical CPUs; bench/results/course_runtime_cpu.json) ran
# every lesson 2–3× faster: 01 9/11 s, 02 7/7, 03 8/9, 04 35/44 (after its CPU sizes shrank: 200 training steps, 4
# samples per sampler; ≈ 92/130 s on the AMD VM by the ratio), 05 20/29, 06 17/25, 08 34/49. The minutes cover the
# slower machine. 2026-12-04, AMD EPYC VM: 09 15 s and 20 s. GPU minutes on an H100-class GPU.
_SINGLE_THREAD = {"OMP_NUM_THREADS": "1"}
# ↑ The notebook samples thousands of small images: one torch thread per kernel keeps its test runs (nbval,
#   the autograde of several submissions) inside nbgrader's cell timeout on a shared 2-core machine, where
#   the default two threads per process spin-wait and run up to ten times slower.

LESSONS: tuple[Lesson, ...] = (
    Lesson("01", "01_unet_recap", "U-Net recap",
           summary="the encoder–decoder with skips that every lesson builds on",
           builds="down/up blocks, a small U-Net, a one-step denoiser — and why it cannot generate",
           cpu_minutes="< 1", gpu_minutes="< 1"),
    Lesson("02", "02_forward_diffusion", "Forward diffusion",
           summary="β schedules, the noising loop, q(x_t | x_0) in one jump",
           builds='β schedules (T = 10 toy, linear, cosine), the noising loop, the "skip ahead" q(x_t | x_0)',
           cpu_minutes="< 1", gpu_minutes="< 1",
           browser_moves=(("type", 0), ("type", 250), ("type", 600), ("type", 999))),
    Lesson("03", "03_bayes_posterior", "Bayes posterior",
           summary="q(x_{t-1} | x_t, x_0) derived by completing the square",
           builds="q(x_{t-1} | x_t, x_0) by completing the square (with sympy), the ELBO term by term (exact in 1-D), "
                  "L_simple, noise prediction as score estimation and Langevin sampling",
           cpu_minutes="< 1", gpu_minutes="< 1", needs_data=False),
    Lesson("04", "04_training_sampling", "Training and sampling",
           summary="Algorithm 1 (L_simple) and Algorithm 2; DDPM vs DDIM",
           builds="L_simple, a training step, the reverse step and loop (Algorithms 1 and 2), a reverse-trajectory "
                  "scrubber and animation, σ² = β vs β̃ and DDPM vs DDIM-50 measured",
           cpu_minutes="1½–2", gpu_minutes="< 1 (+ full training ≈ 2)", checkpoints=("ddpm16",),
           test_env=_SINGLE_THREAD,
           browser_moves=(("start", None), ("key", "End"), ("type", 2), ("key", "ArrowRight"))),
    Lesson("05", "05_time_embeddings", "Time embeddings",
           summary="why the network needs t; sinusoidal embedding; ResBlocks",
           builds="sinusoidal embeddings, broadcasting, residual blocks, rearrange-pooling",
           cpu_minutes="1–1½", gpu_minutes="< 1"),
    Lesson("06", "06_conditioning_guidance", "Conditioning and guidance",
           summary="class labels, the null class, classifier-free guidance",
           builds="class embeddings, the context mask, classifier-free guidance, a class picker and guidance "
                  "slider with fidelity/diversity per w",
           cpu_minutes="1", gpu_minutes="< 1", checkpoints=("cfg16",), test_env=_SINGLE_THREAD,
           browser_moves=(("start", None), ("key", "End"), ("key", "Home"), ("select", "Trouser"),
                          ("key", "ArrowRight"))),
    Lesson("07", "07_final_assessment", "Final assessment",
           summary="assemble, train a class-conditional model, pass the classifier",
           builds="assemble, choose the noise schedule (linear or cosine), train a class-conditional model "
                  "(≈ 14 min on a CPU), pass the shipped classifier (90 %, configurable)",
           cpu_minutes="≈ 14", cpu_is_training=True, gpu_minutes="≈ 2", checkpoints=("cfg16",),
           # COURSE_MODE=fast: 30 training steps (≤ 90 s on a CPU) instead of the ≈ 14-minute assessment run;
           # the assessment cell then grades the shipped cfg16 (trained by this lesson's own code in full mode).
           fast_env={"COURSE_MODE": "fast", "COURSE_ASSESSMENT_CHECKPOINT": CheckpointFile("cfg16"),
                     "COURSE_ASSESSMENT_OUT": ScratchFile("course_lesson07_fast_model.pt")}),
    Lesson("08", "08_text_to_image", "CLIP and text-to-image",
           summary="captions from pixels, a tiny CLIP, attention, prompts that draw",
           builds="captions from measured attributes, CLIP's contrastive loss, zero-shot with prompt ensembling, "
                  "multi-head attention, a text-conditioned U-Net with guidance, a prompt box and guidance slider, "
                  "image variations",
           cpu_minutes="1½–2½", gpu_minutes="< 1", checkpoints=("clip16", "text16"), test_env=_SINGLE_THREAD,
           browser_moves=(("start", None), ("key", "End"), ("select", "a photo of a dark bag"), ("key", "Home"))),
    Lesson("09", "09_cascades_latent", "Cascades and latent diffusion",
           summary="sharper 32 px images for the same compute: super-resolution and latent spaces",
           builds="noise-conditioning augmentation, a 16 → 32 px super-resolution sampler and a two-stage cascade, the "
                  "latent scale factor, encode → diffuse → decode sampling, an augmentation-level slider, four 32 px "
                  "methods measured side by side",
           cpu_minutes="< 1", gpu_minutes="< 1", checkpoints=("cfg16", "sr32", "ae32", "ldm32", "cfg32"),
           test_env=_SINGLE_THREAD,
           browser_moves=(("start", None), ("key", "End"), ("key", "Home"), ("key", "ArrowRight"))),
)


def _validate(lessons: tuple[Lesson, ...]) -> None:
    ids = [lesson.id for lesson in lessons]
    if ids != sorted(set(ids)):
        raise ValueError(f"LESSONS must list each lesson once, in the order of their ids; got {ids}.")


_validate(LESSONS)
_BY_KEY = {**{lesson.id: lesson for lesson in LESSONS}, **{lesson.folder: lesson for lesson in LESSONS}}


def get(key: str) -> Lesson:
    """A lesson by its id ("02") or folder ("02_forward_diffusion")."""
    try:
        return _BY_KEY[key]
    except (KeyError, TypeError):
        raise ValueError(f"no lesson {key!r} in course_utils/lessons.py; known: "
                         f"{', '.join(lesson.id for lesson in LESSONS)} (an id) or a folder name such as "
                         f"{LESSONS[0].folder!r}.") from None


# ---------------------------------------------------------------------------------------- rendering
def escape_cell(text: str) -> str:
    """Text for a Markdown table cell: ``|`` escaped as ``\\|`` (else it splits the cell)."""
    if "\n" in text:
        raise ValueError(f"a table cell is one line; got {text!r}.")
    return text.replace("\\|", "|").replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("-" * (len(h) + 2) for h in header) + "|"]
    lines += ["| " + " | ".join(escape_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


START_PAGE_NOTE = ("Times are for running the notebook top to bottom, measured on an idle 2-core CPU and an H100-class\n"
                   "GPU; a range such as 2–3 is two torch threads – one thread (a busy laptop is closer to the\n"
                   "second figure). Your own reading and thinking time comes on top. Take them in order: each lesson\n"
                   "uses what the previous ones built.")


def start_page_markdown(lessons: tuple[Lesson, ...] = LESSONS) -> str:
    """The start page's "The lessons" cell (tagged ``lesson-table``; ``./course.sh release`` writes it)."""
    rows = [[lesson.id, f"[{lesson.title}]({lesson.folder}/{lesson.folder}.ipynb)", lesson.summary,
             lesson.cpu_label, lesson.gpu_minutes] for lesson in lessons]
    return ("## The lessons\n\n" + _table(["#", "lesson", "what you do", "CPU (min)", "GPU (min)"], rows)
            + "\n\n" + START_PAGE_NOTE)


def readme_table(lessons: tuple[Lesson, ...] = LESSONS) -> str:
    """The README's lesson table (``python -m course_utils.lessons readme``)."""
    rows = [[lesson.id, lesson.title, lesson.builds, lesson.status] for lesson in lessons]
    return _table(["#", "lesson", "what you build", "status"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.lessons", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="list", choices=["list", "readme", "start-page"])
    args = parser.parse_args(argv)
    if args.what == "readme":
        print(readme_table())
    elif args.what == "start-page":
        print(start_page_markdown())
    else:
        for lesson in LESSONS:
            try:
                points = f"{lesson.points():g} points"
            except FileNotFoundError:
                points = "points: no solutions/ here"
            print(f"{lesson.id}  {lesson.folder:<28} {points:<12} CPU {lesson.cpu_label} min, "
                  f"GPU {lesson.gpu_minutes} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
