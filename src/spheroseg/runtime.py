"""How a stage uses the process it runs in: its CPU count, worker processes, the allocator,
and the garbage collector in hot loops.

`job_threads` is the one place that turns a ``--threads`` option (Snakemake's ``threads:``)
or the CPUs this process may run on into a worker count; `process_pool` and `ordered_map`
run per-frame work in that many processes (numpy, scipy and the contour code hold the GIL
for most of a frame, so threads do not run it in parallel), `pack_array` ships frames
between them compressed. `configure_allocator` keeps freed
frame buffers in the heap so that the next frame does not fault them in again. `paused_gc`
keeps Python's cyclic garbage collector out of frame loops: the loops allocate few cycles,
but each full collection walks every object that numpy, zarr and torch created at import.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
import math
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np

Item = TypeVar("Item")

# Positions with fewer pixels (over all frames) are processed in the calling process:
# starting worker processes (about a second) would cost more than it saves (8 x 2048^2).
PARALLEL_MIN_PIXELS = 32 * 2**20
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


def frame_workers(threads: int | None, *, frames: int, plane: Sequence[int]) -> int:
    """Worker processes for per-frame work: `job_threads`, at most one per frame, and 1 (the
    calling process) when the position has fewer than `PARALLEL_MIN_PIXELS` pixels.

    Examples
    --------
    >>> frame_workers(4, frames=200, plane=(2048, 2048)), frame_workers(4, frames=8, plane=(256, 256))
    (4, 1)
    """
    workers = min(job_threads(threads), frames)
    pixels = frames * math.prod(int(side) for side in plane)
    return workers if pixels >= PARALLEL_MIN_PIXELS else 1


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


def process_pool(workers: int, *, preload: Sequence[str] = ()) -> ProcessPoolExecutor:
    """A pool of `workers` processes started cleanly: forkserver where available, else spawn.

    Workers never inherit the caller's threads (zarr's event loop, writer threads), so they
    cannot deadlock on a lock some thread held at fork time. `preload` names modules the
    fork server imports once, so that each worker starts without importing them again.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def ordered_map(pool: Executor, function: Callable[..., Item], arguments: Iterable[tuple[Any, ...]],
                *, depth: int) -> Iterator[Item]:
    """``function(*args)`` for each tuple of `arguments` on `pool`, in order, `depth` ahead.

    At most `depth` calls are pending, so results (whole frames) do not pile up in memory
    when the consumer is slower than the pool. An exception in a call is raised here, and
    the calls not yet started are cancelled.
    """
    pending: collections.deque[Future[Item]] = collections.deque()
    try:
        for args in arguments:
            pending.append(pool.submit(function, *args))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def pack_array(array: np.ndarray) -> tuple[bytes, str, tuple[int, ...]]:
    """`array` compressed (Blosc LZ4) for sending between processes; see `unpack_array`."""
    import numpy as np
    from numcodecs import blosc

    array = np.ascontiguousarray(array)
    return blosc.compress(array, b"lz4", 5, blosc.SHUFFLE), array.dtype.str, array.shape


def unpack_array(packed: tuple[bytes, str, tuple[int, ...]]) -> np.ndarray:
    """The array `pack_array` compressed.

    Examples
    --------
    >>> import numpy as np
    >>> unpack_array(pack_array(np.arange(6, dtype=np.int32).reshape(2, 3))).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    import numpy as np
    from numcodecs import blosc

    data, dtype, shape = packed
    return np.frombuffer(blosc.decompress(data), dtype=np.dtype(dtype)).reshape(shape).copy()
