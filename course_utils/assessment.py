"""Lesson 07's grade: does the shipped FashionMNIST classifier recognise a model's samples as the classes
that were asked for?

:func:`assess_class_agreement` draws a fixed number of samples per class with a seeded generator, classifies
them with :func:`course_utils.metrics.class_agreement_per_class` and returns an :class:`AssessmentResult`
(overall and per-class agreement, the verdict against a pass mark, the images). Lesson 07's locked
assessment cell calls it (``from course_utils.grading import assess_class_agreement`` keeps working:
:mod:`course_utils.grading` re-exports both names).
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AssessmentResult", "assess_class_agreement"]


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

