"""Streaming between disk and device: a read-ahead thread (`prefetch`), a write-behind thread
(`BackgroundWriter`), and the temporary tile store that ``predict`` writes and ``stitch`` reads
(a Zarr v3 array of shape (frames, tiles, H, W), float16, one chunk per frame)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from spheroseg.tiling import TilePlan

TILES_FORMAT = "spheroseg-tiles/1"

Item = TypeVar("Item")


class _Failure:
    """An exception raised in a background thread, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable[Item], *, depth: int = 2) -> Iterator[Item]:
    """Iterate over `items` produced ahead in a background thread (at most `depth` waiting).

    Exceptions in the producer are raised in the consumer; closing the generator stops it.

    Examples
    --------
    >>> list(prefetch(range(5)))
    [0, 1, 2, 3, 4]
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    finished = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(finished)
        except BaseException as err:  # noqa: BLE001 - carried to the consumer and re-raised
            put(_Failure(err))

    thread = threading.Thread(target=produce, name="spheroseg-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is finished:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundWriter:
    """Run write calls in a background thread, at most `depth` pending; errors surface on close."""

    def __init__(self, *, depth: int = 2) -> None:
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="spheroseg-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is None:
                try:
                    job[0](*job[1:])
                except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = err

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        """Queue ``function(*args)``; raise an earlier failure instead of queueing."""
        if self._error is not None:
            raise self._error
        self._jobs.put((function, *args))

    def close(self) -> None:
        """Wait for pending writes; raise the first failure."""
        self._jobs.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def write_frame(array: Any, t: int, values: np.ndarray) -> None:
    """Store one frame (or one frame's tiles) at index `t` (`spheroseg.ngff.write_frame`)."""
    from spheroseg.ngff import write_frame as write_chunks

    write_chunks(array, t, values)


class FrameAssembler:
    """Collect tile outputs in order and hand each finished frame to the writer."""

    def __init__(self, store: Any, plan: TilePlan, writer: BackgroundWriter) -> None:
        self.store, self.plan, self.writer = store, plan, writer
        self.buffer = np.empty(0, dtype=np.float16)

    def add(self, keys: list[tuple[int, int]], probabilities: np.ndarray) -> None:
        last = len(self.plan.origins) - 1
        for (t, index), values in zip(keys, probabilities):
            if index == 0:
                self.buffer = np.empty((last + 1, *self.plan.tile_shape), dtype=np.float16)
            self.buffer[index] = values
            if index == last:
                self.writer.submit(write_frame, self.store, t, self.buffer)


def create_tile_store(path: Path, plan: TilePlan) -> Any:
    """Empty float16 tile store: (frames, tiles, height, width), one chunk per frame."""
    import zarr

    from spheroseg.ngff import CHUNK_KEY_ENCODING, default_compressor

    shape = (plan.frames, len(plan.origins), *plan.tile_shape)
    return zarr.create_array(
        store=str(path), shape=shape, dtype="float16", chunks=(1, *shape[1:]),
        compressors=[default_compressor()], fill_value=0, zarr_format=3,
        dimension_names=["t", "tile", "y", "x"], overwrite=True,
        chunk_key_encoding=CHUNK_KEY_ENCODING,
    )


def open_tile_store(path: Path, plan: TilePlan) -> tuple[Any, dict[str, Any]]:
    """Open a tile store for reading frames (`spheroseg.zarrio.FrameReader`); check it fits the plan."""
    import json

    from spheroseg.zarrio import DamagedStoreError, FrameReader

    try:
        store = FrameReader(path)
        document = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except DamagedStoreError:
        raise  # its own message: a damaged tile store, not a foreign one
    except (OSError, ValueError) as err:
        raise ValueError(f"tiles must be a tile store written by spheroseg predict, got {err!r:.120} (in {path})") from err
    attributes = document.get("attributes") if isinstance(document, dict) else None
    info = attributes.get("spheroseg") if isinstance(attributes, dict) else None
    if not isinstance(info, dict) or info.get("format") != TILES_FORMAT:
        raise ValueError(f"tiles must be a finished tile store ({TILES_FORMAT}), got attributes {info!r:.120} (in {path})")
    expected = (plan.frames, len(plan.origins), *plan.tile_shape)
    if tuple(store.shape) != expected:
        raise ValueError(f"tile store shape must match the plan {expected}, got {tuple(store.shape)} (in {path})")
    return store, info
