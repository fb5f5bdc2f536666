"""Progress reporting for long stages: a live bar on a terminal, a line every few percent in logs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("spheroseg.progress")


def progress(
    items: Iterable[T], *, total: int | None = None, description: str, step_percent: float = 10.0
) -> Iterator[T]:
    """Yield `items`, reporting progress.

    On an interactive terminal this is a tqdm bar; otherwise (cluster logs, Snakemake log
    files) it logs one line each time another `step_percent` of `total` is done, so logs
    stay short instead of holding a redraw per step.

    Parameters
    ----------
    items : iterable
        The work items.
    total : int, optional
        Number of items (taken from ``len(items)`` when possible).
    description : str
        What is being done, e.g. ``"predict pos0"``.
    step_percent : float
        Log a line every this many percent (non-interactive only).

    Yields
    ------
    object
        The items, unchanged.

    Examples
    --------
    >>> list(progress(range(3), description="demo"))
    [0, 1, 2]
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=description, mininterval=0.5)
        return
    next_report = step_percent
    done = 0
    for item in items:
        yield item
        done += 1
        if total:
            percent = 100.0 * done / total
            if percent + 1e-9 >= next_report or done == total:
                log.info("%s: %d/%d (%.0f%%)", description, done, total, percent)
                while next_report <= percent + 1e-9:
                    next_report += step_percent
    if not total:
        log.info("%s: %d done", description, done)
