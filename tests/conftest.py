"""Shared fixtures: tiny tensors and models, and data that must exist in CI."""
from __future__ import annotations

import os

import pytest
import torch

from course_utils.data import DataNotFoundError, prepare

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture
def x0():
    """A 4×1×8×8 batch in [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 1, 8, 8, generator=g) * 2 - 1


def require_data() -> None:
    """Skip when FashionMNIST cannot be found locally, except in CI, where that is a failure."""
    try:
        prepare(download=False)
    except DataNotFoundError as err:
        if IN_CI:
            pytest.fail(f"CI must have FashionMNIST (Debian's dataset-fashion-mnist): {err}")
        pytest.skip(f"FashionMNIST not available offline: {err}")


@pytest.fixture
def fashion_data():
    require_data()
