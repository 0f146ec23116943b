"""Argument validation shared by the modules, so each mistake gets the same clear message everywhere.

*Validate* means: raise ``ValueError`` with a sentence that names the argument and the fix (see
STYLE.md). Checking a learner's exercise lives in :mod:`course_utils.checks`, grading in
:mod:`course_utils.grading`.

* :func:`is_int` / :func:`is_number`: the one "a bool is not an int" test.
* :func:`as_batch_vector`: the int / 0-d / (B,) coercion behind :func:`check_timesteps` (the schedule's
  t), :func:`check_labels` (class labels y) and the U-Net's t.
* :func:`check_float_tensor`, :func:`check_image_batch`: floating-point batches and (N, 1, H, W) images.
* :func:`check_generator`: a ``torch.Generator`` on the right device; :func:`check_clip_x0`: a checkpoint
  loader's ``clip_x0`` (None, True or False).
"""
from __future__ import annotations

import math

import torch

__all__ = ["is_int", "is_number", "as_batch_vector", "check_timesteps", "check_labels", "check_float_tensor",
           "check_image_batch", "check_generator", "check_clip_x0"]


def is_int(v) -> bool:
    """True for a Python int that is not a bool (``True`` is an int to Python, never a count or a step)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    """True for a finite Python int or float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def as_batch_vector(value, batch: int, device, *, name: str, per: str, type_error: str,
                    bool_error: str | None = None, dtype_error: str | None = None,
                    allow_float: bool = False) -> torch.Tensor:
    """One value per image as a (B,) tensor: an int (or, with ``allow_float``, a float) or a 0-d tensor is
    broadcast to the batch; a (B,) tensor is kept.

    Args:
        value: the argument as given.
        batch: B.
        device: where the result goes.
        name: the argument's name, for the shape message.
        per: what one entry is ("timestep", "label"), for the shape message.
        type_error: the message for a value that is neither a number nor a tensor; ``{got}`` is replaced by
            its type name (or dtype, for a tensor of the wrong kind when ``dtype_error`` is None).
        bool_error: the message for a Python bool (default: ``type_error`` with ``got="bool"``).
        dtype_error: the message for a bool, complex or (without ``allow_float``) float tensor; ``{got}``
            is replaced by its dtype (default: ``type_error``).
        allow_float: floats (Python or tensor) are accepted and kept as float.
    Returns:
        (B,) int64 tensor on ``device`` (float tensors stay float when ``allow_float``).
    Raises:
        ValueError: with the messages above, or "``name`` must have shape (B,) = (B,), one ``per`` per
            image; got …" for any other shape.
    """
    if isinstance(value, bool):
        raise ValueError(bool_error if bool_error is not None else type_error.format(got="bool"))
    if isinstance(value, int):
        return torch.full((batch,), value, dtype=torch.long, device=device)
    if allow_float and isinstance(value, float):
        return torch.full((batch,), value, dtype=torch.float32, device=device)
    if not isinstance(value, torch.Tensor):
        raise ValueError(type_error.format(got=type(value).__name__))
    if value.dtype == torch.bool or value.is_complex() or (value.is_floating_point() and not allow_float):
        raise ValueError((dtype_error if dtype_error is not None else type_error).format(got=value.dtype))
    if value.ndim == 0:
        value = value.expand(batch)
    if value.shape != (batch,):
        raise ValueError(f"{name} must have shape (B,) = ({batch},), one {per} per image; "
                         f"got {tuple(value.shape)}.")
    return value.to(device=device, dtype=value.dtype if value.is_floating_point() else torch.long)


def check_timesteps(t, batch: int, T: int, device, name: str = "t", allow_minus_one: bool = False) -> torch.Tensor:
    """0-indexed timesteps ``t ∈ {0, …, T-1}`` as int64 (B,) on ``device``; an int or 0-d tensor is broadcast.

    Args:
        t: an int, a 0-d or a (B,) integer tensor.
        batch: B; T: the number of diffusion steps.
        name: the argument's name in the messages ("t", "t_prev").
        allow_minus_one: also accept -1 (DDIM's "the clean sample" after the last step).
    Raises:
        ValueError: for a bool, a float, a wrong shape or a step outside [0, T-1] (or [-1, T-1]); the
            message says what paper step T-1 is.
    """
    t = as_batch_vector(
        t, batch, device, name=name, per="timestep",
        type_error=f"{name} must be an int or an int64 tensor of shape (B,); got {{got}}.",
        bool_error=f"{name} must be an int or an int64 tensor of shape (B,); got a bool.",
        dtype_error=f"{name} must hold integer timesteps (int64); got dtype {{got}}. "
                    f"Use torch.randint(0, T, (B,)) or t.long().")
    low = -1 if allow_minus_one else 0
    if t.numel() and (int(t.min()) < low or int(t.max()) > T - 1):
        bad = int(t.min()) if int(t.min()) < low else int(t.max())
        raise ValueError(f"{name} must lie in [{low}, {T - 1}] (0-indexed: paper step 1 is index 0, "
                         f"paper step T={T} is index {T - 1}); got {bad}.")
    return t


def check_labels(y, batch: int, device) -> torch.Tensor | None:
    """Class labels as int64 (B,) on ``device``: None stays None, an int or 0-d tensor is broadcast.

    Raises:
        ValueError: for floats, bools or a shape other than (B,), naming what was given.
    """
    if y is None:
        return None
    return as_batch_vector(
        y, batch, device, name="y", per="label",
        type_error="y must be an int class label or an integer tensor of shape (B,); got {got}.",
        bool_error="y must be an int class label or an int64 tensor of shape (B,); got a bool.")


def check_float_tensor(x, name: str) -> torch.Tensor:
    """A floating-point tensor with a batch dimension, (B, ...); returned unchanged.

    Raises:
        ValueError: not a tensor, not floating point (the message says how to convert images), or 0-d.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor (e.g. float32); got dtype {x.dtype}. "
                         f"Convert images with x.float() and scale them to [-1, 1].")
    if x.ndim < 1:
        raise ValueError(f"{name} must have a batch dimension, shape (B, ...); got a 0-d tensor.")
    return x


def check_image_batch(images, name: str = "images") -> torch.Tensor:
    """A float batch of images of shape (N, C, H, W) (the widgets show grey ones, C = 1); returned unchanged.

    Raises:
        ValueError: not a 4-D floating-point tensor, naming the shape (or type) that was given.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"{name} must be a float tensor of shape (N, 1, H, W) in [-1, 1]; got "
                         f"{getattr(images, 'shape', type(images).__name__)}.")
    return images


def check_generator(generator, device: torch.device, what: str = "the tensors") -> None:
    """A ``torch.Generator`` (or None) on the same device type as ``what``, else a ValueError saying how."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None; got {type(generator).__name__}.")
    if generator.device.type != device.type:
        raise ValueError(f"generator lives on {generator.device} but {what} on {device}; "
                         f"create it with torch.Generator(device={str(device)!r}).")


def check_clip_x0(clip_x0) -> None:
    """A checkpoint loader's ``clip_x0``: None (as stored in the checkpoint), True or False."""
    if clip_x0 is not None and not isinstance(clip_x0, bool):
        raise ValueError(f"clip_x0 must be None (as stored in the checkpoint), True or False; got {clip_x0!r}.")
