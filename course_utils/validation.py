"""Input checks shared by the modules, so each mistake gets the same clear message everywhere."""
from __future__ import annotations

import torch

__all__ = ["check_labels", "check_generator"]


def check_labels(y, batch: int, device) -> torch.Tensor | None:
    """Class labels as int64 (B,) on ``device``: None stays None, an int or 0-d tensor is broadcast.

    Raises:
        ValueError: for floats, bools or a shape other than (B,), naming what was given.
    """
    if y is None:
        return None
    if isinstance(y, bool):
        raise ValueError("y must be an int class label or an int64 tensor of shape (B,); got a bool.")
    if isinstance(y, int):
        return torch.full((batch,), y, dtype=torch.long, device=device)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"y must be an int class label or an integer tensor of shape (B,); got "
                         f"{getattr(y, 'dtype', type(y).__name__)}.")
    if y.ndim == 0:
        y = y.expand(batch)
    if y.shape != (batch,):
        raise ValueError(f"y must have shape (B,) = ({batch},), one label per image; got {tuple(y.shape)}.")
    return y.to(device=device, dtype=torch.long)


def check_generator(generator, device: torch.device, what: str = "the tensors") -> None:
    """A ``torch.Generator`` (or None) on the same device type as ``what``, else a ValueError saying how."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None; got {type(generator).__name__}.")
    if generator.device.type != device.type:
        raise ValueError(f"generator lives on {generator.device} but {what} on {device}; "
                         f"create it with torch.Generator(device={str(device)!r}).")
