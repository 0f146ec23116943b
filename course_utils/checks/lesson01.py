"""Checks for lesson 01 (being moved here from _legacy.py)."""
from __future__ import annotations

__all__: list[str] = []
