"""How a stage uses the process it runs in: its CPU count, the allocator, and the garbage
collector in hot loops.

`job_threads` is the one place that turns a ``--threads`` option (Snakemake's ``threads:``)
or the CPUs this process may run on into a worker count. `configure_allocator` keeps freed
frame buffers in the heap so that the next frame does not fault them in again. `paused_gc`
keeps Python's cyclic garbage collector out of frame loops: the loops allocate few cycles,
but each full collection walks every object that numpy, zarr and torch created at import.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def configure_allocator() -> bool:
    """Keep freed memory in glibc's heap so large buffers are not re-faulted at every use.

    glibc's default malloc serves large blocks with mmap and trims the heap eagerly, so each
    frame's (or each network layer's) buffers go back to the OS and fault in again, zeroed
    page by page (measured: half the CPU forward throughput; 15 % of ingest's CPU time).
    Returns True when the settings were applied (Linux with glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False


def job_threads(threads: int | None = None) -> int:
    """Worker threads for a stage: `threads` if given, else the CPUs this process may use.

    Raises
    ------
    ValueError
        If `threads` is not a positive integer.

    Examples
    --------
    >>> job_threads(3)
    3
    """
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return threads


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off (reference counting still frees).

    The collector is switched back on (if it was on) when the block ends, however it ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
