"""The one progress helper of spheroseg: ingest (frames), predict (tiles), stitch (frames) and
train (steps of all epochs) report through it.

On an interactive terminal it draws a tqdm bar. Otherwise (Snakemake and Slurm jobs, whose
stderr is a log file) it logs one line each time another `step_percent` of the work is done,
so logs stay short instead of holding a redraw per item::

    spheroseg predict: tiles 32/64 (50%), 2.31 Mpx/s, 4.1 s

Lines go to the ``spheroseg.progress`` logger, which the ``spheroseg`` command sends to stderr.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("spheroseg.progress")

STEP_PERCENT = 5.0


class Progress:
    """Count work done towards `total` and report it (a bar on a terminal, else log lines).

    Parameters
    ----------
    total : int
        Items of work in all.
    description : str
        What is counted, first word of each line, e.g. ``"tiles"``.
    unit : str
        Name of one item on the bar.
    initial : int
        Items already done (a resumed run); rates count only the items done here.
    pixels_per_item : int, optional
        Pixels per item: the report then includes the throughput in Mpx/s.
    step_percent : float
        Log a line each time another this many percent are done (not on a terminal).
    enabled : bool
        False reports nothing.

    Examples
    --------
    >>> with Progress(4, description="frames") as bar:
    ...     for _ in range(4):
    ...         bar.update()
    >>> bar.done
    4
    """

    def __init__(self, total: int, *, description: str, unit: str = "item", initial: int = 0,
                 pixels_per_item: int | None = None, step_percent: float = STEP_PERCENT,
                 enabled: bool = True) -> None:
        self.total, self.description, self.enabled = total, description, enabled
        self.done = self.initial = initial
        self.pixels_per_item = pixels_per_item
        self.every = max(total, 1) * step_percent / 100.0
        self.next_report = (math.floor(initial / self.every) + 1) * self.every
        self.started = time.perf_counter()
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=description, unit=unit,
                            mininterval=0.5, file=sys.stderr, dynamic_ncols=True)

    def update(self, count: int = 1, postfix: Mapping[str, str] | None = None) -> None:
        """Count `count` more items done; `postfix` (name -> text) is shown beside the count."""
        self.done += count
        if not self.enabled:
            return
        details = dict(postfix or {})
        if self.pixels_per_item is not None:
            details["Mpx/s"] = f"{self._rate() * self.pixels_per_item / 1e6:.2f}"
        if self.bar is not None:
            self.bar.set_postfix(details, refresh=False)
            self.bar.update(count)
        elif self.done + 1e-9 >= self.next_report or self.done >= self.total:
            self._log(details)
            self.next_report = (math.floor((self.done + 1e-9) / self.every) + 1) * self.every

    def _rate(self) -> float:
        """Items per second done by this run."""
        return (self.done - self.initial) / max(time.perf_counter() - self.started, 1e-9)

    def _log(self, details: Mapping[str, str]) -> None:
        """One progress line: count, percent, details, elapsed seconds."""
        percent = 100.0 * self.done / max(self.total, 1)
        parts = [f"{self.description} {self.done}/{self.total} ({percent:.0f}%)"]
        parts += [f"{value} {name}" if name == "Mpx/s" else f"{name} {value}"
                  for name, value in details.items()]
        parts.append(f"{time.perf_counter() - self.started:.1f} s")
        log.info("%s", ", ".join(parts))

    def close(self) -> None:
        """Close the bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def progress(items: Iterable[T], *, total: int | None = None, description: str,
             **options: Any) -> Iterator[T]:
    """Yield `items` unchanged, reporting progress through :class:`Progress`.

    Parameters
    ----------
    items : iterable
        The work items.
    total : int, optional
        Number of items (``len(items)`` when not given).
    description : str
        What is counted.
    **options
        Further :class:`Progress` arguments (`unit`, `pixels_per_item`, ...).

    Yields
    ------
    object
        The items, unchanged.

    Examples
    --------
    >>> list(progress(range(3), description="demo"))
    [0, 1, 2]
    """
    if total is None:
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, description=description, **options) as bar:
        for item in items:
            yield item
            bar.update(1)
