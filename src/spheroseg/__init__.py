"""spheroseg: shape measurements of gastruloids, spheroids and organoids over time."""

from __future__ import annotations

__version__ = "0.1.0"
