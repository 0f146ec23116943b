"""Instructor helpers around nbgrader: find submissions that would grade silently to 0.

A submitted notebook whose nbgrader cell metadata was stripped — re-saved by a tool that drops cell
metadata, or its cells pasted into a new notebook — autogrades without any error: nbgrader finds no
answer or test cells, records every grade as ``None`` and the total as 0. :func:`check_submission`
compares a submission with the released notebook and names the graded cells (by ``grade_id``) it lost;
:func:`check_submitted` does that for every file in the course's ``submitted/`` folder.

Command line (from the course root, before ``nbgrader autograde``)::

    python -m course_utils.grading check                      # every assignment in submitted/
    python -m course_utils.grading check 02_forward_diffusion # one assignment

It prints one line per submission and exits with status 1 when any submission lost graded cells.
This module does not need nbgrader.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["graded_cells", "check_submission", "check_submitted", "SubmissionCheck", "main"]


def _cells(nb) -> list[dict]:
    if isinstance(nb, (str, Path)):
        with open(nb, encoding="utf-8") as f:
            nb = json.load(f)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a Jupyter notebook (no 'cells' list).")
    return nb["cells"]


def graded_cells(nb) -> dict[str, str]:
    """``grade_id → role`` of the cells nbgrader scores or restores in a notebook (path or dict).

    Roles: ``"answer"`` (an autograded answer cell), ``"test"`` (a locked test cell with points),
    ``"manual"`` (a manually graded answer) and ``"task"``. Read-only cells are not listed: losing their
    metadata does not change a grade.
    """
    out: dict[str, str] = {}
    for cell in _cells(nb):
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        gid = meta.get("grade_id")
        if not gid:
            continue
        if meta.get("task"):
            out[gid] = "task"
        elif meta.get("grade") and meta.get("solution"):
            out[gid] = "manual"
        elif meta.get("grade"):
            out[gid] = "test"
        elif meta.get("solution"):
            out[gid] = "answer"
    return out


@dataclass
class SubmissionCheck:
    """What :func:`check_submission` found.

    Attributes:
        path: the submitted notebook.
        expected: grade_id → role, from the released notebook.
        missing: grade_ids of the released notebook with no cell carrying that id (and role) in the
            submission.
        error: why the submission could not be read at all, else None.
    """

    path: Path
    expected: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing

    @property
    def stripped(self) -> bool:
        """True when every graded cell lost its metadata (the whole notebook was stripped)."""
        return bool(self.expected) and len(self.missing) == len(self.expected)

    def message(self) -> str:
        if self.error:
            return f"{self.path}: cannot be read ({self.error}); nbgrader will fail or score it 0."
        if not self.missing:
            return f"{self.path}: ok ({len(self.expected)} graded cells present)."
        what = ("its nbgrader metadata was stripped" if self.stripped else
                f"{len(self.missing)} of {len(self.expected)} graded cells lost their nbgrader metadata "
                f"or were deleted")
        return (f"{self.path}: {what} ({', '.join(self.missing)}). nbgrader autograde would not complain: "
                f"it would record these grades as None and score them 0. Usually the notebook was saved by "
                f"a tool that drops cell metadata, or its cells were pasted into a new notebook. Ask for the "
                f"answers in a fresh copy of the released notebook (or restore the cells' metadata), then "
                f"autograde again.")


def check_submission(submission, release) -> SubmissionCheck:
    """Compare a submitted notebook with the released one (paths, or notebooks as dicts)."""
    path = Path(submission) if isinstance(submission, (str, Path)) else Path("<notebook>")
    expected = graded_cells(release)
    try:
        present = graded_cells(submission)
    except (OSError, ValueError) as err:        # json.JSONDecodeError is a ValueError
        return SubmissionCheck(path, expected, sorted(expected), error=f"{type(err).__name__}: {err}")
    missing = [gid for gid, role in expected.items() if present.get(gid) != role]
    return SubmissionCheck(path, expected, missing)


def check_submitted(course_root=".", assignments=None, release_directory: str = "notebooks",
                    submitted_directory: str = "submitted") -> list[SubmissionCheck]:
    """Check every ``submitted/<student>/<assignment>/<notebook>.ipynb`` against its released notebook.

    Args:
        course_root: the nbgrader course directory (holding ``nbgrader_config.py``).
        assignments: assignment names to check (default: all found under ``submitted/``).
        release_directory, submitted_directory: as in ``nbgrader_config.py`` (``notebooks``, ``submitted``).
    Returns:
        one :class:`SubmissionCheck` per submitted notebook, sorted by path.
    """
    root = Path(course_root)
    results = []
    for nb in sorted((root / submitted_directory).glob("*/*/*.ipynb")):
        assignment = nb.parent.name
        if assignments and assignment not in assignments:
            continue
        release = root / release_directory / assignment / nb.name
        if not release.exists():
            results.append(SubmissionCheck(nb, error=f"no released notebook {release} to compare with"))
            continue
        results.append(check_submission(nb, release))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.grading", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check", help="find submissions whose nbgrader metadata was stripped")
    p.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    p.add_argument("--course", default=".", help="the course root (default: the current directory)")
    args = parser.parse_args(argv)
    results = check_submitted(args.course, args.assignments or None)
    if not results:
        print(f"no submitted notebooks under {Path(args.course) / 'submitted'}")
        return 0
    for r in results:
        print(("ok      " if r.ok else "PROBLEM ") + r.message())
    bad = sum(not r.ok for r in results)
    print(f"{len(results)} submissions checked, {bad} with problems.")
    return 1 if bad else 0


# ----------------------------------------------------------------------------------------------
# Lesson 07: the final assessment's class-agreement grade
# ----------------------------------------------------------------------------------------------
@dataclass
class AssessmentResult:
    """What :func:`assess_class_agreement` measured.

    Attributes:
        agreement: fraction of all samples the shipped classifier assigns to their requested class.
        per_class: {class index: fraction} for the 10 FashionMNIST classes.
        passed: ``agreement >= threshold``.
        threshold: the pass mark used.
        seconds: wall time of sampling and classifying.
        samples: how many images were generated (``10 * per_class``).
        w, seed, num_steps: the settings they were generated with.
        images: (samples, 1, S, S) the generated images, on the CPU, class by class (labels 0, 0, …, 1, …).
    """

    agreement: float
    per_class: dict
    passed: bool
    threshold: float
    seconds: float
    samples: int
    w: float
    seed: int
    num_steps: int
    images: object = field(default=None, repr=False)

    def table(self, class_names=None) -> str:
        """A plain-text table: one line per class, then the total and the verdict."""
        lines = [f"{'class':<14}{'agreement':>10}"]
        for c, v in sorted(self.per_class.items()):
            name = class_names[c] if class_names is not None else str(c)
            lines.append(f"{name:<14}{v:>10.0%}")
        lines.append(f"{'all':<14}{self.agreement:>10.1%}   (pass mark {self.threshold:.0%}: "
                     f"{'PASSED' if self.passed else 'NOT PASSED'})")
        return "\n".join(lines)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int; got {value!r}.")
    return value


def assess_class_agreement(model, diffusion, sampler=None, per_class: int = 10, w: float = 2.0, seed: int = 0,
                           threshold: float = 0.9, num_steps: int = 20, image_size: int = 16,
                           num_classes: int = 10, classifier=None) -> AssessmentResult:
    """Grade a class-conditional model: does the shipped classifier recognise its samples' classes?

    Draws ``per_class`` samples of each of the ``num_classes`` classes (labels 0, 0, …, 1, 1, …) with
    ``sampler`` from a generator seeded with ``seed`` on the model's device, classifies them with
    :func:`course_utils.metrics.class_agreement_per_class` and passes when the overall agreement is at
    least ``threshold``. The same model, sampler and seed give the same verdict.

    Args:
        model: a class-conditional ε-model with an int ``null_class`` (e.g. ``UNet(num_classes=10)``).
        diffusion: its :class:`course_utils.diffusion.GaussianDiffusion`.
        sampler: ``sampler(model, diffusion, labels, w=w, num_steps=num_steps, generator=generator)``
            returning (N, 1, image_size, image_size) images in [-1, 1]; None uses the package's DDIM
            (η = 0) with classifier-free guidance, ``diffusion.ddim_sample_loop(..., y=labels, w=w)``.
        per_class: samples per class, a positive int.
        w: guidance weight ε̂ = (1 + w)·ε(x, y) − w·ε(x, ∅), a finite float.
        seed: the generator's seed, an int.
        threshold: the pass mark, a float in [0, 1] (the course's default is 0.9).
        num_steps: DDIM steps handed to the sampler.
        image_size: side of the generated images (16 for the course's checkpoints).
        num_classes: classes to request (10 for FashionMNIST).
        classifier: None for the shipped FashionMNIST classifier.
    Returns:
        an :class:`AssessmentResult`.
    Raises:
        ValueError: a bad argument, an unconditional model, or a sampler that returns the wrong shape.
    """
    import math
    import time

    import torch

    from .metrics import class_agreement_per_class

    per_class = _positive_int("per_class", per_class)
    num_steps = _positive_int("num_steps", num_steps)
    image_size = _positive_int("image_size", image_size)
    num_classes = _positive_int("num_classes", num_classes)
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(float(w)):
        raise ValueError(f"w (the guidance weight) must be a finite float; got {w!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int (the same seed gives the same verdict); got {seed!r}.")
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
            or not 0.0 <= float(threshold) <= 1.0):
        raise ValueError(f"threshold must be a fraction in [0, 1] (0.9 = 90 % of the samples recognised); "
                         f"got {threshold!r}.")
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    null = getattr(model, "null_class", None)
    if isinstance(null, bool) or not isinstance(null, int):
        raise ValueError("the model is unconditional (it has no int null_class), so it cannot be asked for a "
                         "class; the assessment needs a class-conditional model, e.g. "
                         "UNet(UNetConfig(channels=(32, 64), num_classes=10)).")
    if sampler is not None and not callable(sampler):
        raise ValueError(f"sampler must be a function sampler(model, diffusion, labels, w=..., num_steps=..., "
                         f"generator=...) or None; got {type(sampler).__name__}.")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    labels = torch.arange(num_classes, device=device).repeat_interleave(per_class)       # (N,)
    generator = torch.Generator(device=device).manual_seed(seed)
    shape = (labels.shape[0], model.config.in_channels, image_size, image_size) if hasattr(model, "config") \
        else (labels.shape[0], 1, image_size, image_size)
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        if sampler is None:
            x = diffusion.ddim_sample_loop(model, shape, num_steps=num_steps, y=labels, w=float(w),
                                           generator=generator, progress=False)
        else:
            x = sampler(model, diffusion, labels, w=float(w), num_steps=num_steps, generator=generator)
    finally:
        model.train(was_training)
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != (labels.shape[0], 1, image_size, image_size):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"the sampler must return {labels.shape[0]} grey {image_size}×{image_size} images, "
                         f"shape ({labels.shape[0]}, 1, {image_size}, {image_size}); got {got}.")
    x = x.detach().float().clamp(-1, 1)
    per = class_agreement_per_class(x, labels, classifier)
    agreement = sum(per.values()) / len(per)                    # equal counts per class: the overall mean
    seconds = time.perf_counter() - t0
    return AssessmentResult(agreement=agreement, per_class=per, passed=agreement >= float(threshold),
                            threshold=float(threshold), seconds=seconds, samples=int(labels.shape[0]),
                            w=float(w), seed=seed, num_steps=num_steps, images=x.cpu())


__all__ += ["AssessmentResult", "assess_class_agreement"]


if __name__ == "__main__":
    sys.exit(main())
