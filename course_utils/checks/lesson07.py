"""Checks for lesson 07 (being moved here from _legacy.py)."""
from __future__ import annotations

__all__: list[str] = []
